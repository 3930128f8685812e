"""The syntax tree of a condition, and :func:`unparse`, which prints a tree back as canonical source.

Nodes are frozen values that compare by structure; ``line``/``column`` (1-based, in the expression text)
are carried along but ignored by ``==``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import attrs

from ordercore.money import Money

__all__ = [
    "Attribute",
    "Binary",
    "Call",
    "ListLiteral",
    "Literal",
    "Name",
    "Node",
    "Quantifier",
    "Unary",
    "unparse",
]


@attrs.frozen
class Node:
    """Base of every syntax node."""

    line: int = attrs.field(default=0, eq=False, kw_only=True, repr=False)
    column: int = attrs.field(default=0, eq=False, kw_only=True, repr=False)


@attrs.frozen
class Literal(Node):
    """A constant. ``kind`` is one of int, decimal, string, bool, null, money, duration, date, datetime."""

    value: object
    kind: str


@attrs.frozen
class ListLiteral(Node):
    items: tuple[Node, ...]


@attrs.frozen
class Name(Node):
    """A top-level field (``order``) or a quantifier's bound variable (``line``)."""

    name: str


@attrs.frozen
class Attribute(Node):
    """``obj.name``: a field of a record."""

    obj: Node
    name: str


@attrs.frozen
class Unary(Node):
    """``not x`` or ``-x``."""

    op: str
    operand: Node


@attrs.frozen
class Binary(Node):
    """``left op right`` for ``or and == != < <= > >= in, not in + - * /``."""

    op: str
    left: Node
    right: Node


@attrs.frozen
class Call(Node):
    """``name(args...)``: a call of an allow-listed function."""

    name: str
    args: tuple[Node, ...]


@attrs.frozen
class Quantifier(Node):
    """``kind(var in source: body)`` with kind any, all, count, sum, max_of or min_of."""

    kind: str
    var: str
    source: Node
    body: Node


COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not in"})
BINARY_PRECEDENCE: dict[str, int] = {
    "or": 1,
    "and": 2,
    **dict.fromkeys(COMPARISONS, 4),
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}
NOT_PRECEDENCE = 3
NEGATE_PRECEDENCE = 7
ATOM_PRECEDENCE = 8

_DURATION_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def precedence(node: Node) -> int:
    if isinstance(node, Binary):
        return BINARY_PRECEDENCE[node.op]
    if isinstance(node, Unary):
        return NOT_PRECEDENCE if node.op == "not" else NEGATE_PRECEDENCE
    return ATOM_PRECEDENCE


def _string(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _decimal(value: Decimal) -> str:
    text = format(value, "f")
    return text if "." in text else text + ".0"


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if not seconds:
        return "0s"
    for unit, size in _DURATION_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _literal(node: Literal) -> str:
    value = node.value
    if node.kind == "null":
        return "null"
    if node.kind == "bool":
        return "true" if value else "false"
    if node.kind == "string" and isinstance(value, str):
        return _string(value)
    if node.kind == "decimal" and isinstance(value, Decimal):
        return _decimal(value)
    if node.kind == "money" and isinstance(value, Money):
        return f"{format(value.amount, 'f')} {value.currency}"
    if node.kind == "duration" and isinstance(value, timedelta):
        return _duration(value)
    if node.kind == "datetime" and isinstance(value, datetime):
        return f"datetime({_string(value.isoformat())})"
    if node.kind == "date" and isinstance(value, date):
        return f"date({_string(value.isoformat())})"
    return str(value)


def _wrap(node: Node, parenthesize: bool) -> str:
    text = unparse(node)
    return f"({text})" if parenthesize else text


def unparse(node: Node) -> str:
    """Canonical source for ``node``: ``parse(unparse(tree)) == tree`` for every tree ``parse`` returns."""
    if isinstance(node, Literal):
        return _literal(node)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Attribute):
        simple = isinstance(node.obj, Name | Attribute | Call | Quantifier | ListLiteral)
        return f"{_wrap(node.obj, not simple)}.{node.name}"
    if isinstance(node, ListLiteral):
        return "[" + ", ".join(unparse(item) for item in node.items) + "]"
    if isinstance(node, Call):
        return f"{node.name}(" + ", ".join(unparse(arg) for arg in node.args) + ")"
    if isinstance(node, Quantifier):
        return f"{node.kind}({node.var} in {unparse(node.source)}: {unparse(node.body)})"
    if isinstance(node, Unary):
        if node.op == "not":
            return "not " + _wrap(node.operand, precedence(node.operand) < NOT_PRECEDENCE)
        operand = _wrap(node.operand, precedence(node.operand) < NEGATE_PRECEDENCE)
        return "-" + (" " + operand if operand.startswith("-") else operand)
    if isinstance(node, Binary):
        mine = BINARY_PRECEDENCE[node.op]
        # comparisons do not chain, so a comparison operand of a comparison needs parentheses too
        # the parser builds a run of one logical operator as a balanced tree, so a nested run of the same
        # operator keeps its parentheses to keep its shape
        same_logic = node.op in ("and", "or") and isinstance(node.left, Binary) and node.left.op == node.op
        left = _wrap(
            node.left,
            precedence(node.left) < mine or (mine == 4 and precedence(node.left) == 4) or same_logic,
        )
        right = _wrap(node.right, precedence(node.right) <= mine)
        return f"{left} {node.op} {right}"
    raise TypeError(f"not a condition syntax node: {node!r}")
