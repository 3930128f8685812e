"""The compiler: a checked tree to a Python function, through generated source text.

The generated source holds only operators, helper names (``_div``, ``_any``...), generated constant and
variable names (``_k0``, ``_v0``) and field names the schema validated. Every user value (strings,
numbers, money, regexes, literal lists) is bound in the function's namespace, never printed into code,
and the namespace has no builtins.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from ordercore.errors import InvalidExpression, RuleEvaluationFailed, RuleProblem

from .checker import Checked, check_collecting
from .functions import FUNCTIONS, HELPERS
from .limits import Limits
from .nodes import Attribute, Binary, Call, ListLiteral, Literal, Name, Node, Quantifier, Unary, unparse
from .parser import parse_collecting
from .regex import bounded_search
from .types import BOOL, DECIMAL, MONEY, Schema, Type, is_safe_identifier, strip

__all__ = ["CompiledExpression", "compile_expression"]

_COMPARE = {
    "==": "==",
    "!=": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "in": "in",
    "not in": "not in",
}


def _read(value: Any, segments: list[str]) -> Any:
    for index, segment in enumerate(segments):
        if value is None:
            return None
        if segment.endswith("[]"):
            items = getattr(value, segment[:-2])
            if items is None:
                return None
            rest = segments[index + 1 :]
            return [_read(item, rest) for item in items]
        value = getattr(value, segment)
    return value


@attrs.frozen
class CompiledExpression:
    """A checked, compiled condition. ``evaluate(ctx)`` runs it against an object whose attributes are
    the schema's top-level fields; any failure while running is a ``RuleEvaluationFailed``."""

    source: str
    type: Type
    paths: tuple[str, ...]
    tree: Node = attrs.field(repr=False, eq=False)
    python_source: str = attrs.field(repr=False, eq=False)
    _function: Callable[[Any], Any] = attrs.field(repr=False, eq=False, alias="function")

    def evaluate(self, ctx: Any) -> Any:
        """The expression's value for ``ctx``."""
        try:
            return self._function(ctx)
        except RuleEvaluationFailed as e:
            raise RuleEvaluationFailed(f"{self.source!r}: {e.message}") from e
        except Exception as e:
            raise RuleEvaluationFailed(f"{self.source!r}: {type(e).__name__}: {e}") from e

    def __call__(self, ctx: Any) -> Any:
        return self.evaluate(ctx)

    @property
    def function(self) -> Callable[[Any], Any]:
        """The compiled function itself: the fastest way to run the expression, for callers that turn
        the exceptions it raises into :class:`ordercore.RuleEvaluationFailed` themselves."""
        return self._function

    def inputs(self, ctx: Any) -> dict[str, object]:
        """The current value of every path the expression reads (a list per element for ``lines[].x``);
        never raises: a value that cannot be read is None."""
        result: dict[str, object] = {}
        for path in self.paths:
            try:
                result[path] = _read(ctx, path.split("."))
            except Exception:
                result[path] = None
        return result


class _Compiler:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.namespace: dict[str, object] = {"__builtins__": {}, **HELPERS}
        self.constants = 0
        self.variables: dict[str, str] = {}
        self.fresh = 0

    def constant(self, value: object) -> str:
        name = f"_k{self.constants}"
        self.constants += 1
        self.namespace[name] = value
        return name

    def type_of(self, node: Node) -> Type:
        return strip(self.checked.types[id(node)])

    def emit(self, node: Node) -> str:
        code = self._emit(node)
        if id(node) in self.checked.null_checked:
            code = f"_nn({code}, {self.constant(unparse(node))})"
        return code

    def _emit(self, node: Node) -> str:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Name):
            if node.name in self.variables:
                return self.variables[node.name]
            return f"ctx.{self.field(node.name)}"
        if isinstance(node, Attribute):
            return f"{self.emit(node.obj)}.{self.field(node.name)}"
        if isinstance(node, ListLiteral):
            return self.list_literal(node, for_membership=False)
        if isinstance(node, Unary):
            operand = self.emit(node.operand)
            return f"(not {operand})" if node.op == "not" else f"(-{operand})"
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Quantifier):
            return self.quantifier(node)
        raise TypeError(f"not a syntax node: {node!r}")  # pragma: no cover

    @staticmethod
    def field(name: str) -> str:
        # the schema validated every field name already; this guards the code generator itself
        if not is_safe_identifier(name):  # pragma: no cover
            raise AssertionError(f"unsafe field name {name!r}")
        return name

    def literal(self, node: Literal) -> str:
        if node.kind == "null":
            return "None"
        if node.kind == "bool":
            return "True" if node.value else "False"
        if node.kind == "int" and type(node.value) is int:
            return repr(node.value)
        return self.constant(node.value)

    def list_literal(self, node: ListLiteral, *, for_membership: bool) -> str:
        if all(isinstance(item, Literal) for item in node.items):
            values = [item.value for item in node.items if isinstance(item, Literal)]
            element = self.checked.types.get(id(node))
            if element is not None and getattr(element, "element", None) == DECIMAL:
                values = [Decimal(v) if isinstance(v, int) else v for v in values]
            return self.constant(frozenset(values) if for_membership else tuple(values))
        return "(" + "".join(f"{self.emit(item)}, " for item in node.items) + ")"

    def binary(self, node: Binary) -> str:
        op = node.op
        if op in ("and", "or"):
            return f"({self.emit(node.left)} {op} {self.emit(node.right)})"
        if op in ("==", "!=") and (
            (isinstance(node.left, Literal) and node.left.kind == "null")
            or (isinstance(node.right, Literal) and node.right.kind == "null")
        ):
            other = node.right if isinstance(node.left, Literal) and node.left.kind == "null" else node.left
            test = "is" if op == "==" else "is not"
            return f"({self.emit(other)} {test} None)"
        if op in ("in", "not in") and isinstance(node.right, ListLiteral):
            right = self.list_literal(node.right, for_membership=True)
            return f"({self.emit(node.left)} {_COMPARE[op]} {right})"
        if op in _COMPARE:
            return f"({self.emit(node.left)} {_COMPARE[op]} {self.emit(node.right)})"
        if op == "/":
            return f"_div({self.emit(node.left)}, {self.emit(node.right)}, {self.constant(unparse(node))})"
        return f"({self.emit(node.left)} {op} {self.emit(node.right)})"

    def call(self, node: Call) -> str:
        args = [self.emit(arg) for arg in node.args]
        if node.name == "matches":
            search = self.constant(bounded_search(self.checked.regexes[id(node)]))
            return f"{search}({args[0]})"
        helper = FUNCTIONS[node.name].helper
        return f"{helper}({', '.join(args)})"

    def quantifier(self, node: Quantifier) -> str:
        source = self.emit(node.source)
        variable = f"_v{self.fresh}"
        self.fresh += 1
        outer = self.variables.get(node.var)
        self.variables[node.var] = variable
        try:
            body = self.emit(node.body)
        finally:
            if outer is None:
                del self.variables[node.var]
            else:
                self.variables[node.var] = outer
        loop = f"for {variable} in {source}"
        kind = node.kind
        if kind == "any":
            return f"_any({body} {loop})"
        if kind == "all":
            return f"_all({body} {loop})"
        if kind == "count":
            return f"_sum(1 {loop} if {body})"
        where = self.constant(unparse(node))
        if kind == "sum":
            if self.type_of(node) == MONEY:
                return f"_sum_money(({body} {loop}), {where})"
            return f"_sum({body} {loop})"
        return f"_{kind}(({body} {loop}), {where})"


def compile_checked(checked: Checked, source: str) -> CompiledExpression:
    """Generate, compile and bind the Python function of a checked tree."""
    compiler = _Compiler(checked)
    try:
        body = compiler.emit(checked.tree)
        python_source = f"lambda ctx: {body}"
        code = compile(python_source, "<condition>", "eval")
        function = eval(code, compiler.namespace)  # the namespace holds only helpers and constants
    except (SyntaxError, RecursionError, MemoryError) as e:  # Python's own nesting limits
        reason = type(e).__name__ if isinstance(e, MemoryError) else str(e)
        raise InvalidExpression(
            [RuleProblem("", "too_deep", f"expression nested too deeply to compile ({reason})", 1, 1)]
        ) from None
    return CompiledExpression(
        source=source,
        type=checked.type,
        paths=checked.paths,
        tree=checked.tree,
        python_source=python_source,
        function=function,
    )


def compile_expression(
    text: str, schema: Schema, *, limits: Limits | None = None, expect: Type | None = BOOL
) -> CompiledExpression:
    """Parse, type-check and compile ``text``; raises ``InvalidExpression`` with every problem found.

    ``expect`` is the type the result must have (``BOOL`` for a condition; None accepts any type).
    """
    limits = limits or Limits()
    tree, problems = parse_collecting(text, limits)
    if tree is None:
        raise InvalidExpression(problems)
    checked, type_problems = check_collecting(tree, schema, expect=expect, limits=limits)
    problems.extend(type_problems)
    if problems or checked is None:
        raise InvalidExpression(problems)
    return compile_checked(checked, text)
