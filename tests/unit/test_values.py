"""Value objects (identifiers, addresses, actors, lines, quantity buckets) and the error
hierarchy: invalid values are refused with typed errors that name the field."""

import inspect
import json
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ordercore
import ordercore.errors as errors_module
from ordercore import (
    Actor,
    Address,
    Adjustment,
    Channel,
    CustomerId,
    CustomerRef,
    GeoPoint,
    IllegalTransition,
    InsufficientStock,
    InvalidAddress,
    InvalidIdentifier,
    InvalidQuantity,
    InvalidTimestamp,
    InvalidValue,
    LineId,
    LineQuantities,
    Money,
    NewLine,
    OrderCoreError,
    OrderId,
    OrderStatus,
    Problem,
    QuantityExceeded,
    SequentialIds,
    Sku,
    TaxLine,
    Triggers,
    ValidationFailed,
)
from ordercore.lines import BUCKETS
from ordercore.values import MAX_QUANTITY, check_aware, check_quantity, text_fault

FAST = settings(max_examples=200, deadline=None)
IDENTIFIER_TYPES = [OrderId, LineId, CustomerId, Channel, Sku]
BERLIN = {"country": "DE", "postal_code": "10115", "city": "Berlin", "line1": "Invalidenstr. 1"}


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


# -- identifiers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", IDENTIFIER_TYPES)
@pytest.mark.parametrize("value", ["a", "O-000001", "SKU_12.b", "amazon-de", "a:b/c#d", "9", "x" * 64])
def test_valid_identifiers_are_accepted(cls: type, value: str) -> None:
    ident = cls(value)
    assert ident.value == value
    assert str(ident) == value
    assert cls(value) == ident
    assert hash(cls(value)) == hash(ident)


@pytest.mark.parametrize("cls", IDENTIFIER_TYPES)
@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("x" * 65, "too long"),
        ("a b", "inner space"),
        (" ab", "leading space"),
        ("ab ", "trailing space"),
        ("ab\n", "trailing newline"),
        ("a\tb", "tab"),
        ("-ab", "starts with a dash"),
        ("_ab", "starts with an underscore"),
        (".ab", "starts with a dot"),
        ("#1", "starts with a hash"),
        ("ab$", "bad character"),
        ("Müller", "non-ASCII letter"),
    ],
)
def test_invalid_identifiers_are_refused(cls: type, value: str, why: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        cls(value)
    assert info.value.field == cls.kind
    assert info.value.value == value
    assert info.value.code == "invalid_identifier"


@pytest.mark.parametrize("value", [None, 12, b"abc", ["a"]])
def test_non_string_identifiers_are_refused(value: object) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        OrderId(value)  # type: ignore[arg-type]
    assert info.value.field == "order_id"


def test_identifier_kinds_name_the_field() -> None:
    assert [cls.kind for cls in IDENTIFIER_TYPES] == ["order_id", "line_id", "customer_id", "channel", "sku"]


def test_parse_accepts_an_instance_or_its_string_form() -> None:
    sku = Sku("A-1")
    assert Sku.parse(sku) is sku
    assert Sku.parse("A-1") == sku
    assert LineId.parse("1") == LineId("1")
    with pytest.raises(InvalidIdentifier):
        Sku.parse(" A-1")
    with pytest.raises(InvalidIdentifier):
        Sku.parse(12)
    # an identifier of another kind is not silently re-labelled
    with pytest.raises(InvalidIdentifier):
        LineId.parse(OrderId("O-1"))


def test_identifiers_of_different_kinds_are_not_equal() -> None:
    assert OrderId("x") != LineId("x")
    assert Sku("x") != "x"


def test_identifiers_are_immutable() -> None:
    with pytest.raises(AttributeError):
        OrderId("a").value = "b"  # type: ignore[misc]


# -- addresses ------------------------------------------------------------------------------------------------
def test_a_valid_address() -> None:
    a = Address(**BERLIN, line2="2. OG", region="BE", name="Ada", email="ada@example.com", phone="+49 30")
    assert a.country == "DE"
    assert a.coordinates is None
    with_coords = Address(**BERLIN, coordinates=GeoPoint(52.53, 13.38))
    assert with_coords.coordinates == GeoPoint(52.53, 13.38)
    assert Address(**{**BERLIN, "postal_code": "SW1A 1AA", "country": "GB"}).postal_code == "SW1A 1AA"


def test_every_address_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as info:
        Address(country="XX", postal_code="!!", city="   ", line1="Main St 1")
    err = info.value
    assert sorted(err.fields) == ["city", "country", "postal_code"]
    assert len(err.problems) == 3
    assert all(p.code == InvalidAddress.code for p in err.problems)
    assert {p.field: p.value for p in err.problems} == {"country": "XX", "postal_code": "!!", "city": "   "}
    assert err.subject == "address"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("country", "de"),
        ("country", "DEU"),
        ("country", ""),
        ("postal_code", ""),
        ("postal_code", "1234567890123"),
        ("postal_code", "-123"),
        ("city", ""),
        ("line1", " "),
        ("email", "no-at-sign"),
        ("email", "@example.com"),
        ("name", "x" * 201),
        ("coordinates", (52.5, 13.4)),
    ],
)
def test_each_bad_field_is_named(field: str, value: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        Address(**{**BERLIN, field: value})  # type: ignore[arg-type]
    assert info.value.fields == (field,)


def test_non_string_fields_are_reported_each() -> None:
    with pytest.raises(ValidationFailed) as info:
        Address(country="DE", postal_code=10115, city=None, line1="x")  # type: ignore[arg-type]
    assert sorted(info.value.fields) == ["city", "postal_code"]
    assert all("must be a string" in p.message for p in info.value.problems)


def test_address_is_a_hashable_value() -> None:
    assert Address(**BERLIN) == Address(**BERLIN)
    assert len({Address(**BERLIN), Address(**BERLIN)}) == 1


@pytest.mark.parametrize(
    ("lat", "lon"), [(0, 0), (90, 180), (-90, -180), (52.52, 13.405), (-33.9, 151.2), (0.0, -0.0)]
)
def test_geopoint_in_range(lat: float, lon: float) -> None:
    assert GeoPoint(lat, lon).latitude == lat


@pytest.mark.parametrize(
    ("lat", "lon", "fields"),
    [
        (90.0001, 0, ("latitude",)),
        (-91, 0, ("latitude",)),
        (0, 180.5, ("longitude",)),
        (0, -181, ("longitude",)),
        (91, 181, ("latitude", "longitude")),
        (float("nan"), 0, ("latitude",)),
        (0, float("inf"), ("longitude",)),
        (True, 0, ("latitude",)),
        ("52.5", 0, ("latitude",)),
        (None, None, ("latitude", "longitude")),
    ],
)
def test_geopoint_out_of_range_is_refused(lat: object, lon: object, fields: tuple[str, ...]) -> None:
    with pytest.raises(ValidationFailed) as info:
        GeoPoint(lat, lon)  # type: ignore[arg-type]
    assert info.value.fields == fields


def test_customer_ref_needs_a_customer_id() -> None:
    assert CustomerRef(CustomerId("c-1"), segment="vip").segment == "vip"
    with pytest.raises(InvalidIdentifier) as info:
        CustomerRef("c-1")  # type: ignore[arg-type]
    assert info.value.field == "customer.id"


# -- actors ---------------------------------------------------------------------------------------------------
def test_actor_constructors() -> None:
    assert Actor.user("alice") == Actor("user", "alice")
    assert Actor.system("rules") == Actor("system", "rules")
    assert Actor.channel("web") == Actor("channel", "web")
    assert str(Actor.user("alice")) == "user:alice"
    assert Actor("integration", "x" * 128).id == "x" * 128


@pytest.mark.parametrize(
    ("kind", "ident", "field"),
    [
        ("", "a", "kind"),
        ("user", "", "id"),
        ("user", "x" * 129, "id"),
        (None, "a", "kind"),
        ("user", 5, "id"),
    ],
)
def test_invalid_actor_is_refused(kind: object, ident: object, field: str) -> None:
    with pytest.raises(InvalidValue) as info:
        Actor(kind, ident)  # type: ignore[arg-type]
    assert info.value.field == field


# -- check_quantity / check_aware -----------------------------------------------------------------------------
def test_check_quantity_accepts_whole_numbers() -> None:
    assert check_quantity(1, "q") == 1
    assert check_quantity(10**9, "q") == 10**9
    assert check_quantity(0, "q", allow_zero=True) == 0


@pytest.mark.parametrize(
    ("value", "allow_zero"),
    [
        (0, False),
        (-1, False),
        (-1, True),
        (1.0, False),
        (True, False),
        (False, True),
        ("1", False),
        (None, True),
        (Decimal(1), False),
    ],
)
def test_check_quantity_refuses(value: object, allow_zero: bool) -> None:
    with pytest.raises(InvalidQuantity) as info:
        check_quantity(value, "lines[0].quantity", allow_zero=allow_zero)
    assert info.value.field == "lines[0].quantity"
    assert info.value.value is value


class _NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> None:
        return None


def test_check_aware() -> None:
    aware = datetime(2026, 1, 1, tzinfo=UTC)
    assert check_aware(aware, "at") is aware
    plus2 = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2)))
    assert check_aware(plus2, "at") is plus2
    for bad in (
        datetime(2026, 1, 1),
        datetime(2026, 1, 1, tzinfo=_NoOffset()),
        "2026-01-01T00:00:00Z",
        None,
        0,
    ):
        with pytest.raises(InvalidTimestamp) as info:
            check_aware(bad, "at")
        assert info.value.field == "at"


# -- lines: adjustments, taxes, new lines ---------------------------------------------------------------------
def test_adjustment_and_tax_line() -> None:
    assert Adjustment("SUMMER10", eur("1.00")).description == ""
    assert Adjustment("free", eur("0")).amount.is_zero
    assert TaxLine("VAT", Decimal("0.19"), eur("3.80")).rate == Decimal("0.19")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"code": "", "amount": eur("1")}, "code"),
        ({"code": "  ", "amount": eur("1")}, "code"),
        ({"code": "x" * 65, "amount": eur("1")}, "code"),
        ({"code": 5, "amount": eur("1")}, "code"),
        ({"code": "X", "amount": eur("-1")}, "amount"),
        ({"code": "X", "amount": Decimal("1")}, "amount"),
        ({"code": "X", "amount": eur("1"), "description": "d" * 201}, "description"),
    ],
)
def test_invalid_adjustment_is_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as info:
        Adjustment(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("rate", "amount", "field"),
    [
        (0.19, eur("1"), "rate"),
        (Decimal("NaN"), eur("1"), "rate"),
        (Decimal("-0.1"), eur("1"), "rate"),
        (True, eur("1"), "rate"),
        (Decimal("0.19"), eur("-1"), "amount"),
        (Decimal("0.19"), "1.00", "amount"),
    ],
)
def test_invalid_tax_line_is_refused(rate: object, amount: object, field: str) -> None:
    with pytest.raises(InvalidValue) as info:
        TaxLine("VAT", rate, amount)  # type: ignore[arg-type]
    assert info.value.field == field


def test_new_line_defaults_and_conversions() -> None:
    line = NewLine(
        Sku("A"),
        2,
        eur("9.99"),
        discounts=[Adjustment("P", eur("1"))],
        taxes=iter([TaxLine("VAT", Decimal("0.19"), eur("3.60"))]),
        attributes={"colour": "red"},
    )
    assert line.line_id is None
    assert line.uom == "EA"
    assert isinstance(line.discounts, tuple)
    assert isinstance(line.taxes, tuple)
    assert line.attributes == {"colour": "red"}
    hash(line)  # a value: hashable despite the attributes dict


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"sku": "A"}, InvalidValue, "sku"),
        ({"quantity": 0}, InvalidQuantity, "quantity"),
        ({"quantity": 1.0}, InvalidQuantity, "quantity"),
        ({"quantity": True}, InvalidQuantity, "quantity"),
        ({"unit_price": Decimal("1")}, InvalidValue, "unit_price"),
        ({"line_id": "1"}, InvalidValue, "line_id"),
        ({"uom": ""}, InvalidValue, "uom"),
        ({"uom": "x" * 17}, InvalidValue, "uom"),
        ({"description": "d" * 501}, InvalidValue, "description"),
        ({"attributes": [("a", "b")]}, InvalidValue, "attributes"),
        ({"attributes": {"a": 1}}, InvalidValue, "attributes['a']"),
    ],
)
def test_invalid_new_line_is_refused(kwargs: dict[str, object], error: type, field: str) -> None:
    args: dict[str, object] = {"sku": Sku("A"), "quantity": 1, "unit_price": eur("1.00"), **kwargs}
    with pytest.raises(error) as info:
        NewLine(**args)  # type: ignore[arg-type]
    assert info.value.field == field


# -- line quantities ------------------------------------------------------------------------------------------
def _buckets(q: LineQuantities) -> dict[str, int]:
    return {name: getattr(q, name) for name in BUCKETS}


def _assert_consistent(q: LineQuantities) -> None:
    assert all(v >= 0 for v in _buckets(q).values())
    assert sum(_buckets(q).values()) == q.ordered


def test_new_line_quantities_are_all_open() -> None:
    q = LineQuantities.new(5)
    assert q.open == 5
    assert q.ordered == 5
    assert q.live == 5
    assert sum(_buckets(q).values()) == 5


def test_buckets_must_add_up_to_ordered() -> None:
    with pytest.raises(InvalidQuantity) as info:
        LineQuantities(ordered=5, open=3, allocated=1)
    assert info.value.field == "ordered"
    with pytest.raises(InvalidQuantity):
        LineQuantities(ordered=3, open=3, shipped=1)
    assert LineQuantities(ordered=4, open=1, allocated=1, shipped=1, cancelled=1).live == 3


@pytest.mark.parametrize("bucket", BUCKETS)
def test_negative_buckets_are_refused_even_when_the_sum_matches(bucket: str) -> None:
    other = "open" if bucket != "open" else "allocated"
    with pytest.raises(InvalidQuantity) as info:
        LineQuantities(**{"ordered": 2, "open": 0, other: 3, bucket: -1})  # type: ignore[arg-type]
    assert info.value.field == bucket


def test_non_int_buckets_are_refused() -> None:
    with pytest.raises(InvalidQuantity):
        LineQuantities(ordered=1, open=1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuantity):
        LineQuantities(ordered=True, open=True)  # type: ignore[arg-type]


def test_move_draws_from_the_sources_in_order() -> None:
    q = LineQuantities(ordered=10, open=2, backordered=3, allocated=5)
    moved = q.move(("open", "backordered"), "allocated", 4)
    assert _buckets(moved) == {**_buckets(q), "open": 0, "backordered": 1, "allocated": 9}
    other_order = q.move(("backordered", "open"), "allocated", 4)
    assert (other_order.open, other_order.backordered) == (1, 0)
    assert q.open == 2  # the original value is unchanged


def test_move_refuses_more_than_the_sources_hold() -> None:
    q = LineQuantities(ordered=10, open=2, backordered=3, allocated=5)
    with pytest.raises(QuantityExceeded) as info:
        q.move(("open", "backordered"), "allocated", 6, field="lines[1]")
    assert info.value.field == "lines[1]"
    assert info.value.value == 6
    assert "5" in info.value.reason  # says how many are available
    assert q.move(("open", "backordered"), "allocated", 5).allocated == 10


@pytest.mark.parametrize("bad", [-1, -2, 1.0, True, "1", None])
def test_move_refuses_a_negative_or_non_int_quantity(bad: object) -> None:
    # a negative move would silently push units back from the target into the first source
    q = LineQuantities(ordered=5, open=3, allocated=2)
    with pytest.raises(InvalidQuantity) as info:
        q.move(("open",), "allocated", bad, field="lines[1]")  # type: ignore[arg-type]
    assert info.value.field == "lines[1]"


def test_resize_grows_open() -> None:
    q = LineQuantities(ordered=5, open=1, allocated=2, shipped=2)
    grown = q.resize(8)
    assert _buckets(grown) == {**_buckets(q), "open": 4}
    assert grown.ordered == 8
    assert q.resize(5) == q


def test_resize_shrinks_open_then_backordered_then_allocated() -> None:
    q = LineQuantities(ordered=10, open=2, backordered=2, allocated=2, released=2, shipped=2)
    assert _buckets(q.resize(9)) == {**_buckets(q), "open": 1}
    assert _buckets(q.resize(7)) == {**_buckets(q), "open": 0, "backordered": 1}
    assert _buckets(q.resize(5)) == {**_buckets(q), "open": 0, "backordered": 0, "allocated": 1}
    assert _buckets(q.resize(4)) == {**_buckets(q), "open": 0, "backordered": 0, "allocated": 0}
    assert q.resize(4).ordered == 4


def test_resize_refuses_to_go_below_released_and_shipped_units() -> None:
    q = LineQuantities(ordered=10, open=2, backordered=2, allocated=2, released=2, shipped=2)
    with pytest.raises(QuantityExceeded) as info:
        q.resize(3, field="lines[0].quantity")
    assert info.value.field == "lines[0].quantity"
    assert info.value.value == 3
    assert "4" in info.value.reason  # the floor


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_resize_refuses_a_non_positive_quantity(bad: object) -> None:
    with pytest.raises(InvalidQuantity):
        LineQuantities.new(3).resize(bad)  # type: ignore[arg-type]


def test_resize_refuses_to_leave_no_live_units() -> None:
    q = LineQuantities(ordered=5, open=2, cancelled=3)
    with pytest.raises(InvalidQuantity):
        q.resize(3)
    assert q.resize(4).live == 1


def test_quantities_add_up_across_lines() -> None:
    a = LineQuantities(ordered=3, open=1, shipped=2)
    b = LineQuantities(ordered=2, open=0, allocated=1, cancelled=1)
    total = LineQuantities.total([a, b])
    assert _buckets(total) == {
        **{n: 0 for n in BUCKETS},
        "open": 1,
        "allocated": 1,
        "shipped": 2,
        "cancelled": 1,
    }
    assert total.ordered == 5
    assert LineQuantities.total([]) == LineQuantities.new(0)


bucket_sources = st.lists(st.sampled_from(BUCKETS), min_size=1, max_size=4, unique=True).map(tuple)
moves = st.tuples(bucket_sources, st.sampled_from(BUCKETS), st.integers(1, 25))


@FAST
@given(st.integers(1, 30), st.lists(moves, max_size=30))
def test_random_moves_keep_every_bucket_non_negative_and_the_sum_ordered(
    ordered: int, steps: list[tuple[tuple[str, ...], str, int]]
) -> None:
    q = LineQuantities.new(ordered)
    for sources, target, quantity in steps:
        before = _buckets(q)
        available = sum(before[s] for s in sources)
        if quantity > available:
            with pytest.raises(QuantityExceeded):
                q.move(sources, target, quantity)
            continue
        q = q.move(sources, target, quantity)
        _assert_consistent(q)
        assert q.ordered == ordered
        after = _buckets(q)
        # the sources are drained in order, the target gets every unit taken
        expected = dict(before)
        left = quantity
        for s in sources:
            take = min(left, expected[s])
            expected[s] -= take
            left -= take
        expected[target] += quantity
        assert after == expected


@FAST
@given(
    st.fixed_dictionaries({name: st.integers(0, 6) for name in BUCKETS}).filter(
        lambda b: sum(b.values()) - b["cancelled"] > 0
    ),
    st.integers(1, 60),
)
def test_resize_keeps_the_invariants_and_only_touches_unreleased_buckets(
    buckets: dict[str, int], new_ordered: int
) -> None:
    q = LineQuantities(ordered=sum(buckets.values()), **buckets)
    floor = q.ordered - q.open - q.backordered - q.allocated
    if new_ordered < floor:
        with pytest.raises(QuantityExceeded):
            q.resize(new_ordered)
        return
    if new_ordered - q.cancelled <= 0:
        with pytest.raises(InvalidQuantity):
            q.resize(new_ordered)
        return
    r = q.resize(new_ordered)
    _assert_consistent(r)
    assert r.ordered == new_ordered
    for name in ("released", "shipped", "delivered", "returned", "cancelled"):
        assert getattr(r, name) == getattr(q, name)
    if new_ordered >= q.ordered:
        assert r.open == q.open + (new_ordered - q.ordered)
    else:  # shrinking never touches backordered before open is empty, nor allocated before backordered
        assert r.open <= q.open and r.backordered <= q.backordered and r.allocated <= q.allocated
        assert r.backordered == q.backordered or r.open == 0
        assert r.allocated == q.allocated or r.backordered == 0


# -- the error hierarchy --------------------------------------------------------------------------------------
def _error_classes() -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(obj, BaseException) and obj.__module__ == errors_module.__name__
    ]


SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def test_there_are_error_classes_to_check() -> None:
    assert len(_error_classes()) >= 20


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_is_an_ordercore_error_with_a_snake_case_code(cls: type) -> None:
    assert issubclass(cls, OrderCoreError)
    assert isinstance(cls.code, str)
    assert SNAKE.fullmatch(cls.code), cls.code
    assert cls.__name__ in errors_module.__all__
    assert cls.__name__ in ordercore.__all__


def test_error_codes_are_unique_per_class() -> None:
    owners: dict[str, list[str]] = {}
    for cls in _error_classes():
        if "code" in vars(cls):  # declared here, not inherited
            owners.setdefault(vars(cls)["code"], []).append(cls.__name__)
    assert {code: names for code, names in owners.items() if len(names) > 1} == {}
    # a subclass that declares a code must not reuse one of its ancestors'
    for cls in _error_classes():
        if "code" in vars(cls):
            for base in cls.__mro__[1:]:
                if "code" in vars(base):
                    assert vars(base)["code"] != vars(cls)["code"], (cls, base)


def test_errors_subclass_the_matching_builtins() -> None:
    assert issubclass(errors_module.InvalidValue, ValueError)
    assert issubclass(errors_module.ValidationFailed, ValueError)
    assert issubclass(errors_module.NotFound, LookupError)
    assert issubclass(errors_module.OrderNotFound, errors_module.NotFound)
    assert issubclass(errors_module.QuantityExceeded, InvalidValue)


def test_an_instance_may_narrow_its_code_without_changing_the_class() -> None:
    e = InvalidValue("too small", field="x", value=1, code="too_small")
    assert e.code == "too_small"
    assert e.problem() == Problem("x", "too_small", "too small", 1)
    assert InvalidValue.code == "invalid_value"
    assert InvalidValue("y").code == "invalid_value"


def test_invalid_value_carries_field_value_and_reason() -> None:
    e = InvalidValue("must be positive", field="lines[0].quantity", value=-1)
    assert str(e) == "lines[0].quantity: must be positive"
    assert e.to_dict() == {
        "code": "invalid_value",
        "message": "must be positive",
        "field": "lines[0].quantity",
        "value": "-1",
    }
    assert str(InvalidValue("plain")) == "plain"


def test_problem_at_prefixes_the_path() -> None:
    p = Problem("sku", "invalid_identifier", "bad", " x")
    assert p.at("lines[0]").field == "lines[0].sku"
    assert p.at("").field == "sku"
    assert Problem("[2]", "c", "m").at("lines").field == "lines[2]"
    assert Problem("", "c", "m").at("currency").field == "currency"
    assert str(p) == "sku: bad (invalid_identifier)"
    assert str(Problem("", "invalid_json", "oops")) == "<input>: oops (invalid_json)"


def test_validation_failed_lists_every_problem() -> None:
    problems = [Problem("a", "c1", "m1", 1), Problem("b.c", "c2", "m2", "x")]
    e = ValidationFailed(problems, subject="thing")
    assert e.fields == ("a", "b.c")
    assert "2 problem(s)" in str(e)
    d = e.to_dict()
    assert d["code"] == "validation_failed"
    assert d["problems"] == [
        {"field": "a", "code": "c1", "message": "m1", "value": "1"},
        {"field": "b.c", "code": "c2", "message": "m2", "value": "'x'"},
    ]
    json.dumps(d)  # JSON-friendly


def test_address_validation_failed_to_dict() -> None:
    with pytest.raises(ValidationFailed) as info:
        Address(country="XX", postal_code="!!", city="", line1="x")
    assert [p["field"] for p in info.value.to_dict()["problems"]] == ["country", "postal_code", "city"]


def test_illegal_transition_carries_its_context() -> None:
    e = IllegalTransition(
        order_id=OrderId("O-1"),
        state=OrderStatus.PLACED,
        trigger=Triggers.SHIP,
        target=OrderStatus.SHIPPED,
        failed_guard="paid",
    )
    assert e.state == OrderStatus.PLACED
    assert e.trigger == Triggers.SHIP
    assert "ship" in str(e) and "placed" in str(e) and "paid" in str(e)
    assert e.to_dict() == {
        "code": "illegal_transition",
        "message": str(e),
        "order_id": "O-1",
        "state": "placed",
        "trigger": "ship",
        "target": "shipped",
        "failed_guard": "paid",
    }
    bare = IllegalTransition(order_id=OrderId("O-2"), state=OrderStatus.DRAFT, trigger=Triggers.ACCEPT)
    assert bare.to_dict()["target"] is None
    assert bare.to_dict()["failed_guard"] is None
    json.dumps(bare.to_dict())


def test_stock_shortage_to_dict() -> None:
    e = InsufficientStock("DC-1", Sku("A"), requested=3, available=1)
    assert e.to_dict() == {
        "code": "insufficient_stock",
        "message": str(e),
        "node_id": "DC-1",
        "sku": "A",
        "requested": 3,
        "available": 1,
    }


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"order_prefix": 5}, "order_prefix"),
        ({"order_prefix": "a b"}, "order_prefix"),
        ({"start": -1}, "start"),
    ],
)
def test_sequential_ids_refuse_a_prefix_or_start_that_makes_no_valid_id(
    settings: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidValue) as err:
        SequentialIds(**settings)  # type: ignore[arg-type]
    assert err.value.field == field
    assert SequentialIds(order_prefix="W0", start=7).new_order_id() == OrderId("W0-000007")


# -- text every store can keep --------------------------------------------------------------------------------
_NUL, _LONE = "a\x00b", "caf\udce9"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("", None),
        ("plain", None),
        ("Łódź 東京 🚚", None),
        (_NUL, "NUL"),
        (_LONE, "surrogate"),
        ("\ud83d", "surrogate"),
    ],
)
def test_text_fault_names_what_no_store_can_keep(text: str, fault: str | None) -> None:
    found = text_fault(text)
    assert (found is None) if fault is None else (found is not None and fault in found)


@pytest.mark.parametrize("bad", [_NUL, _LONE])
def test_values_holding_text_no_store_can_keep_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationFailed) as failed:
        Address(country="DE", postal_code="10115", city=bad, line1="Invalidenstr. 1")
    assert [p.field for p in failed.value.problems] == ["city"]
    with pytest.raises(InvalidValue) as one:
        CustomerRef(CustomerId("C-1"), segment=bad)
    assert one.value.field == "customer.segment"
    with pytest.raises(InvalidValue) as one:
        Actor.user(bad)
    assert one.value.field == "actor.id"
    with pytest.raises(InvalidValue) as one:
        NewLine(Sku("MUG"), 1, Money.of("1.00", "EUR"), attributes={"note": bad})
    assert one.value.field == "attributes['note']"


def test_quantities_stop_at_what_a_32_bit_column_holds() -> None:
    assert check_quantity(MAX_QUANTITY, "quantity") == MAX_QUANTITY == 2**31 - 1
    with pytest.raises(InvalidQuantity) as e:
        check_quantity(MAX_QUANTITY + 1, "quantity")
    assert "at most 2,147,483,647" in str(e.value)
