"""Properties of the condition language: no input crashes the loader, canonical source round-trips, and
compiled code computes what a plain tree-walking interpreter (written here, independently) computes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordercore.errors import InvalidExpression, RuleEvaluationFailed
from ordercore.money import Money
from ordercore.rules.language import (
    BOOL,
    DATE,
    DECIMAL,
    DURATION,
    INT,
    MONEY,
    STRING,
    Attribute,
    Binary,
    Call,
    Limits,
    ListLiteral,
    ListOf,
    Literal,
    Name,
    Node,
    Nullable,
    Quantifier,
    Record,
    Schema,
    Type,
    Unary,
    compile_expression,
    parse,
    unparse,
)

LINE = Record("line", {"sku": STRING, "qty": INT, "hazmat": BOOL, "price": MONEY, "weight": DECIMAL})
SCHEMA = Schema(
    Record(
        "context",
        {
            "order": Record(
                "order",
                {
                    "total": MONEY,
                    "items": INT,
                    "weight": DECIMAL,
                    "tags": ListOf(STRING),
                    "lines": ListOf(LINE),
                },
            ),
            "customer": Record("customer", {"is_new": BOOL, "segment": STRING, "nickname": Nullable(STRING)}),
            "today": DATE,
        },
    )
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- nothing but InvalidExpression ----------------------------------------------------------------------------
VOCABULARY = [
    *"order customer today total items weight tags lines is_new segment nickname sku qty hazmat price".split(),
    *"and or not in true false null any all count sum max_of min_of len lower upper starts_with".split(),
    *"matches abs min max round days hours date_of weekday hour date datetime x line __class__ _x".split(),
    *["(", ")", "[", "]", ",", ".", ":", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "=", "!"],
    *["0", "1", "42", "12.5", "5000 EUR", "19.99 USD", "5 XYZ", "30d", "12h", "1.5d", "7x", '"DE"', "'a'"],
    *['"unterminated', '"2026-12-24"', '"2026-12-24T10:00:00+01:00"', '"("', "\n", "\\", "#", "$", "\t"],
]


def _load(text: str) -> None:
    try:
        compile_expression(text, SCHEMA, expect=None, limits=Limits(max_length=2_000))
    except InvalidExpression as e:
        assert e.problems
        for problem in e.problems:
            assert problem.line >= 1
            assert problem.column >= 1


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_compiles_or_is_refused(text: str) -> None:
    _load(text)


@SETTINGS
@given(st.lists(st.sampled_from(VOCABULARY), max_size=40), st.sampled_from([" ", ""]))
def test_token_soup_compiles_or_is_refused(tokens: list[str], joiner: str) -> None:
    _load(joiner.join(tokens))


@SETTINGS
@given(
    st.lists(st.sampled_from(["(", "[", "not ", "-", "len(", "any(x in ", "1 + ", ")", "]"]), max_size=300)
)
def test_deep_nesting_is_refused_without_recursion_errors(tokens: list[str]) -> None:
    _load("".join(tokens) + "1")


# -- well-typed trees -----------------------------------------------------------------------------------------
LINE_FIELDS: dict[Type, list[str]] = {
    STRING: ["sku"],
    INT: ["qty"],
    BOOL: ["hazmat"],
    MONEY: ["price"],
    DECIMAL: ["weight"],
}
ROOT_PATHS: dict[Type, list[tuple[str, ...]]] = {
    MONEY: [("order", "total")],
    INT: [("order", "items")],
    DECIMAL: [("order", "weight")],
    BOOL: [("customer", "is_new")],
    STRING: [("customer", "segment")],
    DATE: [("today",)],
}
Draw = Callable[[st.SearchStrategy[Any]], Any]


def path(parts: tuple[str, ...]) -> Node:
    node: Node = Name(parts[0])
    for part in parts[1:]:
        node = Attribute(node, part)
    return node


def literal(draw: Draw, t: Type) -> Node:
    if t == INT:
        return Literal(draw(st.integers(0, 10_000)), "int")
    if t == DECIMAL:
        value = draw(st.decimals(0, 10_000, places=draw(st.integers(1, 3)), allow_nan=False))
        return Literal(value, "decimal")
    if t == MONEY:
        return Literal(Money.of(draw(st.decimals(0, 10_000, places=2)), "EUR"), "money")
    if t == STRING:
        return Literal(draw(st.text(alphabet="abcXY \"'\\\n\t", max_size=6)), "string")
    if t == BOOL:
        return Literal(draw(st.booleans()), "bool")
    if t == DATE:
        return Literal(draw(st.dates(date(2000, 1, 1), date(2100, 1, 1))), "date")
    assert t == DURATION
    unit = draw(
        st.sampled_from([timedelta(weeks=1), timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)])
    )
    return Literal(unit * draw(st.integers(0, 100)), "duration")


@st.composite
def expression(draw: Draw, t: Type, depth: int = 3, scope: tuple[str, ...] = ()) -> Node:
    """A well-typed tree of type ``t``; ``scope`` holds the bound variables (each an order line)."""

    def sub(t2: Type, extra: tuple[str, ...] = ()) -> Node:
        node: Node = draw(expression(t2, depth - 1, scope + extra))
        return node

    leaves: list[Callable[[], Node]] = [lambda: literal(draw, t)]
    for parts in ROOT_PATHS.get(t, []):
        leaves.append(lambda parts=parts: path(parts))  # type: ignore[misc]
    for var in scope:
        for field in LINE_FIELDS.get(t, []):
            leaves.append(lambda var=var, field=field: Attribute(Name(var), field))  # type: ignore[misc]
    if depth <= 0:
        leaf: Callable[[], Node] = draw(st.sampled_from(leaves))
        return leaf()
    var = f"v{len(scope)}"
    lines = path(("order", "lines"))
    options: list[Callable[[], Node]] = list(leaves)
    if t in (INT, DECIMAL):
        other = draw(st.sampled_from([INT, DECIMAL])) if t == DECIMAL else INT
        options += [
            lambda: Binary(draw(st.sampled_from(["+", "-", "*"])), sub(t), sub(other)),
            lambda: Unary("-", sub(t)),
            lambda: Call("abs", (sub(t),)),
            lambda: Call(draw(st.sampled_from(["min", "max"])), (sub(t), sub(other))),
        ]
    if t == INT:
        options += [
            lambda: Call("len", (path(("order", "tags")),)),
            lambda: Quantifier("count", var, lines, sub(BOOL, (var,))),
            lambda: Quantifier("sum", var, lines, sub(INT, (var,))),
        ]
    if t == DECIMAL:
        options += [
            lambda: Binary("/", sub(draw(st.sampled_from([INT, DECIMAL]))), sub(INT)),
            lambda: Call("round", (sub(DECIMAL), Literal(draw(st.integers(0, 3)), "int"))),
            lambda: Binary("/", sub(MONEY), sub(MONEY)),
        ]
    if t == MONEY:
        options += [
            lambda: Binary(draw(st.sampled_from(["+", "-"])), sub(MONEY), sub(MONEY)),
            lambda: Binary("*", sub(MONEY), sub(INT)),
            lambda: Binary("/", sub(MONEY), sub(DECIMAL)),
            lambda: Quantifier("sum", var, lines, sub(MONEY, (var,))),
            lambda: Quantifier("max_of", var, lines, sub(MONEY, (var,))),
        ]
    if t == STRING:
        options += [
            lambda: Call(draw(st.sampled_from(["lower", "upper"])), (sub(STRING),)),
            lambda: Binary("+", sub(STRING), sub(STRING)),
        ]
    if t == DATE:
        options += [lambda: Binary(draw(st.sampled_from(["+", "-"])), sub(DATE), sub(DURATION))]
    if t == DURATION:
        options += [
            lambda: Binary("-", sub(DATE), sub(DATE)),
            lambda: Call("days", (sub(INT),)),
            lambda: Binary("+", sub(DURATION), sub(DURATION)),
        ]
    if t == BOOL:
        comparable = draw(st.sampled_from([INT, DECIMAL, MONEY, STRING, DATE, DURATION]))
        options += [
            lambda: Unary("not", sub(BOOL)),
            lambda: Binary(draw(st.sampled_from(["and", "or"])), sub(BOOL), sub(BOOL)),
            lambda: Binary(
                draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="])), sub(comparable), sub(comparable)
            ),
            lambda: Binary(draw(st.sampled_from(["==", "!="])), sub(BOOL), sub(BOOL)),
            lambda: Binary(
                draw(st.sampled_from(["in", "not in"])),
                sub(STRING),
                ListLiteral(tuple(literal(draw, STRING) for _ in range(draw(st.integers(0, 3))))),
            ),
            lambda: Binary("in", sub(STRING), path(("order", "tags"))),
            lambda: Binary("in", sub(STRING), sub(STRING)),
            lambda: Call("starts_with", (sub(STRING), sub(STRING))),
            lambda: Call(
                "matches",
                (sub(STRING), Literal(draw(st.sampled_from(["^a", "b$", "[XY]+", "a|c"])), "string")),
            ),
            lambda: Quantifier(draw(st.sampled_from(["any", "all"])), var, lines, sub(BOOL, (var,))),
            lambda: Binary(
                draw(st.sampled_from(["==", "!="])), path(("customer", "nickname")), Literal(None, "null")
            ),
            lambda: Binary("==", path(("customer", "nickname")), sub(STRING)),
            lambda: Call("starts_with", (path(("customer", "nickname")), sub(STRING))),
        ]
    option: Callable[[], Node] = draw(st.sampled_from(options))
    return option()


TYPES = [BOOL, INT, DECIMAL, MONEY, STRING, DATE, DURATION]
trees = st.sampled_from(TYPES).flatmap(lambda t: st.tuples(st.just(t), expression(t)))


@SETTINGS
@given(trees)
def test_unparse_then_parse_gives_the_same_tree(typed: tuple[Type, Node]) -> None:
    _, tree = typed
    text = unparse(tree)
    assert parse(text) == tree
    assert unparse(parse(text)) == text


# -- compiled code against a reference interpreter ------------------------------------------------------------
class _Null(Exception):
    pass


def interpret(node: Node, env: dict[str, Any], *, null_ok: bool = False) -> Any:
    """The meaning of a tree, computed the slow, obvious way."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, ListLiteral):
        return [interpret(item, env) for item in node.items]
    if isinstance(node, Name | Attribute):
        value = env[node.name] if isinstance(node, Name) else getattr(interpret(node.obj, env), node.name)
        if value is None and not null_ok:
            raise _Null(unparse(node))
        return value
    if isinstance(node, Unary):
        value = interpret(node.operand, env)
        return (not value) if node.op == "not" else -value
    if isinstance(node, Binary):
        op = node.op
        if op == "and":
            return interpret(node.left, env) and interpret(node.right, env)
        if op == "or":
            return interpret(node.left, env) or interpret(node.right, env)
        left = interpret(node.left, env, null_ok=op in ("==", "!="))
        right = interpret(node.right, env, null_ok=op in ("==", "!="))
        if op == "/":
            if not (right.amount if isinstance(right, Money) else right):
                raise ZeroDivisionError
            if isinstance(left, Money) and isinstance(right, Money):
                return left.amount / right.amount
            if isinstance(left, Money):
                return Money.rounded(left.amount / right, left.currency)
            return Decimal(left) / Decimal(right)
        operations: dict[str, Callable[[Any, Any], Any]] = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "in": lambda a, b: a in b,
            "not in": lambda a, b: a not in b,
            "+": lambda a, b: a + b,
            "-": lambda a, b: a - b,
            "*": lambda a, b: a * b,
        }
        return operations[op](left, right)
    if isinstance(node, Call):
        args = [interpret(arg, env) for arg in node.args]
        if node.name == "round":
            return Decimal(args[0]).quantize(Decimal(1).scaleb(-args[1]), rounding="ROUND_HALF_UP")
        if node.name == "matches":
            import re

            return re.search(args[1], args[0]) is not None
        functions: dict[str, Callable[..., Any]] = {
            "abs": abs,
            "min": min,
            "max": max,
            "len": len,
            "lower": str.lower,
            "upper": str.upper,
            "starts_with": str.startswith,
            "days": lambda n: timedelta(days=n),
        }
        return functions[node.name](*args)
    assert isinstance(node, Quantifier)
    values = [interpret(node.body, {**env, node.var: item}) for item in interpret(node.source, env)]
    if node.kind == "any":
        return any(values)
    if node.kind == "all":
        return all(values)
    if node.kind == "count":
        return sum(1 for v in values if v)
    if node.kind == "sum":
        if values and isinstance(values[0], Money):
            total = values[0]
            for v in values[1:]:
                total = total + v
            return total
        if not values and node_is_money(node):
            raise ValueError("no currency")
        return sum(values)
    if not values:
        raise ValueError("empty")
    return max(values) if node.kind == "max_of" else min(values)


def node_is_money(node: Quantifier) -> bool:
    try:
        return bool(compile_expression(unparse(node), SCHEMA, expect=None).type == MONEY)
    except InvalidExpression:  # pragma: no cover
        return False


money = st.decimals(-1_000, 1_000, places=2).map(lambda d: Money.of(d, "EUR"))
line_values = st.builds(
    SimpleNamespace,
    sku=st.sampled_from(["a", "aX", "b", "XY", ""]),
    qty=st.integers(-3, 20),
    hazmat=st.booleans(),
    price=money,
    weight=st.decimals(0, 100, places=2),
)
contexts = st.builds(
    SimpleNamespace,
    order=st.builds(
        SimpleNamespace,
        total=money,
        items=st.integers(-5, 50),
        weight=st.decimals(-100, 100, places=3),
        tags=st.lists(st.sampled_from(["a", "b", "aXY", ""]), max_size=3),
        lines=st.lists(line_values, max_size=3),
    ),
    customer=st.builds(
        SimpleNamespace,
        is_new=st.booleans(),
        segment=st.sampled_from(["a", "b", "abc", "X", ""]),
        nickname=st.none() | st.sampled_from(["a", "bX", ""]),
    ),
    today=st.dates(date(2020, 1, 1), date(2030, 1, 1)),
)


@SETTINGS
@given(trees, st.lists(contexts, min_size=1, max_size=3))
def test_compiled_code_agrees_with_the_reference_interpreter(
    typed: tuple[Type, Node], ctxs: list[Any]
) -> None:
    t, tree = typed
    compiled = compile_expression(unparse(tree), SCHEMA, expect=t)
    assert compiled.type == t or (t == DECIMAL and compiled.type == INT)
    for ctx in ctxs:
        env = vars(ctx)
        try:
            expected = interpret(tree, env)
        except Exception:
            try:
                compiled.evaluate(ctx)
            except RuleEvaluationFailed:
                continue
            raise AssertionError(f"{unparse(tree)} should fail at run time") from None
        assert compiled.evaluate(ctx) == expected, unparse(tree)
        for path_name, value in compiled.inputs(ctx).items():
            assert value is None or path_name.split(".")[0] in env


def test_reference_interpreter_and_generators_cover_some_ground() -> None:
    # a fixed smoke example so a broken strategy cannot pass silently
    ctx = SimpleNamespace(
        order=SimpleNamespace(total=Money.of(10, "EUR"), items=2, weight=Decimal(1), tags=["a"], lines=[]),
        customer=SimpleNamespace(is_new=True, segment="a", nickname=None),
        today=date(2026, 1, 1),
    )
    tree = parse('customer.nickname == null and "a" in order.tags and order.total / order.items == 5 EUR')
    assert interpret(tree, vars(ctx)) is True
    assert compile_expression(unparse(tree), SCHEMA).evaluate(ctx) is True
    _ = (datetime.now(UTC), ListOf)
