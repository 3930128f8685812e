"""Serialization at the edges: JSON round trips, strict parsing that reports every problem with its path,
private converters that never touch cattrs' global one."""

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import cattrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordercore import (
    DEFAULT_LIFECYCLE,
    Actor,
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    GeoPoint,
    LineId,
    Money,
    NewLine,
    Order,
    OrderCoreError,
    OrderEvent,
    OrderId,
    OrderStatus,
    PlaceOrder,
    Sku,
    State,
    StatusChanged,
    TaxLine,
    Transition,
    Trigger,
    ValidationFailed,
    make_converter,
)
from ordercore.events import EVENT_TYPES, HoldApplied, NodeAllocation, NodeRejected, RuleVerdict, WaitingUnits
from ordercore.serialization import from_json, parse, to_json
from ordercore.testing.strategies import (
    addresses,
    currencies,
    customer_refs,
    money,
    new_lines,
    orders,
    place_order_commands,
)

VALUES = settings(max_examples=100, deadline=None)
HEAVY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ACTOR = Actor.user("tester")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BERLIN = Address(country="DE", postal_code="10115", city="Berlin", line1="Invalidenstr. 1")
PARIS = Address(
    country="FR",
    postal_code="75001",
    city="Paris",
    line1="1 Rue de Rivoli",
    coordinates=GeoPoint(48.86, 2.34),
)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def round_trip(value: Any, **kwargs: Any) -> Any:
    return from_json(to_json(value, **kwargs), type(value), **kwargs)


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) in a JSON tree."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def assert_money_as_strings(text: str) -> None:
    """Every money amount in the JSON is a decimal string, and no float appears outside coordinates."""
    tree = json.loads(text)
    for path, node in walk(tree):
        if isinstance(node, dict) and set(node) == {"amount", "currency"}:
            assert isinstance(node["amount"], str), path
            Decimal(node["amount"])  # a decimal string
        if isinstance(node, float):
            assert path.rsplit(".", 2)[-2] == "coordinates", path


def new_order(*, lifecycle: Any = DEFAULT_LIFECYCLE, order_id: str = "O-1") -> Order:
    return Order.create(
        order_id=OrderId(order_id),
        channel=Channel("web"),
        customer=CustomerRef(CustomerId("C-1"), segment="vip", email="c@example.com"),
        currency="EUR",
        shipping_address=BERLIN,
        billing_address=PARIS,
        lines=[
            NewLine(Sku("A"), 5, eur("9.99"), taxes=[TaxLine("VAT", Decimal("0.19"), eur("9.49"))]),
            NewLine(Sku("B"), 3, eur("1.00"), attributes={"colour": "red"}),
        ],
        shipping_charges=[],
        actor=ACTOR,
        at=T0,
        requested_delivery_date=T0.date() + timedelta(days=7),
        attributes={"source": "test"},
        lifecycle=lifecycle,
    )


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def full_life_order() -> Order:
    """An order that goes through holds, edits, backorders, allocation, partial cancellation, release, two
    shipments, deliveries and returns, to completion."""
    o = new_order()
    at = Clock(T0)
    o.place(actor=ACTOR, at=at())
    o.record_rules(
        rule_set="acme",
        rule_set_version="3",
        decision="hold",
        verdicts=[
            RuleVerdict(
                "fraud-score",
                "fraud",
                True,
                "hold",
                "fraud-check",
                "score 87 over 80",
                (("fraud.score", "87"), ("order.total", "120.00 EUR")),
            ),
            RuleVerdict(
                "embargo", "intake", False, "reject", "embargo", inputs=(("ship_to.country", "'DE'"),)
            ),
            RuleVerdict("credit", "credit", False, "hold", "credit", error="no credit limit"),
        ],
        actor=ACTOR,
        at=at(),
        reason="placed",
    )
    o.hold("fraud-check", actor=ACTOR, at=at(), message="score 87")
    o.release_hold("fraud-check", actor=ACTOR, at=at(), comment="ok")
    o.change_shipping_address(PARIS, actor=ACTOR, at=at(), reason="customer moved")
    o.change_line_quantity("1", 6, actor=ACTOR, at=at())
    o.accept(actor=ACTOR, at=at())
    o.hold("credit", actor=ACTOR, at=at())
    o.release_hold("credit", actor=ACTOR, at=at())
    o.backorder({"2": 1}, actor=ACTOR, at=at())
    o.allocate(actor=ACTOR, at=at())
    o.cancel_lines({"1": 1}, actor=ACTOR, at=at(), reason="out of stock")
    o.release(actor=ACTOR, at=at())
    o.ship({"1": 2}, shipment_id="S-1", carrier="DHL", tracking_number="0034", actor=ACTOR, at=at())
    o.deliver(actor=ACTOR, at=at(), shipment_id="S-1")
    o.record_return({"1": 1}, actor=ACTOR, at=at(), return_id="R-1", reason="too big")
    o.ship(shipment_id="S-2", actor=ACTOR, at=at())
    o.deliver(actor=ACTOR, at=at())
    o.record_return({LineId("2"): 1}, actor=ACTOR, at=at())
    o.complete(actor=ACTOR, at=at())
    return o


def sourced_order() -> Order:
    """An order sourced across two nodes, short-picked at one, sourced again and shipped from a node."""
    o = new_order(order_id="O-3")
    at = Clock(T0)
    o.place(actor=ACTOR, at=at())
    o.accept(actor=ACTOR, at=at())
    o.source(
        [
            NodeAllocation(LineId("1"), "W1", 4, "O-3/1/W1/3"),
            NodeAllocation(LineId("2"), "S7", 3, "O-3/2/S7/3"),
        ],
        [WaitingUnits(LineId("1"), 1, "W1", T0.date() + timedelta(days=3))],
        strategy="cost_optimal",
        cost=eur("21.40"),
        optimal=True,
        notes=("2 shipments: no single node holds both SKUs",),
        rejected=(NodeRejected("W9", "costlier", "best plan with it costs 30.00 EUR"),),
        actor=ACTOR,
        at=at(),
    )
    o.withdraw_allocation("S7", {"2": 1}, code="short_pick", actor=ACTOR, at=at(), reason="bin empty")
    o.source(
        [NodeAllocation(LineId("2"), "W1", 1, "O-3/2/W1/5")],
        [WaitingUnits(LineId("1"), 1)],
        strategy="cost_optimal",
        cost=eur("8.10"),
        actor=ACTOR,
        at=at(),
    )
    o.ship({"1": 4, "2": 1}, shipment_id="S-9", node_id="W1", actor=ACTOR, at=at())
    return o


def cancelled_order() -> Order:
    o = new_order(order_id="O-2")
    o.place(actor=ACTOR, at=T0 + timedelta(minutes=1))
    o.cancel(actor=ACTOR, at=T0 + timedelta(minutes=2), reason="customer request")
    return o


# -- round trips of values ------------------------------------------------------------------------------------
@VALUES
@given(money(min_minor=-(10**9)))
def test_money_round_trips(m: Money) -> None:
    text = to_json(m)
    assert from_json(text, Money) == m
    assert json.loads(text) == {"amount": str(m.amount), "currency": m.currency}


@VALUES
@given(addresses())
def test_address_round_trips(a: Address) -> None:
    assert round_trip(a) == a


@VALUES
@given(customer_refs())
def test_customer_ref_round_trips(c: CustomerRef) -> None:
    assert round_trip(c) == c


@VALUES
@given(currencies().flatmap(new_lines))
def test_new_line_round_trips(line: NewLine) -> None:
    text = to_json(line)
    assert from_json(text, NewLine) == line
    assert_money_as_strings(text)


@HEAVY
@given(place_order_commands())
def test_place_order_round_trips(cmd: PlaceOrder) -> None:
    text = to_json(cmd)
    assert from_json(text, PlaceOrder) == cmd
    assert_money_as_strings(text)


@HEAVY
@given(orders(placed=False) | orders())
def test_order_round_trips_and_replays(order: Order) -> None:
    text = to_json(order)
    decoded = from_json(text, Order)
    assert decoded == order
    assert decoded.lifecycle is DEFAULT_LIFECYCLE
    assert decoded.persisted_version == decoded.version  # what was read is what is stored
    assert decoded.new_events() == []
    assert Order.replay(decoded.history) == decoded
    assert to_json(decoded) == text  # the encoding is canonical
    assert_money_as_strings(text)


# -- orders that lived a little -------------------------------------------------------------------------------
def test_an_order_through_its_whole_life_round_trips_and_replays() -> None:
    order = full_life_order()
    assert order.status == OrderStatus.COMPLETED
    assert len(order.history) == 21
    text = to_json(order, indent=2)
    decoded = from_json(text, Order)
    assert decoded == order
    assert decoded.totals() == order.totals()
    assert Order.replay(decoded.history) == decoded
    assert_money_as_strings(text)


def test_an_order_on_hold_keeps_its_holds() -> None:
    order = new_order()
    order.place(actor=ACTOR, at=T0 + timedelta(minutes=1))
    order.hold("a", actor=ACTOR, at=T0 + timedelta(minutes=2), message="first")
    order.hold("b", actor=ACTOR, at=T0 + timedelta(minutes=3))
    decoded = round_trip(order)
    assert decoded == order
    assert [h.code for h in decoded.holds] == ["a", "b"]
    assert decoded.held_from == OrderStatus.PLACED
    assert Order.replay(decoded.history) == decoded


def _line_map(order: Order, draw: st.DrawFn) -> dict[LineId, int]:
    line = draw(st.sampled_from(order.lines))
    return {line.id: draw(st.integers(0, 4))}


@st.composite
def lived_orders(draw: st.DrawFn) -> Order:
    """An order from the shipped strategy, driven through random order methods; refused calls are skipped
    (and must leave the order unchanged)."""
    order = draw(orders(max_lines=3))
    at = Clock(order.updated_at)
    actions = [
        lambda: order.accept(actor=ACTOR, at=at()),
        lambda: order.allocate(actor=ACTOR, at=at()),
        lambda: order.allocate(_line_map(order, draw), actor=ACTOR, at=at()),
        lambda: order.backorder(_line_map(order, draw), actor=ACTOR, at=at()),
        lambda: order.release(actor=ACTOR, at=at()),
        lambda: order.release(_line_map(order, draw), actor=ACTOR, at=at()),
        lambda: order.ship(_line_map(order, draw), shipment_id="S-1", actor=ACTOR, at=at()),
        lambda: order.ship(shipment_id="S-2", carrier="UPS", actor=ACTOR, at=at()),
        lambda: order.deliver(actor=ACTOR, at=at()),
        lambda: order.deliver(_line_map(order, draw), actor=ACTOR, at=at()),
        lambda: order.record_return(_line_map(order, draw), actor=ACTOR, at=at(), return_id="R-1"),
        lambda: order.hold(draw(st.sampled_from(["fraud", "credit"])), actor=ACTOR, at=at()),
        lambda: order.release_hold(draw(st.sampled_from(["fraud", "credit"])), actor=ACTOR, at=at()),
        lambda: order.cancel_lines(_line_map(order, draw), actor=ACTOR, at=at(), reason="oos"),
        lambda: order.change_line_quantity(
            draw(st.sampled_from(order.lines)).id, draw(st.integers(1, 30)), actor=ACTOR, at=at()
        ),
        lambda: order.change_shipping_address(draw(addresses()), actor=ACTOR, at=at()),
        lambda: order.complete(actor=ACTOR, at=at()),
        lambda: order.cancel(actor=ACTOR, at=at(), reason="changed mind"),
    ]
    for _ in range(draw(st.integers(1, 25))):
        action = draw(st.sampled_from(actions))
        before = order.clone()
        try:
            action()
        except OrderCoreError:
            assert order == before
    return order


@HEAVY
@given(lived_orders())
def test_orders_after_random_transitions_round_trip_and_replay(order: Order) -> None:
    text = to_json(order)
    decoded = from_json(text, Order)
    assert decoded == order
    assert Order.replay(decoded.history) == decoded
    assert to_json(decoded) == text
    assert_money_as_strings(text)


# -- events ---------------------------------------------------------------------------------------------------
def _all_events() -> list[OrderEvent]:
    return [*full_life_order().history, *cancelled_order().history, *sourced_order().history]


def test_the_scenarios_cover_every_event_type() -> None:
    assert {type(ev).__name__ for ev in _all_events()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", _all_events(), ids=lambda ev: f"{ev.sequence}-{ev.type}")
def test_every_event_round_trips_with_its_type(event: OrderEvent) -> None:
    text = to_json(event)
    data = json.loads(text)
    assert data["type"] == type(event).__name__
    assert from_json(text, type(event)) == event
    decoded = from_json(text, OrderEvent)  # resolved through the "type" tag
    assert type(decoded) is type(event)
    assert decoded == event
    assert_money_as_strings(text)


def test_an_event_of_another_type_is_refused() -> None:
    hold = next(ev for ev in full_life_order().history if isinstance(ev, HoldApplied))
    data = json.loads(to_json(hold))
    with pytest.raises(ValidationFailed) as info:
        parse(data, StatusChanged)
    assert "type" in info.value.fields
    data["type"] = "NoSuchEvent"
    with pytest.raises(ValidationFailed) as info:
        parse(data, OrderEvent)
    assert "type" in info.value.fields


# -- JSON shape -----------------------------------------------------------------------------------------------
def test_money_amounts_are_strings_never_floats() -> None:
    assert json.loads(to_json(eur("12.30"))) == {"amount": "12.30", "currency": "EUR"}
    assert json.loads(to_json(Money.of(5, "JPY")))["amount"] == "5"
    assert_money_as_strings(to_json(full_life_order()))


def test_values_are_plain_json() -> None:
    data = json.loads(to_json(full_life_order()))
    assert data["id"] == "O-1"
    assert data["status"] == "completed"
    assert data["created_at"] == "2026-01-05T09:00:00+00:00"
    assert data["lines"][0]["sku"] == "A"
    assert data["lines"][0]["taxes"][0]["rate"] == "0.19"
    assert data["requested_delivery_date"] == "2026-01-12"
    assert "lifecycle" not in data
    assert "persisted_version" not in data
    assert data["history"][1] | {"occurred_at": None} == {
        "type": "StatusChanged",
        "order_id": "O-1",
        "sequence": 2,
        "occurred_at": None,
        "actor": {"kind": "user", "id": "tester"},
        "status": "placed",
        "reason": "",
        "trigger": "place",
        "previous": "draft",
        "code": "",
    }


# -- parsing untrusted input ----------------------------------------------------------------------------------
def place_order_data() -> dict[str, Any]:
    return {
        "channel": "web",
        "customer": {"id": "C-1"},
        "currency": "EUR",
        "shipping_address": {"country": "DE", "postal_code": "10115", "city": "Berlin", "line1": "Str. 1"},
        "lines": [
            {"sku": "A", "quantity": 2, "unit_price": {"amount": "9.99", "currency": "EUR"}},
            {"sku": "B", "quantity": 1, "unit_price": {"amount": "5", "currency": "EUR"}},
        ],
    }


def test_valid_input_parses() -> None:
    cmd = parse(place_order_data(), PlaceOrder)
    assert cmd.currency == "EUR"
    assert cmd.lines[0].unit_price == eur("9.99")
    assert cmd.lines[1].quantity == 1
    assert cmd.shipping_address.city == "Berlin"


def _problems(data: Any, cls: type = PlaceOrder) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as info:
        parse(data, cls)
    return {p.field: p.code for p in info.value.problems}


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    data = place_order_data()
    data["lines"][0]["quantity"] = 2.0
    data["lines"][0]["unit_price"]["amount"] = 9.99
    data["lines"][1]["colour"] = "red"
    data["shipping_address"]["country"] = "XX"
    data["shipping_address"]["postal_code"] = "!!"
    data["surprise"] = 1
    del data["channel"]
    assert _problems(data) == {
        "lines[0].quantity": "invalid_value",
        "lines[0].unit_price.amount": "invalid_money",
        "lines[1].colour": "unexpected_field",
        "shipping_address.country": "invalid_address",
        "shipping_address.postal_code": "invalid_address",
        "surprise": "unexpected_field",
        "channel": "required",
    }


@pytest.mark.parametrize(
    ("mutate", "field", "code"),
    [
        (lambda d: d["lines"][0].update(quantity=2.0), "lines[0].quantity", "invalid_value"),
        (lambda d: d["lines"][0].update(quantity="2"), "lines[0].quantity", "invalid_value"),
        (lambda d: d["lines"][0].update(quantity=True), "lines[0].quantity", "invalid_value"),
        (lambda d: d["lines"][0].update(quantity=0), "lines[0].quantity", "invalid_quantity"),
        (
            lambda d: d["lines"][1]["unit_price"].update(amount=5.0),
            "lines[1].unit_price.amount",
            "invalid_money",
        ),
        (
            lambda d: d["lines"][1]["unit_price"].update(amount="5.001"),
            "lines[1].unit_price.amount",
            "invalid_money",
        ),
        (
            lambda d: d["lines"][1]["unit_price"].update(amount="NaN"),
            "lines[1].unit_price.amount",
            "invalid_money",
        ),
        (
            lambda d: d["lines"][1]["unit_price"].update(currency="XYZ"),
            "lines[1].unit_price.currency",
            "invalid_money",
        ),
        (
            lambda d: d["lines"][1]["unit_price"].update(extra=1),
            "lines[1].unit_price.extra",
            "unexpected_field",
        ),
        (
            lambda d: d["lines"][1]["unit_price"].pop("currency"),
            "lines[1].unit_price.currency",
            "invalid_money",
        ),
        (lambda d: d["lines"][0].update(sku=" A"), "lines[0].sku", "invalid_identifier"),
        (lambda d: d["lines"][0].pop("sku"), "lines[0].sku", "required"),
        (lambda d: d["shipping_address"].update(country="de"), "shipping_address.country", "invalid_address"),
        (lambda d: d["shipping_address"].update(city=5), "shipping_address.city", "invalid_value"),
        (lambda d: d["customer"].update(id=""), "customer.id", "invalid_identifier"),
        (
            lambda d: d.update(requested_delivery_date="2026-02-30"),
            "requested_delivery_date",
            "invalid_value",
        ),
        (lambda d: d.update(draft="yes"), "draft", "invalid_value"),
        (lambda d: d.update(lines=None), "lines", "invalid_value"),
        (lambda d: d.update(attributes=[["a", "b"]]), "attributes", "invalid_value"),
    ],
)
def test_each_bad_input_is_located_precisely(mutate: Any, field: str, code: str) -> None:
    data = place_order_data()
    mutate(data)
    assert _problems(data) == {field: code}


def _discount(amount: Any) -> dict[str, Any]:
    return {"code": "PROMO", "amount": {"amount": amount, "currency": "EUR"}}


@pytest.mark.parametrize(
    ("mutate", "field", "code"),
    [
        # errors raised by a value (Actor, a currency or a state lookup) name their own field: the path must
        # name it once, not twice ("currency.currency", "actor.actor.kind")
        (lambda d: d.update(currency="XYZ"), "currency", "invalid_money"),
        (lambda d: d.update(actor={"kind": "", "id": "x"}), "actor.kind", "invalid_value"),
        (lambda d: d.update(actor={"kind": "user", "id": "x" * 129}), "actor.id", "invalid_value"),
        # a string or an object where an array is expected is refused, not iterated
        (lambda d: d.update(lines="AB"), "lines", "invalid_value"),
        (lambda d: d.update(lines={"sku": "A"}), "lines", "invalid_value"),
        (lambda d: d.update(lines={}), "lines", "invalid_value"),
        (lambda d: d["lines"][0].update(discounts="PROMO"), "lines[0].discounts", "invalid_value"),
        # money nested in an adjustment
        (
            lambda d: d["lines"][0].update(discounts=[_discount("-1")]),
            "lines[0].discounts[0].amount",
            "invalid_value",
        ),
        (
            lambda d: d["lines"][0].update(
                discounts=[{"code": "P", "amount": {"amount": "1", "currency": "XYZ"}}]
            ),
            "lines[0].discounts[0].amount.currency",
            "invalid_money",
        ),
    ],
)
def test_paths_name_each_level_once(mutate: Any, field: str, code: str) -> None:
    data = place_order_data()
    mutate(data)
    assert _problems(data) == {field: code}


@pytest.mark.parametrize(
    ("where", "bad"),
    [("lines[0].discounts[0]", 1.5), ("lines[0].discounts[0]", "1.005"), ("shipping_charges[0]", 2.0)],
)
def test_a_bad_amount_inside_an_adjustment_is_located_at_amount_amount(where: str, bad: object) -> None:
    data = place_order_data()
    if where.startswith("lines"):
        data["lines"][0]["discounts"] = [_discount(bad)]
    else:
        data["shipping_charges"] = [_discount(bad)]
    assert _problems(data) == {f"{where}.amount.amount": "invalid_money"}


def test_a_bad_currency_code_in_place_order_is_refused() -> None:
    data = place_order_data()
    data["currency"] = "XYZ"
    with pytest.raises(ValidationFailed) as info:
        parse(data, PlaceOrder)
    [problem] = info.value.problems
    assert problem.code == "invalid_money"
    assert problem.value == "XYZ"
    assert problem.field == "currency"


def _order_data() -> dict[str, Any]:
    return json.loads(to_json(full_life_order()))


def test_a_naive_datetime_is_refused_for_an_aware_field() -> None:
    data = _order_data()
    data["created_at"] = "2026-01-01T00:00:00"
    data["history"][3]["occurred_at"] = "2026-01-01T00:00:00"
    data["holds"] = [
        {"code": "x", "message": "", "actor": {"kind": "user", "id": "a"}, "placed_at": "2026-01-01"}
    ]
    problems = _problems(data, Order)
    assert problems == {
        "created_at": "invalid_timestamp",
        "history[3].occurred_at": "invalid_timestamp",
        "holds[0].placed_at": "invalid_timestamp",
    }


@pytest.mark.parametrize("bad", ["yesterday", "2026-01-01T25:00:00+00:00", 1767225600, None])
def test_non_iso_datetimes_are_refused(bad: object) -> None:
    data = _order_data()
    data["updated_at"] = bad
    assert _problems(data, Order) == {"updated_at": "invalid_timestamp"}


def test_unknown_states_in_stored_orders_are_refused() -> None:
    data = _order_data()
    data["status"] = "teleported"
    data["history"][1]["trigger"] = "beam"
    with pytest.raises(ValidationFailed) as info:
        parse(data, Order)
    assert {p.field: p.value for p in info.value.problems} == {
        "status": "teleported",
        "history[1].trigger": "beam",
    }


@pytest.mark.parametrize("where", ["history[1].previous", "held_from"])
def test_an_unknown_state_in_any_state_field_is_located_at_that_field(where: str) -> None:
    data = _order_data()
    if where == "held_from":
        data["held_from"] = "teleported"
    else:
        data["history"][1]["previous"] = "teleported"
    assert _problems(data, Order) == {where: "invalid_value"}


def test_a_bad_tax_amount_in_a_stored_order_is_located_at_amount_amount() -> None:
    data = _order_data()
    data["history"][0]["lines"][0]["taxes"][0]["amount"]["amount"] = 1.5
    assert _problems(data, Order) == {"history[0].lines[0].taxes[0].amount.amount": "invalid_money"}


def test_bad_values_deep_in_a_stored_order_are_located() -> None:
    data = _order_data()
    data["history"][0]["lines"][0]["taxes"][0]["rate"] = 0.19
    data["history"][0]["lines"][1]["qty"]["open"] = -1
    data["holds"] = [
        {"code": "x", "message": "", "actor": {"kind": "", "id": "a"}, "placed_at": "2026-01-01T00:00:00Z"}
    ]
    assert _problems(data, Order) == {
        "history[0].lines[0].taxes[0].rate": "invalid_value",
        "history[0].lines[1].qty.open": "invalid_quantity",
        "holds[0].actor.kind": "invalid_value",
    }


@pytest.mark.parametrize("text", ["{", "", "nope", b"\xff\xfe", "[1,", "{'a': 1}"])
def test_malformed_json_is_refused_as_invalid_json(text: str | bytes) -> None:
    with pytest.raises(ValidationFailed) as info:
        from_json(text, PlaceOrder)
    [problem] = info.value.problems
    assert problem.code == "invalid_json"
    assert problem.field == ""


@pytest.mark.parametrize("data", [None, [], "EUR 1.00", 12])
def test_money_must_be_an_object(data: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse(data, Money)
    assert info.value.problems[0].code == "invalid_money"


def test_from_json_accepts_bytes() -> None:
    assert from_json(to_json(eur("1.00")).encode(), Money) == eur("1.00")


# -- converters -----------------------------------------------------------------------------------------------
REVIEW = State("fraud_review", description="waiting for a person to look")
FLAG = Trigger("flag_for_review")
CLEAR = Trigger("clear_review")
CUSTOM = DEFAULT_LIFECYCLE.extend(
    name="with-review",
    states=[REVIEW],
    triggers=[FLAG, CLEAR],
    transitions=[Transition(FLAG, OrderStatus.PLACED, REVIEW), Transition(CLEAR, REVIEW, OrderStatus.PLACED)],
)


def test_a_converter_for_a_custom_lifecycle_resolves_its_states() -> None:
    order = new_order(lifecycle=CUSTOM)
    order.place(actor=ACTOR, at=T0 + timedelta(minutes=1))
    order.fire(FLAG, actor=ACTOR, at=T0 + timedelta(minutes=2), reason="high score")
    assert order.status == REVIEW
    conv = make_converter(lifecycle=CUSTOM)
    text = to_json(order, converter=conv)
    assert json.loads(text)["status"] == "fraud_review"
    decoded = from_json(text, Order, converter=conv)
    assert decoded == order
    assert decoded.status is REVIEW
    assert decoded.lifecycle is CUSTOM
    assert decoded.history[-1].trigger == FLAG
    assert Order.replay(decoded.history, CUSTOM) == decoded
    decoded.fire(CLEAR, actor=ACTOR, at=T0 + timedelta(minutes=3))  # the custom machine still works
    assert decoded.status == OrderStatus.PLACED
    # the default converter does not know the custom state or trigger
    with pytest.raises(ValidationFailed) as info:
        from_json(text, Order)
    assert {"fraud_review", "flag_for_review"} <= {p.value for p in info.value.problems}


def test_make_converter_does_not_touch_the_global_converter() -> None:
    make_converter()
    make_converter(lifecycle=CUSTOM)
    m = eur("1.50")
    plain = cattrs.Converter()
    # cattrs' global converter behaves like a fresh one: no Money hook (the amount stays a Decimal) ...
    assert cattrs.global_converter.unstructure(m) == plain.unstructure(m)
    assert cattrs.global_converter.unstructure(m)["amount"] == Decimal("1.50")
    assert cattrs.global_converter.unstructure(Sku("A")) == {"value": "A"}
    # ... and none of ordercore's strict scalar hooks
    assert cattrs.global_converter.structure("1", int) == 1
    # while ordercore's converters have them
    assert make_converter().unstructure(m) == {"amount": "1.50", "currency": "EUR"}
    assert make_converter().unstructure(Sku("A")) == "A"


def test_each_converter_is_independent() -> None:
    a, b = make_converter(), make_converter()
    assert a is not b
    b.register_unstructure_hook(Money, lambda m: "overridden")
    assert a.unstructure(eur("1.00")) == {"amount": "1.00", "currency": "EUR"}
    assert to_json(eur("1.00")) == '{"amount": "1.00", "currency": "EUR"}'


def test_parse_with_an_explicit_converter() -> None:
    data = json.loads(to_json(new_order()))
    assert parse(copy.deepcopy(data), Order, converter=make_converter(lifecycle=CUSTOM)).lifecycle is CUSTOM


def test_anything_but_an_object_where_an_object_is_expected_is_refused_by_name() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse(None, PlaceOrder)
    assert [(p.field, p.message) for p in info.value.problems] == [("", "must be an object, not NoneType")]
    data = place_order_data()
    data["customer"] = 5
    data["lines"] = [3]
    assert _problems(data) == {"customer": "invalid_value", "lines[0]": "invalid_value"}


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 50_000, "[" * 5_000 + "]" * 5_000])
def test_json_nested_too_deeply_is_a_validation_failure(text: str) -> None:
    # a message off a broker or a request body is not trusted: nesting deeper than the interpreter's
    # recursion takes is bad input like any other
    for cls in (OrderEvent, PlaceOrder, Money):
        with pytest.raises(ValidationFailed) as info:
            from_json(text, cls)
        assert info.value.problems[0].code == "invalid_json"
        assert "nested too deeply" in info.value.problems[0].message
