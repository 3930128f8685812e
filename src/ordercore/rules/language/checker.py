"""The type checker: every problem of a parsed condition at once, plus what the compiler needs to know."""

from __future__ import annotations

import difflib
import re

import attrs

from ordercore.errors import InvalidExpression, RuleProblem

from .functions import FUNCTIONS
from .limits import Limits
from .nodes import (
    COMPARISONS,
    Attribute,
    Binary,
    Call,
    ListLiteral,
    Literal,
    Name,
    Node,
    Quantifier,
    Unary,
    unparse,
)
from .parser import QUANTIFIERS
from .regex import regex_fault
from .types import (
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    DURATION,
    ERROR,
    INT,
    MONEY,
    NOTHING,
    NULL,
    NUMBERS,
    ORDERED,
    STRING,
    ListOf,
    Nullable,
    Record,
    Schema,
    Type,
    accepts,
    strip,
    unify,
)

__all__ = ["Checked", "check_tree"]

_LITERAL_TYPES: dict[str, Type] = {
    "int": INT,
    "decimal": DECIMAL,
    "string": STRING,
    "bool": BOOL,
    "null": NULL,
    "money": MONEY,
    "duration": DURATION,
    "date": DATE,
    "datetime": DATETIME,
}


@attrs.frozen
class Checked:
    """A well-typed tree: its type, each node's type, the nodes that must be checked for null at run time,
    the compiled regexes of ``matches()`` calls and the dotted paths the expression reads."""

    tree: Node
    type: Type
    types: dict[int, Type]
    null_checked: frozenset[int]
    regexes: dict[int, re.Pattern[str]]
    paths: tuple[str, ...]


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _arith(op: str, left: Type, right: Type) -> Type | None:
    if left in NUMBERS and right in NUMBERS:
        if op == "/":
            return DECIMAL
        return unify(left, right)
    if op in "+-":
        same = {MONEY, DURATION} | ({STRING} if op == "+" else set())
        if left == right and left in same:
            return left
        if left in (DATE, DATETIME) and right == DURATION:
            return left
        if op == "+" and left == DURATION and right in (DATE, DATETIME):
            return right
        if op == "-" and left == right and left in (DATE, DATETIME):
            return DURATION
        return None
    if op == "*":
        if (left == MONEY and right in NUMBERS) or (left in NUMBERS and right == MONEY):
            return MONEY
        if (left == DURATION and right == INT) or (left == INT and right == DURATION):
            return DURATION
        return None
    if left == MONEY and right in NUMBERS:
        return MONEY
    if left == MONEY and right == MONEY:
        return DECIMAL
    return None


class _Checker:
    def __init__(self, schema: Schema, limits: Limits) -> None:
        self.schema = schema
        self.limits = limits
        self.problems: list[RuleProblem] = []
        self.types: dict[int, Type] = {}
        self.null_checked: set[int] = set()
        self.regexes: dict[int, re.Pattern[str]] = {}
        self.scope: dict[str, Type] = {}
        self.scope_paths: dict[str, str | None] = {}
        self.node_paths: dict[int, str] = {}
        self.paths: set[str] = set()

    def problem(self, node: Node, code: str, message: str, *, at_name: bool = False) -> Type:
        """Record a problem at ``node``: where a path starts, or at its last name with ``at_name``."""
        where = node
        while isinstance(where, Attribute) and not at_name:
            where = where.obj
        self.problems.append(RuleProblem("", code, message, where.line, where.column))
        return ERROR

    def visit(self, node: Node) -> Type:
        t = self._visit(node)
        self.types[id(node)] = t
        return t

    def value(self, node: Node) -> Type:
        """The node's type where a value is needed: ``T?`` is used as ``T`` with a run-time null check."""
        t = self.visit(node)
        if t == NULL:
            return self.problem(node, "type_mismatch", "null can only be compared with == or !=")
        if isinstance(t, Nullable):
            self.null_checked.add(id(node))
            return t.inner
        return t

    def _visit(self, node: Node) -> Type:
        if isinstance(node, Literal):
            return _LITERAL_TYPES[node.kind]
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Attribute):
            return self.attribute(node)
        if isinstance(node, ListLiteral):
            return self.list_literal(node)
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Quantifier):
            return self.quantifier(node)
        raise TypeError(f"not a syntax node: {node!r}")  # pragma: no cover

    # -- names --------------------------------------------------------------------------------------------
    def name(self, node: Name) -> Type:
        if node.name in self.scope:
            path = self.scope_paths[node.name]
            if path is not None:
                self.record_path(node, path)
            return self.scope[node.name]
        fields = self.schema.root.fields
        if node.name in fields:
            self.record_path(node, node.name)
            return fields[node.name]
        if node.name.startswith("_") or "__" in node.name:
            return ERROR  # already reported by the parser
        known = [*fields, *self.scope]
        return self.problem(node, "unknown_field", f"unknown name {node.name!r}{_suggest(node.name, known)}")

    def attribute(self, node: Attribute) -> Type:
        owner = self.value(node.obj)
        if owner == ERROR or node.name.startswith("_") or "__" in node.name:
            return ERROR  # a forbidden name was reported by the parser
        if not isinstance(owner, Record):
            return self.problem(
                node, "type_mismatch", f"{unparse(node.obj)} is a {owner}, it has no fields", at_name=True
            )
        if node.name not in owner.fields:
            hint = _suggest(node.name, list(owner.fields))
            return self.problem(
                node, "unknown_field", f"{owner.name} has no field {node.name!r}{hint}", at_name=True
            )
        prefix = self.node_paths.get(id(node.obj))
        if prefix is not None:
            self.record_path(node, f"{prefix}.{node.name}")
        return owner.fields[node.name]

    def record_path(self, node: Node, path: str) -> None:
        self.node_paths[id(node)] = path
        self.paths.add(path)

    # -- literals and operators -----------------------------------------------------------------------------
    def list_literal(self, node: ListLiteral) -> Type:
        element: Type = NOTHING
        failed = False
        for item in node.items:
            t = self.value(item)
            if t == ERROR:
                failed = True
                continue
            if isinstance(t, Record):
                failed = True
                self.problem(item, "type_mismatch", "lists of records cannot be written as literals")
                continue
            common = unify(element, t)
            if common is None:
                failed = True
                self.problem(item, "type_mismatch", f"list items must have one type: {t} among {element}")
                continue
            element = common
        return ERROR if failed else ListOf(element)

    def unary(self, node: Unary) -> Type:
        t = self.value(node.operand)
        if t == ERROR:
            return ERROR
        if node.op == "not":
            if t != BOOL:
                return self.problem(node, "type_mismatch", f"'not' needs a bool, not {t}")
            return BOOL
        if t not in (INT, DECIMAL, MONEY, DURATION):
            return self.problem(node, "type_mismatch", f"cannot negate a {t}")
        return t

    def binary(self, node: Binary) -> Type:
        op = node.op
        if op in ("and", "or"):
            left, right = self.value(node.left), self.value(node.right)
            for side, t in ((node.left, left), (node.right, right)):
                if t not in (BOOL, ERROR):
                    self.problem(side, "type_mismatch", f"'{op}' needs bools, {unparse(side)} is a {t}")
            return BOOL if left == right == BOOL else ERROR
        if op in ("==", "!="):
            return self.equality(node)
        if op in COMPARISONS:
            left, right = self.value(node.left), self.value(node.right)
            if ERROR in (left, right):
                return ERROR
            if op in ("in", "not in"):
                return self.membership(node, left, right)
            if left in ORDERED and (left == right or (left in NUMBERS and right in NUMBERS)):
                return BOOL
            return self.problem(node, "type_mismatch", f"cannot compare {left} {op} {right}")
        left, right = self.value(node.left), self.value(node.right)
        if ERROR in (left, right):
            return ERROR
        result = _arith(op, left, right)
        if result is None:
            return self.problem(node, "type_mismatch", f"cannot compute {left} {op} {right}")
        return result

    def equality(self, node: Binary) -> Type:
        left, right = self.visit(node.left), self.visit(node.right)
        if ERROR in (left, right):
            return ERROR
        if NULL in (left, right):
            other, side = (right, node.right) if left == NULL else (left, node.left)
            if not isinstance(other, Nullable):
                what = "null" if other == NULL else f"{unparse(side)} ({other})"
                return self.problem(
                    node, "type_mismatch", f"{what} can never be null; comparing it with null is a mistake"
                )
            return BOOL
        left, right = strip(left), strip(right)
        comparable = left == right or (left in NUMBERS and right in NUMBERS)
        if comparable and (left in ORDERED or left == BOOL):
            return BOOL
        return self.problem(node, "type_mismatch", f"cannot compare {left} {node.op} {right}")

    def membership(self, node: Binary, left: Type, right: Type) -> Type:
        if right == STRING:
            if left != STRING:
                return self.problem(node, "type_mismatch", f"'{node.op}' a string needs a string, not {left}")
            return BOOL
        if isinstance(right, ListOf):
            element = strip(right.element)
            if element == NOTHING or (unify(left, element) is not None and left in ORDERED | {BOOL}):
                return BOOL
            return self.problem(node, "type_mismatch", f"cannot look for a {left} in a {right}")
        return self.problem(
            node, "type_mismatch", f"'{node.op}' needs a list or a string on the right, not {right}"
        )

    # -- functions ------------------------------------------------------------------------------------------
    def call(self, node: Call) -> Type:
        signature = FUNCTIONS.get(node.name)
        if signature is None:
            for arg in node.args:
                self.visit(arg)
            if node.name.startswith("_") or "__" in node.name:
                return ERROR
            known = sorted([*FUNCTIONS, *QUANTIFIERS, "date", "datetime"])
            return self.problem(
                node, "unknown_function", f"unknown function {node.name}(){_suggest(node.name, known)}"
            )
        count = len(node.args)
        if count < signature.min_args or (signature.max_args is not None and count > signature.max_args):
            for arg in node.args:
                self.visit(arg)
            expected = (
                f"{signature.min_args}"
                if signature.min_args == signature.max_args
                else f"at least {signature.min_args}"
                if signature.max_args is None
                else f"{signature.min_args} to {signature.max_args}"
            )
            return self.problem(
                node, "wrong_arity", f"{node.name}() takes {expected} argument(s), got {count}"
            )
        args = [self.value(arg) for arg in node.args]
        if ERROR in args:
            return ERROR
        result = signature.check(args)
        if isinstance(result, str):
            return self.problem(node, "type_mismatch", f"{node.name}() {result}")
        if node.name == "matches":
            self.regex(node)
        return result

    def regex(self, node: Call) -> None:
        pattern = node.args[1]
        if not (isinstance(pattern, Literal) and isinstance(pattern.value, str)):
            self.problem(pattern, "bad_regex", "the pattern of matches() must be a string literal")
            return
        if len(pattern.value) > self.limits.max_regex:
            self.problem(
                pattern, "bad_regex", f"the pattern is longer than {self.limits.max_regex} characters"
            )
            return
        fault = regex_fault(pattern.value)
        if fault is not None:
            self.problem(pattern, "bad_regex", fault)
            return
        try:
            self.regexes[id(node)] = re.compile(pattern.value)
        except (re.error, OverflowError, RecursionError) as e:
            self.problem(pattern, "bad_regex", f"invalid regular expression: {e}")

    def quantifier(self, node: Quantifier) -> Type:
        source = self.value(node.source)
        shadowing = node.var in self.schema.root.fields or node.var in self.scope
        if shadowing:
            self.problem(
                node, "shadowed_name", f"{node.var!r} is already a name here; choose another variable"
            )
        element: Type = ERROR
        if isinstance(source, ListOf):
            element = source.element
        elif source != ERROR:
            self.problem(
                node.source,
                "type_mismatch",
                f"{node.kind}() needs a list, {unparse(node.source)} is a {source}",
            )
        source_path = self.node_paths.get(id(node.source))
        outer = (self.scope.get(node.var), self.scope_paths.get(node.var), node.var in self.scope)
        self.scope[node.var] = element
        self.scope_paths[node.var] = None if source_path is None else source_path + "[]"
        try:
            body = self.value(node.body)
        finally:
            if outer[2]:
                self.scope[node.var] = outer[0] or ERROR
                self.scope_paths[node.var] = outer[1]
            else:
                del self.scope[node.var]
                del self.scope_paths[node.var]
        if ERROR in (body, element) or shadowing:
            return ERROR
        kind = node.kind
        if kind in ("any", "all", "count"):
            if body != BOOL:
                return self.problem(
                    node.body, "type_mismatch", f"the condition of {kind}() must be a bool, not {body}"
                )
            return INT if kind == "count" else BOOL
        if kind == "sum":
            if body not in (INT, DECIMAL, MONEY):
                return self.problem(node.body, "type_mismatch", f"sum() adds numbers or money, not {body}")
            return body
        if body not in ORDERED:
            return self.problem(node.body, "type_mismatch", f"{kind}() needs comparable values, not {body}")
        return body


def _maximal(paths: set[str]) -> tuple[str, ...]:
    """Drop every path that only leads to a longer one (``order`` for ``order.total``); a bare quantifier
    variable (``order.tags[]``) reads the whole list (``order.tags``)."""
    kept = {p for p in paths if not any(q.startswith(p + ".") or q.startswith(p + "[]") for q in paths)}
    return tuple(sorted({p.removesuffix("[]") for p in kept}))


def check_collecting(
    tree: Node, schema: Schema, *, expect: Type | None = BOOL, limits: Limits | None = None
) -> tuple[Checked | None, list[RuleProblem]]:
    """The checked tree (None when there are problems) and every problem found."""
    checker = _Checker(schema, limits or Limits())
    result = checker.value(tree) if expect is not None else checker.visit(tree)
    if expect is not None and result != ERROR and not accepts(expect, result):
        if expect == BOOL:
            checker.problem(tree, "not_boolean", f"a condition must be a bool, this is a {result}")
        else:
            checker.problem(tree, "type_mismatch", f"expected a {expect}, this is a {result}")
    if checker.problems:
        return None, checker.problems
    checked = Checked(
        tree=tree,
        type=result,
        types=checker.types,
        null_checked=frozenset(checker.null_checked),
        regexes=checker.regexes,
        paths=_maximal(checker.paths),
    )
    return checked, []


def check_tree(
    tree: Node, schema: Schema, *, expect: Type | None = BOOL, limits: Limits | None = None
) -> Checked:
    """Type-check ``tree`` against ``schema``; raises ``InvalidExpression`` with every problem found."""
    checked, problems = check_collecting(tree, schema, expect=expect, limits=limits)
    if problems or checked is None:
        raise InvalidExpression(problems)
    return checked
