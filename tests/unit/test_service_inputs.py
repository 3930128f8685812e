"""The application layer with awkward inputs and awkward moments: handlers returning the wrong thing,
subscriptions that cannot work, deliveries racing each other, follow-on work failing after a commit, and
arguments of the wrong type. Each is refused (or recorded) with ordercore's own error, naming the field."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordercore import (
    AcceptOrder,
    Adjustment,
    Channel,
    ConcurrencyConflict,
    DuplicateOrder,
    GeoPoint,
    HoldOrder,
    InvalidValue,
    ManualClock,
    NewLine,
    OrderCore,
    OrderCreated,
    OrderEvent,
    OrderId,
    OrderStatus,
    ReevaluationFailed,
    SequentialIds,
    Sku,
    SourcingFailed,
    StatusChanged,
    StoreUnavailable,
    ValidationFailed,
    bootstrap,
)
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from ordercore.ports import UnitOfWork
from ordercore.rules import load_rules
from ordercore.service.commands import (
    Command,
    ReceiveStock,
    ReevaluateOrder,
    ReportShortPick,
    ResourceOrder,
    SetNodeOnline,
    SourceOrder,
    SourceWave,
)
from ordercore.service.handlers import COMMAND_HANDLERS, CommandResult, Services, request_fingerprint
from tests.unit.factories import AT, BERLIN, eur, place_command

COST = ShippingCost("EUR", per_shipment=Decimal(5))
BER = FulfilmentNode("BER", NodeKind.WAREHOUSE, GeoPoint(52.5, 13.4), COST, priority=1)
HAM = FulfilmentNode("HAM", NodeKind.WAREHOUSE, GeoPoint(53.5, 10.0), COST, priority=2)


def app_with(**kwargs: Any) -> OrderCore:
    kwargs.setdefault("clock", ManualClock(AT))
    kwargs.setdefault("ids", SequentialIds())
    return bootstrap(**kwargs)


class Broker:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def publish(self, events: list[OrderEvent]) -> None:
        self.sent.extend(e.event_id for e in events)


# -- event handlers and subscriptions ---------------------------------------------------------------------
@pytest.mark.parametrize("returned", [True, "AcceptOrder", 1, [AcceptOrder(order_id="O-000001"), "x"]])
def test_a_handler_returning_something_else_than_commands_is_recorded_and_the_rest_still_runs(
    returned: object,
) -> None:
    broker = Broker()
    app = app_with(publisher=broker)
    seen: list[str] = []
    app.subscribe(OrderCreated, lambda e: returned)  # `return mailer.send(...)`, say
    app.subscribe(OrderEvent, lambda e: seen.append(e.event_id))

    result = app.handle(place_command())

    assert result.order_id == OrderId("O-000001")
    assert seen == [e.event_id for e in result.events]  # the next handler saw every event
    assert broker.sent == seen  # and the relay ran
    [failure] = app.failures
    assert failure.event_id == "O-000001#1"
    assert "InvalidValue" in failure.error and "return value" in failure.error
    assert app.get_order(result.order_id).status is OrderStatus.PLACED  # no follow-up ran


def test_a_handler_may_still_return_commands_as_a_tuple_or_from_a_generator() -> None:
    app = app_with()

    def accept(e: StatusChanged) -> Iterator[Command]:
        if e.status is OrderStatus.PLACED:
            yield AcceptOrder(order_id=e.order_id)

    def hold(e: StatusChanged) -> tuple[Command, ...]:
        if e.status is OrderStatus.ACCEPTED:
            return (HoldOrder(order_id=e.order_id, code="check"),)
        return ()

    app.subscribe(StatusChanged, accept)
    app.subscribe(StatusChanged, hold)
    order_id = app.handle(place_command()).order_id

    assert not app.failures
    assert [h.code for h in app.get_order(order_id).holds] == ["check"]


@pytest.mark.parametrize(
    ("event_type", "handler", "field"),
    [
        ("StatusChanged", lambda e: None, "event_type"),
        (dict, lambda e: None, "event_type"),
        (StatusChanged, "notify", "handler"),
    ],
)
def test_subscribe_refuses_what_could_never_be_dispatched(event_type: Any, handler: Any, field: str) -> None:
    app = app_with()
    seen: list[str] = []
    app.subscribe(OrderEvent, lambda e: seen.append(e.event_id))

    with pytest.raises(InvalidValue) as caught:
        app.subscribe(event_type, handler)

    assert caught.value.field == field
    result = app.handle(place_command())  # later commands are not broken by the refused subscription
    assert seen == [e.event_id for e in result.events]


@pytest.mark.parametrize(
    ("event_handlers", "field"),
    [
        ({OrderEvent: lambda e: None}, "event_handlers[OrderEvent]"),
        ({OrderEvent: "notify"}, "event_handlers[OrderEvent]"),
        ({OrderEvent: [lambda e: None, 5]}, "event_handlers[OrderEvent][1]"),
        ({"StatusChanged": [lambda e: None]}, "event_handlers"),
    ],
)
def test_bootstrap_refuses_event_handlers_that_are_not_lists_of_handlers(
    event_handlers: Any, field: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        app_with(event_handlers=event_handlers)
    assert caught.value.field == field


def test_bootstrap_takes_event_handlers_from_any_iterable() -> None:
    seen: list[str] = []
    app = app_with(event_handlers={OrderCreated: (h for h in [lambda e: seen.append(e.event_id)])})
    app.handle(place_command())
    assert seen == ["O-000001#1"]


# -- deliveries racing ------------------------------------------------------------------------------------
class MeetingIds:
    """Ids whose first two callers meet: both deliveries are past their external-reference lookup."""

    def __init__(self) -> None:
        self.inner = SequentialIds()
        self.barrier = threading.Barrier(2, timeout=30)
        self.calls = 0
        self.lock = threading.Lock()

    def new_order_id(self) -> OrderId:
        with self.lock:
            self.calls += 1
            meet = self.calls <= 2
        if meet:
            self.barrier.wait()
        with self.lock:
            return self.inner.new_order_id()

    def new_id(self, prefix: str) -> str:
        return self.inner.new_id(prefix)


def race(app: OrderCore, *commands: Command) -> list[object]:
    """Handle each command in its own thread, at once; what each got (a result's order id, or the error)."""
    out: list[object] = [None] * len(commands)

    def run(i: int) -> None:
        try:
            out[i] = app.handle(commands[i]).order_id
        except Exception as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(commands))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'orders.db'}"


def test_two_identical_deliveries_at_once_both_get_the_winners_order(store_url: str) -> None:
    app = app_with(store=store_url, ids=MeetingIds())
    delivery = place_command(channel=Channel("amazon-de"), external_ref="302-1")
    try:
        out = race(app, delivery, delivery)
        assert out == [OrderId("O-000001")] * 2 or out == [OrderId("O-000002")] * 2
        assert app.list_orders() == [out[0]]
    finally:
        app.close()


def test_a_different_delivery_racing_for_the_same_reference_is_a_duplicate_with_other_content(
    store_url: str,
) -> None:
    app = app_with(store=store_url, ids=MeetingIds())
    first = place_command(channel=Channel("amazon-de"), external_ref="302-1")
    other = place_command(
        channel=Channel("amazon-de"), external_ref="302-1", lines=[NewLine(Sku("MUG"), 9, eur("1.00"))]
    )
    try:
        out = race(app, first, other)
        [winner] = [o for o in out if isinstance(o, OrderId)]
        [loser] = [o for o in out if not isinstance(o, OrderId)]
        assert isinstance(loser, DuplicateOrder)
        assert "other content" in str(loser) and loser.existing_order_id == winner
        assert app.list_orders() == [winner]
    finally:
        app.close()


def test_an_order_id_taken_by_another_order_is_still_a_duplicate_not_a_retry() -> None:
    app = app_with()
    app.handle(place_command(order_id="O-7", external_ref="a"))
    with pytest.raises(DuplicateOrder, match="O-7 already exists"):
        app.handle(place_command(order_id="O-7", external_ref="b"))


# -- follow-on work after a committed command -----------------------------------------------------------
STOCK_RULES = """
name = "shop"
version = "1"
[[rules]]
id = "stock"
builtin = "stock_available"
"""


def flaky_reevaluation(
    fails: Callable[[OrderId], Exception | None],
) -> dict[type[Command], Callable[[Any, UnitOfWork, Services], CommandResult]]:
    """A ReevaluateOrder handler that raises what ``fails`` gives for an order, else re-evaluates it."""
    real = COMMAND_HANDLERS[ReevaluateOrder]

    def handle(cmd: ReevaluateOrder, uow: UnitOfWork, svc: Services) -> CommandResult:
        error = fails(cmd.order_id)
        if error is not None:
            raise error
        return real(cmd, uow, svc)

    return {ReevaluateOrder: handle}


def test_stock_received_is_not_reported_failed_when_re_evaluating_a_held_order_fails() -> None:
    fail_once = [True]

    def fails(order_id: OrderId) -> Exception | None:
        if fail_once[0]:
            fail_once[0] = False
            return ConcurrencyConflict(order_id, 4, 5)  # another worker changed the order meanwhile
        return None

    app = app_with(
        rules=load_rules(STOCK_RULES),
        network=[BER],
        conflict_retries=0,
        command_handlers=flaky_reevaluation(fails),
    )
    order_id = app.handle(place_command(lines=[NewLine(Sku("MUG"), 2, eur("12.50"))])).order_id
    assert [h.code for h in app.get_order(order_id).holds] == ["out_of_stock"]

    result = app.handle(ReceiveStock(node_id="BER", sku="MUG", quantity=10))  # returns: it committed

    assert result.order_id == "BER/MUG"
    stock = app.stock("BER", "MUG")
    assert stock is not None and stock.on_hand == 10  # received once; the caller has no reason to retry
    [failure] = app.failures
    assert failure.event_type == "ReceiveStock"
    assert str(order_id) in failure.handler and "ConcurrencyConflict" in failure.error
    app.reevaluate_held(reason="retry")  # the order is re-evaluated later
    assert app.get_order(order_id).holds == ()


def test_re_evaluating_held_orders_goes_on_past_an_order_that_fails_and_then_raises() -> None:
    rules = load_rules(STOCK_RULES)
    app = app_with(
        rules=rules,
        network=[BER],
        command_handlers=flaky_reevaluation(
            lambda oid: ConnectionError("CRM timed out") if oid == OrderId("O-000001") else None
        ),
    )
    first = app.handle(place_command(lines=[NewLine(Sku("MUG"), 1, eur("12.50"))])).order_id
    second = app.handle(place_command(lines=[NewLine(Sku("MUG"), 1, eur("12.50"))])).order_id
    app.bus.handle(ReceiveStock(node_id="BER", sku="MUG", quantity=5))  # the bus alone re-evaluates nothing

    with pytest.raises(ReevaluationFailed, match="O-000001: ConnectionError: CRM timed out") as info:
        app.reevaluate_held(reason="stock arrived")

    assert [h.code for h in app.get_order(first).holds] == ["out_of_stock"]
    assert app.get_order(second).holds == ()  # the order after the failing one was still re-evaluated
    error = info.value
    assert [(order_id, type(e)) for order_id, e in error.failures] == [(first, ConnectionError)]
    assert [r.order_id for r in error.results] == [second]
    assert isinstance(error.__cause__, ConnectionError)
    assert error.to_dict() == {
        "code": "reevaluation_failed",
        "message": str(error),
        "failures": [{"order_id": "O-000001", "code": "ConnectionError", "message": "CRM timed out"}],
        "reevaluated": ["O-000002"],
    }


def test_re_evaluating_held_orders_names_every_order_that_failed_with_its_own_error() -> None:
    errors = {
        OrderId("O-000001"): ConnectionError("CRM timed out"),
        OrderId("O-000003"): StoreUnavailable("database restarting", retryable=True),
    }
    app = app_with(
        rules=load_rules(STOCK_RULES),
        network=[BER],
        command_handlers=flaky_reevaluation(lambda oid: errors.get(oid)),
    )
    ids = [app.handle(place_command(lines=[NewLine(Sku("MUG"), 1, eur("12.50"))])).order_id for _ in range(3)]
    app.bus.handle(ReceiveStock(node_id="BER", sku="MUG", quantity=5))

    with pytest.raises(ReevaluationFailed) as info:
        app.reevaluate_held(reason="stock arrived")

    assert [(order_id, e) for order_id, e in info.value.failures] == [
        (ids[0], errors[ids[0]]),
        (ids[2], errors[ids[2]]),
    ]
    assert [f["code"] for f in info.value.to_dict()["failures"]] == ["ConnectionError", "store_unavailable"]
    assert [r.order_id for r in info.value.results] == [ids[1]]
    errors.clear()  # the services are back: calling again re-evaluates the two left
    assert [r.order_id for r in app.reevaluate_held(reason="stock arrived")] == [ids[0], ids[2]]
    assert all(app.get_order(i).holds == () for i in ids)


def test_a_node_going_offline_moves_the_other_orders_when_one_fails_with_any_error() -> None:
    class FlakyGeocoder:
        down_for: frozenset[str] = frozenset()
        error: type[BaseException] = ConnectionError

        def locate(self, address: Any) -> GeoPoint:
            if address.postal_code in self.down_for:
                raise self.error("geocoding service timed out")
            return GeoPoint(52.52, 13.40)

    geo = FlakyGeocoder()
    app = app_with(network=[BER, HAM], geocoder=geo, default_strategy="priority")
    for node in ("BER", "HAM"):
        app.handle(ReceiveStock(node_id=node, sku="MUG", quantity=10))
    ids = []
    for postal_code in ("10115", "10117", "10119"):
        address = BERLIN.__class__(country="DE", postal_code=postal_code, city="Berlin", line1="Str. 1")
        cmd = place_command(shipping_address=address, lines=[NewLine(Sku("MUG"), 1, eur("12.50"))])
        order_id = app.handle(cmd).order_id
        app.handle(AcceptOrder(order_id=order_id))
        app.handle(SourceOrder(order_id=order_id))
        ids.append(order_id)
    geo.down_for = frozenset({"10115"})

    with pytest.raises(SourcingFailed) as caught:
        app.set_node_online("BER", False, reason="flood")

    assert caught.value.reasons == (f"{ids[0]}: ConnectionError: geocoding service timed out",)
    nodes = [sorted({a.node_id for a in app.get_order(o).allocations}) for o in ids]
    assert nodes == [["BER"], ["HAM"], ["HAM"]]

    geo.error = KeyboardInterrupt  # an interrupt is not an order's failure: it stops the loop
    with pytest.raises(KeyboardInterrupt):
        app.set_node_online("BER", False, reason="flood")


# -- PlaceOrder with an idempotency key and attributes that are not strings ---------------------------------
@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        ({"gift": object()}, "attributes['gift']"),
        ({1: "a", "b": "c"}, "attributes[1]"),
        ({"note": "caf\ud800"}, "attributes['note']"),
    ],
)
def test_invalid_attributes_are_reported_the_same_with_an_idempotency_key(
    attributes: dict[Any, Any], field: str
) -> None:
    app = app_with()
    with pytest.raises(ValidationFailed) as without_key:
        app.handle(place_command(attributes=attributes))
    with pytest.raises(ValidationFailed) as with_key:
        app.handle(place_command(attributes=attributes, idempotency_key="req-1"))

    assert [p.field for p in with_key.value.problems] == [field]
    assert with_key.value.problems == without_key.value.problems
    assert app.list_orders() == []
    # the key is still free: the corrected request places the order
    placed = app.handle(place_command(idempotency_key="req-1"))
    assert placed.changed and app.list_orders() == [placed.order_id]


def test_a_request_that_cannot_be_fingerprinted_names_the_field() -> None:
    with pytest.raises(InvalidValue) as caught:
        request_fingerprint(place_command(attributes={"gift": object()}, idempotency_key="k"))
    assert caught.value.field == "attributes"


# -- arguments of the wrong type ---------------------------------------------------------------------------
def test_ages_beyond_the_calendar_are_refused_naming_the_argument() -> None:
    app = app_with()
    with pytest.raises(InvalidValue) as aging:
        app.orders_aging(OrderStatus.PLACED, older_than=timedelta(days=10**6))
    with pytest.raises(InvalidValue) as purge:
        app.purge(keys_older_than=timedelta(days=10**6))
    assert (aging.value.field, purge.value.field) == ("older_than", "keys_older_than")


@pytest.mark.parametrize("codes", [[1, "big"], [["big"]], ["big", ""], [None]])
def test_reevaluate_held_refuses_codes_that_are_not_strings(codes: list[Any]) -> None:
    app = app_with(rules=load_rules(STOCK_RULES))
    with pytest.raises(InvalidValue) as caught:
        app.reevaluate_held(codes, reason="x")
    assert caught.value.field == f"codes[{next(i for i, c in enumerate(codes) if c != 'big')}]"


@pytest.mark.parametrize(
    "build",
    [
        lambda: SourceOrder(order_id="O-1", strategy=["cost_optimal"]),
        lambda: ResourceOrder(order_id="O-1", strategy=5),
        lambda: SourceWave(order_ids=["O-1"], strategy=["cost_optimal"]),
    ],
)
def test_a_strategy_must_be_named_by_a_string(build: Callable[[], Command]) -> None:
    with pytest.raises(InvalidValue) as caught:
        build()
    assert caught.value.field == "strategy"


def test_services_refuse_a_strategy_name_that_is_not_a_string() -> None:
    app = app_with()
    with pytest.raises(InvalidValue) as caught:
        app.services.strategy(["cost_optimal"])  # type: ignore[arg-type]
    assert caught.value.field == "strategy"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"lines": None}, "lines"),
        ({"lines": "MUG"}, "lines"),
        ({"discounts": None}, "discounts"),
        ({"discounts": [Adjustment("X", eur("1.00")), "SUMMER10"]}, "discounts[1]"),
        ({"shipping_charges": 5}, "shipping_charges"),
        ({"shipping_charges": [eur("4.90")]}, "shipping_charges[0]"),
        ({"shipping_taxes": ["x"]}, "shipping_taxes[0]"),
        ({"shipping_taxes": None}, "shipping_taxes"),
        ({"draft": "no"}, "draft"),
        ({"draft": None}, "draft"),
    ],
)
def test_place_order_refuses_collections_and_flags_of_the_wrong_type(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        place_command(**overrides)
    assert caught.value.field == field


def test_a_line_refuses_discounts_and_taxes_that_are_not_adjustments_and_tax_lines() -> None:
    with pytest.raises(InvalidValue) as discounts:
        NewLine(Sku("MUG"), 1, eur("1.00"), discounts=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue) as taxes:
        NewLine(Sku("MUG"), 1, eur("1.00"), taxes=["VAT"])  # type: ignore[list-item]
    assert (discounts.value.field, taxes.value.field) == ("discounts", "taxes[0]")


def test_lines_that_are_not_new_lines_are_reported_by_the_order_with_their_position() -> None:
    app = app_with()
    with pytest.raises(ValidationFailed) as caught:
        app.handle(place_command(lines=iter([NewLine(Sku("MUG"), 1, eur("1.00")), "TEA"])))
    assert [p.field for p in caught.value.problems] == ["lines[1]"]  # reported once, by the order
    with pytest.raises(ValidationFailed, match="at least one line"):
        app.handle(place_command(lines=[]))


@pytest.mark.parametrize("version", ["1", True, -1, 1.0])
def test_expected_version_must_be_a_whole_number(version: object) -> None:
    with pytest.raises(InvalidValue) as caught:
        HoldOrder(order_id="O-1", code="x", expected_version=version)  # type: ignore[arg-type]
    assert caught.value.field == "expected_version"


def test_expected_version_zero_and_none_are_taken() -> None:
    assert HoldOrder(order_id="O-1", code="x", expected_version=0).expected_version == 0
    assert HoldOrder(order_id="O-1", code="x").expected_version is None


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ReceiveStock(node_id="BER", sku="TEA", quantity=1, backorderable="no"), "backorderable"),
        (lambda: ReportShortPick(order_id="O-1", node_id="BER", lines={"1": 1}, resource="no"), "resource"),
        (lambda: SourceWave(order_ids=["O-1"], joint=0), "joint"),
        (lambda: SetNodeOnline(node_id="BER", online="no"), "online"),
    ],
)
def test_flags_of_commands_must_be_true_or_false(build: Callable[[], Command], field: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        build()
    assert caught.value.field == field


def test_set_node_online_refuses_a_flag_that_is_not_a_bool_and_switches_nothing() -> None:
    app = app_with(network=[BER])
    with pytest.raises(InvalidValue):
        app.set_node_online("BER", "no")  # type: ignore[arg-type]
    assert app.node_states().is_online("BER")


def test_backorderable_none_keeps_its_meaning() -> None:
    app = app_with(network=[BER])
    app.handle(ReceiveStock(node_id="BER", sku="TEA", quantity=1, backorderable=None))
    stock = app.stock("BER", "TEA")
    assert stock is not None and stock.backorderable is False


# -- a closed memory store ---------------------------------------------------------------------------------
def test_a_unit_opened_before_the_memory_store_closed_commits_nothing() -> None:
    app = app_with()
    order_id = app.handle(place_command()).order_id
    uow = app.store.unit_of_work()
    order = uow.orders.get(order_id)
    order.hold("late", actor=order.history[0].actor, at=AT)
    uow.orders.save(order)
    app.close()

    with pytest.raises(StoreUnavailable, match="closed"):
        uow.commit()

    assert app.store.orders[order_id].holds == ()  # type: ignore[attr-defined]


def test_reads_of_a_closed_memory_store_are_refused() -> None:
    app = app_with()
    order_id = app.handle(place_command()).order_id
    uow = app.store.unit_of_work()
    app.close()
    reads: list[Callable[[], object]] = [
        lambda: uow.orders.get(order_id),
        lambda: uow.orders.find_by_external_ref(Channel("web"), "x"),
        lambda: uow.outbox.pending(),
        lambda: uow.inventory.get("BER", Sku("MUG")),
        lambda: uow.idempotency.get("k"),
        lambda: uow.nodes.current(),
        lambda: app.get_order(order_id),
    ]
    for read in reads:
        with pytest.raises(StoreUnavailable, match="closed"):
            read()
