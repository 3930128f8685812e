"""The condition language of the rule engine: what a rule author can write, what is refused (with which
code and where), and what a compiled condition computes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from ordercore.errors import CurrencyMismatch, InvalidExpression, InvalidValue, RuleEvaluationFailed
from ordercore.money import Money
from ordercore.rules.language import (
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    DURATION,
    ERROR_CODES,
    INT,
    MONEY,
    STRING,
    Binary,
    CompiledExpression,
    Limits,
    ListOf,
    Literal,
    Name,
    Node,
    Nullable,
    Record,
    Schema,
    Type,
    check,
    compile_expression,
    parse,
    unparse,
)

ADDRESS = Record("address", {"country": STRING, "zip": STRING})
LINE = Record("line", {"sku": STRING, "qty": INT, "hazmat": BOOL, "price": MONEY, "weight": DECIMAL})
ORDER = Record(
    "order",
    {
        "id": STRING,
        "total": MONEY,
        "discount": Nullable(MONEY),
        "items": INT,
        "weight": DECIMAL,
        "tags": ListOf(STRING),
        "lines": ListOf(LINE),
        "placed_at": DATETIME,
        "ship_by": DATE,
        "promised": Nullable(DATE),
        "coupon": Nullable(STRING),
        "ship_to": ADDRESS,
        "billing": Nullable(ADDRESS),
        "window": DURATION,
    },
)
CUSTOMER = Record(
    "customer",
    {
        "is_new": BOOL,
        "segment": STRING,
        "email": Nullable(STRING),
        "orders_count": INT,
        "vip": Nullable(BOOL),
    },
)
SCHEMA = Schema(Record("context", {"order": ORDER, "customer": CUSTOMER, "now": DATETIME, "today": DATE}))
CET = timezone(timedelta(hours=1))


def eur(amount: str | int) -> Money:
    return Money.of(amount, "EUR")


def line(
    sku: str = "A-1", qty: int = 1, hazmat: bool = False, price: str = "10.00", weight: str = "1.5"
) -> Any:
    return SimpleNamespace(sku=sku, qty=qty, hazmat=hazmat, price=eur(price), weight=Decimal(weight))


def make_ctx(**changes: Any) -> Any:
    order = {
        "id": "SO-1001",
        "total": eur("6000.00"),
        "discount": None,
        "items": 3,
        "weight": Decimal("12.5"),
        "tags": ["gift", "express"],
        "lines": [line("A-1", 2, False, "100.00"), line("B-2", 1, True, "50.50", "0.5")],
        "placed_at": datetime(2026, 12, 20, 9, 30, tzinfo=UTC),
        "ship_by": date(2026, 12, 23),
        "promised": None,
        "coupon": None,
        "ship_to": SimpleNamespace(country="DE", zip="10115"),
        "billing": None,
        "window": timedelta(days=2),
    }
    customer = {"is_new": True, "segment": "new", "email": "ann@example.com", "orders_count": 0, "vip": None}
    ctx = {"now": datetime(2026, 12, 21, 10, 0, tzinfo=UTC), "today": date(2026, 12, 21)}
    for key, value in changes.items():
        if key.startswith("order_"):
            order[key[6:]] = value
        elif key.startswith("customer_"):
            customer[key[9:]] = value
        else:
            ctx[key] = value
    return SimpleNamespace(order=SimpleNamespace(**order), customer=SimpleNamespace(**customer), **ctx)


def compiled(text: str, expect: Type | None = None, **kwargs: Any) -> CompiledExpression:
    return compile_expression(text, SCHEMA, expect=expect, **kwargs)


def ev(text: str, ctx: Any = None, expect: Type | None = None) -> Any:
    return compiled(text, expect).evaluate(ctx if ctx is not None else make_ctx())


def problems(
    text: str, expect: Type | None = BOOL, limits: Limits | None = None
) -> list[tuple[str, int, int]]:
    with pytest.raises(InvalidExpression) as caught:
        compile_expression(text, SCHEMA, expect=expect, limits=limits)
    assert caught.value.problems, "an InvalidExpression always says what is wrong"
    for problem in caught.value.problems:
        assert problem.code in ERROR_CODES
        assert problem.rule_id == ""
    return [(p.code, p.line, p.column) for p in caught.value.problems]


def messages(text: str, expect: Type | None = BOOL) -> str:
    with pytest.raises(InvalidExpression) as caught:
        compile_expression(text, SCHEMA, expect=expect)
    return " | ".join(p.message for p in caught.value.problems)


# -- literals -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value", "type_"),
    [
        ("42", 42, INT),
        ("007", 7, INT),
        ("12.5", Decimal("12.5"), DECIMAL),
        ('"hello"', "hello", STRING),
        ("'single'", "single", STRING),
        ('"a \\"quoted\\" \\\\ word\\n\\t\\\'"', 'a "quoted" \\ word\n\t\'', STRING),
        ("true", True, BOOL),
        ("false", False, BOOL),
        ("5000 EUR", eur(5000), MONEY),
        ("19.99 USD", Money.of("19.99", "USD"), MONEY),
        ("19.99USD", Money.of("19.99", "USD"), MONEY),
        ("1500 JPY", Money.of(1500, "JPY"), MONEY),
        ("1.125 KWD", Money.of("1.125", "KWD"), MONEY),
        ("30d", timedelta(days=30), DURATION),
        ("12h", timedelta(hours=12), DURATION),
        ("15m", timedelta(minutes=15), DURATION),
        ("2w", timedelta(weeks=2), DURATION),
        ("45s", timedelta(seconds=45), DURATION),
        ('date("2026-12-24")', date(2026, 12, 24), DATE),
        ('datetime("2026-12-24T10:00:00+01:00")', datetime(2026, 12, 24, 10, tzinfo=CET), DATETIME),
        ('datetime("2026-12-24T09:00:00Z")', datetime(2026, 12, 24, 9, tzinfo=UTC), DATETIME),
        ('["DE", "FR"]', ("DE", "FR"), ListOf(STRING)),
        ("[1, 2.5]", (1, Decimal("2.5")), ListOf(DECIMAL)),
        ("[]", (), None),
    ],
)
def test_literals(text: str, value: object, type_: Type | None) -> None:
    expression = compiled(text)
    result = expression.evaluate(make_ctx())
    assert result == value
    assert type(result) is type(value)
    if type_ is not None:
        assert expression.type == type_


def test_decimal_literals_never_become_floats() -> None:
    assert ev("0.1 + 0.2") == Decimal("0.3")
    assert ev("7 / 2") == Decimal("3.5")
    assert isinstance(ev("1 / 3"), Decimal)
    assert compiled("7 / 2").type == DECIMAL


def test_null_literal_compares_with_nullable_fields() -> None:
    assert ev("customer.vip == null") is True
    assert ev("customer.vip != null") is False
    assert ev("null == customer.vip") is True
    assert ev("customer.email != null", make_ctx(customer_email=None)) is False


# -- operators ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("10 - 2 - 3", 5),
        ("12 / 2 / 3", Decimal(2)),
        ("-5 + 2", -3),
        ("-(2 + 3) * 2", -10),
        ("--4", 4),
        ("1 + 2.5", Decimal("3.5")),
        ("2 * 1.25", Decimal("2.50")),
        ('"ab" + "cd"', "abcd"),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("1.5 > 2", False),
        ("3 >= 2.5", True),
        ("1 == 1.0", True),
        ("1 != 2", True),
        ('"apple" < "banana"', True),
        ("true == false", False),
        ("true != false", True),
        ("true or false and false", True),
        ("(true or false) and false", False),
        ("not true or true", True),
        ("not (true or true)", False),
        ("not 1 == 2", True),
        ("not not true", True),
        ("1 + 2 > 2 and 3 * 2 == 6", True),
        ("12h < 1d", True),
        ("2w == 14d", True),
        ("1d + 12h == 36h", True),
        ("3 * 1h == 180m", True),
        ("-1d < 0s", True),
    ],
)
def test_operators_and_precedence(text: str, value: object) -> None:
    assert ev(text) == value


def test_and_or_short_circuit() -> None:
    ctx = make_ctx(customer_email=None)
    # the right side would fail on the null email: it is never evaluated
    assert ev('customer.email != null and ends_with(customer.email, ".com")', ctx) is False
    assert ev('customer.email == null or ends_with(customer.email, ".com")', ctx) is True
    assert ev("false and 1 / 0 > 1") is False
    assert ev("true or 1 / 0 > 1") is True


# -- money --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10 EUR + 5.50 EUR", eur("15.50")),
        ("10 EUR - 12 EUR", eur("-2.00")),
        ("10 EUR * 3", eur(30)),
        ("3 * 10 EUR", eur(30)),
        ("10 EUR * 0.333", eur("3.33")),
        ("10 EUR / 3", eur("3.33")),
        ("20 EUR / 2.5", eur(8)),
        ("10 EUR / 4 EUR", Decimal("2.5")),
        ("-10 EUR", eur(-10)),
        ("abs(-3.50 EUR)", eur("3.50")),
        ("order.total > 5000 EUR", True),
        ("order.total <= 6000 EUR", True),
        ("order.total == 6000.00 EUR", True),
        ("order.total != 6000 USD", True),  # different currencies are simply not equal
        ("order.total - 1000 EUR >= 5000 EUR", True),
        ("round(10.55 EUR / 2, 1)", eur("5.30")),
        ("round(12.345, 2)", Decimal("12.35")),
        ("round(2.5)", Decimal(3)),
        ("round(12.34 EUR, 5)", eur("12.34")),
        ("max(1 EUR, 3 EUR, 2 EUR)", eur(3)),
        ("min(order.total, 100 EUR)", eur(100)),
    ],
)
def test_money(text: str, value: object) -> None:
    assert ev(text) == value


def test_money_in_different_currencies_fails_at_run_time() -> None:
    with pytest.raises(RuleEvaluationFailed, match="EUR and USD") as caught:
        ev("order.total > 5 USD")
    assert isinstance(caught.value.__cause__, CurrencyMismatch)
    with pytest.raises(RuleEvaluationFailed):
        ev("order.total + 1 USD > 1 EUR")
    with pytest.raises(RuleEvaluationFailed, match="divide EUR by USD"):
        ev("order.total / 1 USD > 1")


# -- dates and times ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('date("2026-12-24") - date("2026-12-20")', timedelta(days=4)),
        ('date("2026-12-24") + 1w', date(2026, 12, 31)),
        ("2d + today", date(2026, 12, 23)),
        ("today - 30d", date(2026, 11, 21)),
        ("now - order.placed_at", timedelta(hours=24, minutes=30)),
        ("order.placed_at + 12h", datetime(2026, 12, 20, 21, 30, tzinfo=UTC)),
        ("order.placed_at - 30m", datetime(2026, 12, 20, 9, 0, tzinfo=UTC)),
        ('datetime("2026-12-24T10:00:00+01:00") == datetime("2026-12-24T09:00:00+00:00")', True),
        ('datetime("2026-12-24T10:00:00+01:00") - datetime("2026-12-24T08:00:00Z")', timedelta(hours=1)),
        ("now - order.placed_at > 1d", True),
        ("order.ship_by <= today + order.window", True),
        ('today >= date("2026-12-21")', True),
        ("date_of(order.placed_at)", date(2026, 12, 20)),
        ("weekday(today)", 1),  # 2026-12-21 is a Monday
        ("weekday(order.placed_at)", 7),
        ("hour(now)", 10),
        ("days(3) + hours(2)", timedelta(days=3, hours=2)),
        ("days(order.items) == 3d", True),
    ],
)
def test_dates_and_durations(text: str, value: object) -> None:
    assert ev(text) == value


def test_naive_datetime_in_context_fails_at_run_time() -> None:
    with pytest.raises(RuleEvaluationFailed, match="TypeError"):
        ev("now > order.placed_at", make_ctx(now=datetime(2026, 1, 1)))


# -- membership ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('order.ship_to.country in ["DE", "AT", "CH"]', True),
        ('order.ship_to.country not in ["DE", "AT"]', False),
        ('"gift" in order.tags', True),
        ('"sample" not in order.tags', True),
        ('"ell" in "hello"', True),
        ('"SO-" in order.id', True),
        ("order.items in [1, 2, 3]", True),
        ("3 in [1.5, 3.0]", True),
        ("1 EUR in [1.00 EUR, 2 EUR]", True),
        ('today in [date("2026-12-21")]', True),
        ("order.items in [order.items, 7]", True),
        ('"x" in []', False),
    ],
)
def test_membership(text: str, value: bool) -> None:
    assert ev(text) is value


# -- functions ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("len(order.tags)", 2),
        ("len(order.id)", 7),
        ("len([1, 2, 3])", 3),
        ('lower("MiXed")', "mixed"),
        ('upper(order.ship_to.country) == "DE"', True),
        ('starts_with(order.id, "SO-")', True),
        ('ends_with(customer.email, "@example.com")', True),
        ('matches(order.ship_to.zip, "^1[0-9]{4}$")', True),
        ('matches(order.id, "[0-9]+")', True),  # search: anywhere in the text
        ('matches(order.id, "^[0-9]+$")', False),
        ("abs(-4)", 4),
        ("abs(-1.5)", Decimal("1.5")),
        ("abs(-2h)", timedelta(hours=2)),
        ("min(3, 1, 2)", 1),
        ("max(1, 2.5)", Decimal("2.5")),
        ('min("b", "a")', "a"),
        ("max(today, order.ship_by)", date(2026, 12, 23)),
        ("min(1d, 3h)", timedelta(hours=3)),
    ],
)
def test_functions(text: str, value: object) -> None:
    assert ev(text) == value


# -- quantifiers --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("any(line in order.lines: line.hazmat)", True),
        ("all(line in order.lines: line.hazmat)", False),
        ("all(line in order.lines: line.qty > 0)", True),
        ("count(line in order.lines: line.qty > 1)", 1),
        ("sum(line in order.lines: line.qty)", 3),
        ("sum(line in order.lines: line.weight)", Decimal("2.0")),
        ("sum(line in order.lines: line.price * line.qty)", eur("250.50")),
        ("max_of(line in order.lines: line.price)", eur(100)),
        ("min_of(line in order.lines: line.weight)", Decimal("0.5")),
        ('any(tag in order.tags: starts_with(tag, "ex"))', True),
        ("any(n in [1, 2, 3]: n > 2)", True),
        ("sum(n in [1, 2, 3]: n * n)", 14),
        ("any(line in order.lines: any(tag in order.tags: starts_with(line.sku, upper(tag))))", False),
        ("count(line in order.lines: any(other in order.lines: other.qty > line.qty))", 1),
        ("any(line in order.lines: line.hazmat) and order.total > 5000 EUR", True),
    ],
)
def test_quantifiers(text: str, value: object) -> None:
    assert ev(text) == value


def test_quantifiers_over_empty_lists() -> None:
    ctx = make_ctx(order_lines=[])
    assert ev("any(line in order.lines: line.hazmat)", ctx) is False
    assert ev("all(line in order.lines: line.hazmat)", ctx) is True
    assert ev("count(line in order.lines: true)", ctx) == 0
    assert ev("sum(line in order.lines: line.qty)", ctx) == 0
    with pytest.raises(RuleEvaluationFailed, match="no currency"):
        ev("sum(line in order.lines: line.price) > 1 EUR", ctx)
    with pytest.raises(RuleEvaluationFailed, match="empty"):
        ev("max_of(line in order.lines: line.qty)", ctx)


def test_bound_variable_is_scoped_to_the_body() -> None:
    assert problems("any(line in order.lines: line.hazmat) and line.hazmat") == [("unknown_field", 1, 43)]
    assert ev('any(x in order.lines: x.hazmat) and any(x in order.tags: x == "gift")') is True


# -- optional values ----------------------------------------------------------------------------------------
def test_nullable_value_used_as_a_value_fails_with_its_path_when_null() -> None:
    with pytest.raises(RuleEvaluationFailed, match=r"customer\.email is null"):
        ev('lower(customer.email) == "x"', make_ctx(customer_email=None))
    with pytest.raises(RuleEvaluationFailed, match=r"order\.billing is null"):
        ev('order.billing.country == "DE"')
    with pytest.raises(RuleEvaluationFailed, match=r"customer\.vip is null"):
        compile_expression("customer.vip", SCHEMA).evaluate(make_ctx())
    assert compile_expression("customer.vip", SCHEMA).evaluate(make_ctx(customer_vip=True)) is True
    assert ev("order.discount < 5 EUR", make_ctx(order_discount=eur(2))) is True
    billing = SimpleNamespace(country="FR", zip="75001")
    assert ev('order.billing.country == "FR"', make_ctx(order_billing=billing)) is True


def test_equality_with_a_nullable_value_is_null_safe() -> None:
    assert ev('customer.email == "ann@example.com"') is True
    assert ev('customer.email == "ann@example.com"', make_ctx(customer_email=None)) is False
    assert ev('order.coupon != "XMAS"') is True


# -- run-time failures ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("order.items / 0 > 1", "division by zero"),
        ("order.weight / (order.items - 3) > 1", "division by zero"),
        ("order.total / 0 > 1 EUR", "division by zero"),
        ("order.total / 0 EUR > 1", "division by zero"),
        ("days(order.items * 1000000000) > 1d", "OverflowError"),
    ],
)
def test_run_time_failures_raise_rule_evaluation_failed(text: str, pattern: str) -> None:
    with pytest.raises(RuleEvaluationFailed, match=pattern) as caught:
        ev(text)
    assert text in caught.value.message


def test_a_context_that_does_not_match_the_schema_fails_cleanly() -> None:
    with pytest.raises(RuleEvaluationFailed, match="AttributeError"):
        ev("order.total > 5 EUR", SimpleNamespace(order=SimpleNamespace()))
    with pytest.raises(RuleEvaluationFailed):
        ev("len(order.tags) > 1", make_ctx(order_tags=None))
    with pytest.raises(RuleEvaluationFailed):
        ev('starts_with(order.id, "x")', make_ctx(order_id=5))


# -- compiled expressions -----------------------------------------------------------------------------------
def test_compiled_expression_exposes_source_type_and_paths() -> None:
    expression = compile_expression("order.total > 5000 EUR and customer.is_new", SCHEMA)
    assert expression.source == "order.total > 5000 EUR and customer.is_new"
    assert expression.type == BOOL
    assert expression.paths == ("customer.is_new", "order.total")
    assert expression.evaluate(make_ctx()) is True
    assert expression(make_ctx(customer_is_new=False)) is False


def test_paths_inside_quantifiers_name_the_list_elements() -> None:
    expression = compile_expression(
        'any(line in order.lines: line.hazmat and line.qty > 1) or "gift" in order.tags', SCHEMA
    )
    assert expression.paths == ("order.lines[].hazmat", "order.lines[].qty", "order.tags")
    assert expression.inputs(make_ctx()) == {
        "order.lines[].hazmat": [False, True],
        "order.lines[].qty": [2, 1],
        "order.tags": ["gift", "express"],
    }


def test_a_bare_quantifier_variable_reads_the_whole_list() -> None:
    expression = compile_expression('any(tag in order.tags: tag == "gift") and len(order.id) > 2', SCHEMA)
    assert expression.paths == ("order.id", "order.tags")
    assert expression.inputs(make_ctx()) == {"order.id": "SO-1001", "order.tags": ["gift", "express"]}


def test_inputs_never_raise() -> None:
    expression = compile_expression('order.billing.country == "DE" and customer.is_new', SCHEMA)
    assert expression.inputs(make_ctx()) == {"customer.is_new": True, "order.billing.country": None}
    assert expression.inputs(SimpleNamespace()) == {"customer.is_new": None, "order.billing.country": None}
    looped = compile_expression("any(line in order.lines: line.hazmat)", SCHEMA)
    assert looped.inputs(make_ctx(order_lines=None)) == {"order.lines[].hazmat": None}
    assert looped.inputs(make_ctx(order_lines=[object()])) == {"order.lines[].hazmat": None}


def test_generated_code_holds_no_user_text() -> None:
    text = 'order.id in ["x\\" + __import__(\'os\').name + \\"", "SO-1001"] and matches(order.id, "^SO")'
    expression = compile_expression(text, SCHEMA)
    assert expression.evaluate(make_ctx()) is True
    assert "import" not in expression.python_source
    assert "SO" not in expression.python_source
    assert '"' not in expression.python_source and "'" not in expression.python_source


def test_literal_lists_become_frozen_sets_for_membership() -> None:
    expression = compile_expression('customer.segment in ["new", "unknown"]', SCHEMA)
    assert expression.python_source == "lambda ctx: (ctx.customer.segment in _k0)"


def test_expect_checks_the_result_type() -> None:
    assert compile_expression("order.total * 2", SCHEMA, expect=MONEY).type == MONEY
    assert compile_expression("order.items", SCHEMA, expect=DECIMAL).type == INT  # an int is a number
    assert problems("order.total * 2", expect=INT) == [("type_mismatch", 1, 13)]
    assert problems("order.total") == [("not_boolean", 1, 1)]
    assert problems("1 + 1") == [("not_boolean", 1, 3)]


def test_check_returns_the_type_of_a_tree() -> None:
    assert check(parse("order.total * 2"), SCHEMA, expect=None) == MONEY
    assert check(parse("customer.email"), SCHEMA, expect=None) == Nullable(STRING)
    with pytest.raises(InvalidExpression):
        check(parse("order.total"), SCHEMA)


# -- refusals -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("order.total >", [("syntax_error", 1, 14)]),
        ("", [("syntax_error", 1, 1)]),
        ("order.total > > 5 EUR", [("unexpected_token", 1, 15)]),
        ("(customer.is_new", [("syntax_error", 1, 17)]),
        ("customer.is_new)", [("unexpected_token", 1, 16)]),
        ("customer.is_new customer.is_new", [("unexpected_token", 1, 17)]),
        ("[1, 2", [("syntax_error", 1, 6)]),
        ("order.items = 3", [("syntax_error", 1, 13)]),
        ("order.items ! 3", [("syntax_error", 1, 13)]),
        ("order.total > 5 eur", [("unexpected_token", 1, 17)]),
        ("order.tags[0] == 1", [("syntax_error", 1, 11)]),
        ("(customer).is_new()", [("method_call", 1, 12)]),
        ('order.id.lower() == "x"', [("method_call", 1, 10)]),
        ("(lower)(order.id)", [("syntax_error", 1, 8)]),
        ('"abc', [("unterminated_string", 1, 1)]),
        ("customer.is_new and 'abc", [("unterminated_string", 1, 21)]),
        ('"abc\ndef"', [("unterminated_string", 1, 1)]),
        ('order.id == "a\\qb"', [("bad_literal", 1, 15)]),
        ("order.items > 30x", [("bad_literal", 1, 15)]),
        ("order.window > 1.5d", [("bad_literal", 1, 16)]),
        ("order.total > 12.345 EUR", [("bad_literal", 1, 15)]),
        ("order.total > 5 XYZ", [("unknown_currency", 1, 17)]),
        ('now > datetime("2026-12-24T10:00:00")', [("bad_literal", 1, 16)]),
        ('today > date("2026-13-01")', [("bad_literal", 1, 14)]),
        ("today > date(order.id)", [("bad_literal", 1, 14)]),
        ('today > date("2026-12-01", "x")', [("unexpected_token", 1, 26)]),
        ("1 < 2 < 3", [("chained_comparison", 1, 7)]),
        ("1 == 1 == 1", [("chained_comparison", 1, 8)]),
        ('"a" in order.tags in [true]', [("chained_comparison", 1, 19)]),
        ("1 == not true", [("syntax_error", 1, 6)]),
        ("order.totl > 5 EUR", [("unknown_field", 1, 7)]),
        ("ordr.total > 5 EUR", [("unknown_field", 1, 1)]),
        ("order.lines.sku == 1", [("type_mismatch", 1, 13)]),
        ("foo(1)", [("unknown_function", 1, 1)]),
        ("lenn(order.tags) > 1", [("unknown_function", 1, 1)]),
        ("len(order.tags, 2) > 1", [("wrong_arity", 1, 1)]),
        ("min(1) > 0", [("wrong_arity", 1, 1)]),
        ("round(1.5, 1, 2) > 0", [("wrong_arity", 1, 1)]),
        ("any(order.lines)", [("syntax_error", 1, 5)]),
        ("order.total > 5", [("type_mismatch", 1, 13)]),
        ("order.items + 1 EUR > 1 EUR", [("type_mismatch", 1, 13)]),
        ('order.weight + "a" > 1', [("type_mismatch", 1, 14)]),
        ("today - now > 1d", [("type_mismatch", 1, 7)]),
        ("1 EUR / 1h > 1 EUR", [("type_mismatch", 1, 7)]),
        ("true < false", [("type_mismatch", 1, 6)]),
        ("customer.is_new and 1", [("type_mismatch", 1, 21)]),
        ("not order.items", [("type_mismatch", 1, 1)]),
        ('-"abc" == "x"', [("type_mismatch", 1, 1)]),
        ("order.items in order.tags", [("type_mismatch", 1, 13)]),
        ('"DE" in order.items', [("type_mismatch", 1, 6)]),
        ('["a", 1] == ["a"]', [("type_mismatch", 1, 7)]),
        ("customer.is_new == null", [("type_mismatch", 1, 17)]),
        ("null == null", [("type_mismatch", 1, 6)]),
        ("null + 1 > 0", [("type_mismatch", 1, 1)]),
        ("order.ship_to == order.ship_to", [("type_mismatch", 1, 15)]),
        ("lower(order.items) == 1", [("type_mismatch", 1, 1)]),
        ("days(1.5) > 1d", [("type_mismatch", 1, 1)]),
        ("sum(line in order.lines: line.sku) == 1", [("type_mismatch", 1, 26)]),
        ("any(line in order.lines: line.qty)", [("type_mismatch", 1, 26)]),
        ("any(tag in order.id: true)", [("type_mismatch", 1, 12)]),
        ("any(order in order.lines: true)", [("shadowed_name", 1, 1)]),
        ("any(l in order.lines: any(l in order.tags: true))", [("shadowed_name", 1, 23)]),
        ('matches(order.id, "(")', [("bad_regex", 1, 19)]),
        ("matches(order.id, order.id)", [("bad_regex", 1, 19)]),
        (f'matches(order.id, "{"a" * 201}")', [("bad_regex", 1, 19)]),
        ("order.__class__ == 1", [("forbidden_name", 1, 7)]),
        ("_x", [("forbidden_name", 1, 1)]),
        ('__import__("os")', [("forbidden_name", 1, 1)]),
        ("order._secret == 1", [("forbidden_name", 1, 7)]),
        ("customer.a__b", [("forbidden_name", 1, 10)]),
        ("any(_l in order.lines: true)", [("forbidden_name", 1, 5)]),
        ("customer.is_new.__class__.__mro__", [("forbidden_name", 1, 17), ("forbidden_name", 1, 27)]),
    ],
)
def test_refusals_have_a_code_and_a_position(text: str, expected: list[tuple[str, int, int]]) -> None:
    assert problems(text) == expected


def test_positions_are_line_and_column_in_multi_line_text() -> None:
    text = "customer.is_new and\n  order.totl > 5 EUR\n  or 1 < 2 < 3"
    assert problems(text) == [("chained_comparison", 3, 12)]
    assert problems("customer.is_new and\n  order.totl > 5 EUR") == [("unknown_field", 2, 9)]


def test_unknown_names_come_with_a_suggestion() -> None:
    assert "did you mean 'total'?" in messages("order.totl > 5 EUR")
    assert "did you mean 'order'?" in messages("ordr.total > 5 EUR")
    assert "did you mean 'len'?" in messages("lenn(order.tags) > 1")
    assert "did you mean 'segment'?" in messages('customer.segmant == "x"')


def test_every_type_error_of_an_expression_is_reported_together() -> None:
    text = 'order.total > 5 and customer.segment > 3 and lenn(order.tags) and order.totl == "x"'
    assert problems(text) == [
        ("type_mismatch", 1, 13),
        ("type_mismatch", 1, 38),
        ("unknown_function", 1, 46),
        ("unknown_field", 1, 73),
    ]
    assert [c for c, _, _ in problems("_a and b__c and 12.345 EUR > 1 XYZ")] == [
        "forbidden_name",
        "forbidden_name",
        "bad_literal",
        "unknown_currency",
    ]
    # a load-time literal problem and a type problem are found together
    assert problems('datetime("2026-01-01T10:00:00") > 1') == [
        ("bad_literal", 1, 10),
        ("type_mismatch", 1, 33),
    ]


def test_refusal_messages_are_readable() -> None:
    assert "cannot compare money > int" in messages("order.total > 5")
    assert "comparisons cannot be chained" in messages("1 < 2 < 3")
    assert "has no time zone" in messages('now > datetime("2026-12-24T10:00:00")')
    assert "EUR allows (2)" in messages("order.total > 12.345 EUR")


# -- limits -------------------------------------------------------------------------------------------------
def test_too_long() -> None:
    assert problems("1 + " * 3000 + "1") == [("too_long", 1, 1)]
    assert problems("customer.is_new", limits=Limits(max_length=10)) == [("too_long", 1, 1)]


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000 + "true" + ")" * 10_000,
        "not " * 2_400 + "true",
        "-" * 9_000 + "1 > 0",
        "[" * 5_000 + "]" * 5_000,
        "len(" * 2_000 + '"x"' + ")" * 2_000 + " > 1",
        "any(x in [" * 1_000,
        "1 + " * 45 + "1 > 0",
    ],
)
def test_too_deep_never_reaches_the_recursion_limit(text: str) -> None:
    assert [code for code, _, _ in problems(text, limits=Limits(max_length=100_000))] == ["too_deep"]


def test_nesting_up_to_the_limit_is_fine() -> None:
    assert ev("(" * 30 + "1" + ")" * 30 + " > 0") is True
    assert ev(" or ".join(["customer.is_new"] * 30)) is True


def test_long_and_or_chains_are_balanced_not_nested() -> None:
    # 300 terms would nest 300 deep as a left-leaning tree; balanced, they take depth 9 and stay in order
    chain = " or ".join(["customer.is_new"] * 299 + ["true"])
    assert ev(chain) is True
    tree = parse(chain)
    depth = 0
    node: Node = tree
    while isinstance(node, Binary):
        depth, node = depth + 1, node.left
    assert depth <= 9
    assert unparse(parse(unparse(tree))) == unparse(tree)
    assert ev(" and ".join(["true"] * 200 + ["customer.is_new"])) is True


def test_too_many_nodes() -> None:
    text = "min(" + ", ".join(["1"] * 1_200) + ") > 0"
    assert [code for code, _, _ in problems(text)] == ["too_many_nodes"]
    assert [code for code, _, _ in problems("[1, 2, 3] == [1]", limits=Limits(max_nodes=3))] == [
        "too_many_nodes"
    ]


def test_huge_list_literals_and_strings() -> None:
    huge = "order.items in [" + "1, " * 1_500 + "]"
    assert [code for code, _, _ in problems(huge)] == ["too_many_nodes"]
    assert problems("order.items in [1, 2, 3]", limits=Limits(max_list=2)) == [("too_many_items", 1, 16)]
    assert problems('order.id == "' + "a" * 1_001 + '"') == [("too_long", 1, 13)]
    assert ev('order.id == "' + "a" * 1_000 + '"') is False
    assert problems("order.items > " + "9" * 101) == [("bad_literal", 1, 15)]


def test_limits_are_a_frozen_value_with_defaults() -> None:
    limits = Limits()
    assert (limits.max_length, limits.max_depth, limits.max_nodes, limits.max_string, limits.max_list) == (
        10_000,
        40,
        1_000,
        1_000,
        1_000,
    )
    with pytest.raises(AttributeError):
        limits.max_depth = 3  # type: ignore[misc]


# -- schema -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["__class__", "_private", "a__b", "and", "null", "1abc", "with space", "ünï"]
)
def test_schema_refuses_unusable_field_names(name: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        Schema(Record("root", {"order": Record("order", {name: INT})}))
    assert caught.value.code == "invalid_schema"
    assert caught.value.field == f"order.{name}"


def test_schema_refuses_values_that_are_not_types() -> None:
    with pytest.raises(InvalidValue):
        Schema(Record("root", {"order": int}))  # type: ignore[dict-item]
    with pytest.raises(InvalidValue):
        Nullable(Nullable(INT))


def test_types_print_readably() -> None:
    assert str(ListOf(Nullable(MONEY))) == "list[money?]"
    assert str(ORDER) == "order"
    assert Record("r", {"a": INT}) == Record("r", {"a": INT})
    assert hash(Record("r", {"a": INT})) == hash(Record("r", {"a": INT}))


# -- parse and unparse --------------------------------------------------------------------------------------
def test_parse_returns_a_tree_with_positions() -> None:
    tree = parse("order.items > 2")
    assert tree == Binary(">", parse("order.items"), Literal(2, "int"))
    assert isinstance(tree, Binary)
    assert (tree.line, tree.column) == (1, 13)
    assert (tree.right.line, tree.right.column) == (1, 15)
    assert parse("order") == Name("order")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("order.total>5000EUR and(customer.is_new)", "order.total > 5000.00 EUR and customer.is_new"),
        ("(1 + 2) * 3", "(1 + 2) * 3"),
        ("1 + (2 * 3)", "1 + 2 * 3"),
        ("1 - (2 - 3)", "1 - (2 - 3)"),
        ("(1 < 2) == true", "(1 < 2) == true"),
        ("not (a and b)", "not (a and b)"),
        ("(not a) == b", "(not a) == b"),
        ("- (-1)", "- -1"),
        ("-(1 + 2)", "-(1 + 2)"),
        ("a or (b or c)", "a or (b or c)"),
        ("x not in ['a', 'b']", 'x not in ["a", "b"]'),
        ("any( l in order.lines : l.hazmat )", "any(l in order.lines: l.hazmat)"),
        ("14d + 36h + 90m + 0s", "2w + 36h + 90m + 0s"),
        ('date("2026-12-24")', 'date("2026-12-24")'),
        ("'it\\'s \"x\"\\n'", '"it\'s \\"x\\"\\n"'),
        ("12.50", "12.50"),
    ],
)
def test_unparse_prints_canonical_source(text: str, canonical: str) -> None:
    assert unparse(parse(text)) == canonical
    assert parse(canonical) == parse(text)


def test_error_codes_are_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rules-language.md").read_text(encoding="utf-8")
    for code in ERROR_CODES:
        assert f"`{code}`" in doc, code


@pytest.mark.parametrize("given", [5, None, b"total > 0", ["total > 0"]])
def test_an_expression_or_message_that_is_not_text_is_refused_naming_it(given: object) -> None:
    from ordercore.rules import compile_condition, compile_message

    with pytest.raises(InvalidValue) as err:
        compile_condition(given)  # type: ignore[arg-type]
    assert err.value.field == "expression"
    with pytest.raises(InvalidValue) as err:
        compile_message(given)  # type: ignore[arg-type]
    assert err.value.field == "text"
