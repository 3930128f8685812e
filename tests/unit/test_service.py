"""The application layer: commands, unit of work, message bus, outbox and bootstrap."""

import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from ordercore import (
    AcceptOrder,
    CancelLines,
    ConcurrencyConflict,
    DuplicateOrder,
    EventHandlerFailed,
    HandlerFailure,
    HoldOrder,
    IdempotencyConflict,
    IllegalTransition,
    InvalidValue,
    ManualClock,
    NewLine,
    OrderCore,
    OrderCoreError,
    OrderCreated,
    OrderEvent,
    OrderId,
    OrderNotFound,
    OrderStatus,
    PublishRefused,
    RecordDelivery,
    RecordShipment,
    SequentialIds,
    ShipmentRecorded,
    Sku,
    StatusChanged,
    StoreUnavailable,
    UnknownStore,
    ValidationFailed,
    bootstrap,
    open_store,
)
from ordercore.ports import UnitOfWork
from ordercore.service.commands import Command, OrderCommand, ReceiveStock
from ordercore.service.handlers import COMMAND_HANDLERS, CommandResult, Services, request_fingerprint
from ordercore_adapters.memory import MemoryStore, MemoryUnitOfWork
from tests.unit.factories import AT, eur, place_command

S = OrderStatus


def app_with(**kwargs: object) -> OrderCore:
    return bootstrap(clock=ManualClock(AT), ids=SequentialIds(), **kwargs)  # type: ignore[arg-type]


def outbox_ids(app: OrderCore) -> list[str]:
    with app.store.unit_of_work() as uow:
        return [r.event.event_id for r in uow.outbox.pending(limit=1000)]


def test_place_and_drive_an_order(ordercore_app: OrderCore) -> None:
    result = ordercore_app.handle(place_command())
    assert result.order_id == OrderId("O-000001") and result.version == 2
    assert [type(e) for e in result.events] == [OrderCreated, StatusChanged]
    ordercore_app.handle(AcceptOrder(order_id=result.order_id))
    ordercore_app.handle(RecordShipment(order_id=result.order_id, shipment_id="S1"))
    ordercore_app.handle(RecordDelivery(order_id=result.order_id))
    order = ordercore_app.get_order(result.order_id)
    assert order.status == S.DELIVERED and order.version == 5
    assert ordercore_app.history("O-000001") == order.history
    assert ordercore_app.list_orders(status=S.DELIVERED) == [result.order_id]


def test_orders_read_back_are_copies(ordercore_app: OrderCore) -> None:
    order_id = ordercore_app.handle(place_command()).order_id
    copy = ordercore_app.get_order(order_id)
    copy.accept(actor=copy.history[0].actor, at=AT)
    assert ordercore_app.get_order(order_id).status == S.PLACED


def test_a_retry_with_the_same_external_reference_returns_the_same_order(ordercore_app: OrderCore) -> None:
    first = ordercore_app.handle(place_command(external_ref="WEB-1"))
    again = ordercore_app.handle(place_command(external_ref="WEB-1"))
    assert again.order_id == first.order_id and not again.changed
    with pytest.raises(DuplicateOrder) as err:
        ordercore_app.handle(place_command(external_ref="WEB-1", lines=[NewLine(Sku("X"), 1, eur("1.00"))]))
    assert err.value.existing_order_id == first.order_id
    assert ordercore_app.list_orders() == [first.order_id]


def test_invalid_input_stores_nothing() -> None:
    app = app_with()
    with pytest.raises(ValidationFailed):
        app.handle(place_command(currency="USD"))
    assert app.list_orders() == [] and outbox_ids(app) == []


def test_a_refused_command_leaves_the_order_as_it_was(ordercore_app: OrderCore) -> None:
    order_id = ordercore_app.handle(place_command()).order_id
    with pytest.raises(IllegalTransition):
        ordercore_app.handle(RecordDelivery(order_id=order_id))
    with pytest.raises(ValidationFailed):
        ordercore_app.handle(CancelLines(order_id=order_id, lines={"1": 99}, reason="x"))
    order = ordercore_app.get_order(order_id)
    assert order.status == S.PLACED and order.version == 2


def test_expected_version_guards_against_lost_updates(ordercore_app: OrderCore) -> None:
    order_id = ordercore_app.handle(place_command()).order_id
    ordercore_app.handle(HoldOrder(order_id=order_id, code="CHECK", expected_version=2))
    with pytest.raises(ConcurrencyConflict) as err:
        ordercore_app.handle(AcceptOrder(order_id=order_id, expected_version=2))
    assert (err.value.expected_version, err.value.actual_version) == (2, 3)
    assert ordercore_app.get_order(order_id).status == S.ON_HOLD


def test_unknown_order_is_a_typed_error(ordercore_app: OrderCore) -> None:
    with pytest.raises(OrderNotFound) as err:
        ordercore_app.handle(AcceptOrder(order_id=OrderId("missing")))
    assert err.value.code == "order_not_found"


# -- message bus ----------------------------------------------------------------------------------------
def test_subscribers_get_committed_events_in_order() -> None:
    app = app_with(strict=True)
    seen: list[str] = []
    app.subscribe(OrderEvent, lambda ev: seen.append(ev.event_id))
    app.subscribe(ShipmentRecorded, lambda ev: seen.append(f"shipped {ev.shipment_id}"))
    order_id = app.handle(place_command()).order_id
    app.handle(AcceptOrder(order_id=order_id))
    app.handle(RecordShipment(order_id=order_id, shipment_id="S1"))
    assert seen == ["O-000001#1", "O-000001#2", "O-000001#3", "O-000001#4", "shipped S1"]


def test_a_failing_handler_does_not_undo_the_command_nor_stop_the_others() -> None:
    reported: list[HandlerFailure] = []
    app = app_with(on_failure=reported.append)
    seen: list[str] = []

    def broken(ev: OrderEvent) -> None:
        raise RuntimeError("mail server down")

    app.subscribe(StatusChanged, broken)
    app.subscribe(StatusChanged, lambda ev: seen.append(ev.event_id))
    result = app.handle(place_command())
    assert app.get_order(result.order_id).status == S.PLACED
    assert seen == ["O-000001#2"]
    (failure,) = app.failures
    assert failure.event_id == "O-000001#2" and "mail server down" in failure.error
    assert "broken" in failure.handler
    assert reported == [failure]


def test_a_strict_bus_raises_after_every_handler_ran() -> None:
    app = app_with(strict=True)
    seen: list[str] = []

    def broken(ev: OrderEvent) -> None:
        raise ValueError("bad template")

    app.subscribe(OrderCreated, broken)
    app.subscribe(OrderEvent, lambda ev: seen.append(ev.type))
    with pytest.raises(EventHandlerFailed) as err:
        app.handle(place_command())
    assert len(err.value.failures) == 1
    assert seen == ["OrderCreated", "StatusChanged"]
    assert app.list_orders() == [OrderId("O-000001")]  # the command itself was committed


def test_handlers_may_return_follow_up_commands() -> None:
    app = app_with(strict=True)

    def auto_accept(ev: OrderEvent) -> Command | None:
        if isinstance(ev, StatusChanged) and ev.status == S.PLACED:
            return AcceptOrder(order_id=ev.order_id, reason="auto")
        return None

    app.subscribe(StatusChanged, auto_accept)
    order_id = app.handle(place_command()).order_id
    assert app.get_order(order_id).status == S.ACCEPTED


def test_a_failing_follow_up_is_recorded() -> None:
    app = app_with()
    app.subscribe(OrderCreated, lambda ev: RecordDelivery(order_id=ev.order_id))
    order_id = app.handle(place_command()).order_id
    assert app.get_order(order_id).status == S.PLACED
    assert "IllegalTransition" in app.failures[0].error


def test_events_are_published_from_the_outbox_and_survive_a_publisher_outage() -> None:
    class FlakyPublisher:
        def __init__(self) -> None:
            self.down = True
            self.received: list[str] = []

        def publish(self, events: list[OrderEvent]) -> None:
            if self.down:
                raise ConnectionError("broker unreachable")
            self.received.extend(e.event_id for e in events)

    publisher = FlakyPublisher()
    app = app_with(publisher=publisher)
    order_id = app.handle(place_command()).order_id
    assert publisher.received == [] and outbox_ids(app) == ["O-000001#1", "O-000001#2"]
    assert "broker unreachable" in app.failures[0].error
    publisher.down = False
    app.handle(AcceptOrder(order_id=order_id))
    assert publisher.received == ["O-000001#1", "O-000001#2", "O-000001#3"]
    assert outbox_ids(app) == []
    assert app.relay_outbox() == 0


class Refusing:
    """A publisher that stores events until it meets one of ``refused``, then refuses it for good, as a
    broker refuses an event too large for it; or fails with ``error`` instead, storing nothing."""

    def __init__(self, refused: set[str], error: Exception | None = None) -> None:
        self.refused = refused
        self.error = error
        self.down = False  # unreachable: stores nothing
        self.stored: list[str] = []
        self.calls: list[list[str]] = []

    def publish(self, events: list[OrderEvent]) -> None:
        self.calls.append([e.event_id for e in events])
        if self.down:
            raise ConnectionError("broker unreachable")
        for event in events:
            if event.event_id in self.refused:
                raise self.error or PublishRefused(f"{event.event_id} is too large", event_id=event.event_id)
            if event.event_id not in self.stored:
                self.stored.append(event.event_id)


def test_the_events_stored_before_a_refused_one_are_marked_and_the_relay_stops_at_it() -> None:
    publisher = Refusing({"O-000002#1"})
    publisher.down = True
    app = app_with(publisher=publisher)
    for _ in range(3):  # the broker is down meanwhile: every event waits in the outbox
        app.handle(place_command())
    publisher.down = False  # back, and refusing the second order's first event for good
    publisher.calls.clear()
    assert app.relay_outbox() == 2
    assert publisher.stored == ["O-000001#1", "O-000001#2"]
    # marked, the first order's events are not sent again on every later relay
    assert outbox_ids(app) == ["O-000002#1", "O-000002#2", "O-000003#1", "O-000003#2"]
    assert app.relay_outbox() == 0
    assert publisher.calls == [[f"O-00000{n}#{k}" for n in (1, 2, 3) for k in (1, 2)], outbox_ids(app)]
    refusals = [f for f in app.failures if isinstance(f.exception, PublishRefused)]
    assert [f.event_id for f in refusals] == ["O-000002#1"] * 2  # the refused event, not the batch's first

    publisher.refused.clear()  # the operator raised the limit
    assert app.relay_outbox() == 4
    assert outbox_ids(app) == []
    assert publisher.stored == [f"O-00000{n}#{k}" for n in (1, 2, 3) for k in (1, 2)]


@pytest.mark.parametrize(
    "error",
    [
        PublishRefused("refused, but not about one event"),
        PublishRefused("names an event not in the batch", event_id="X-1#1"),
        ConnectionError("a failure that says nothing of what was stored"),
    ],
)
def test_a_publisher_error_that_names_no_event_of_the_batch_marks_nothing(error: Exception) -> None:
    publisher = Refusing({"O-000001#2"}, error=error)
    app = app_with(publisher=publisher)
    app.handle(place_command())
    assert outbox_ids(app) == ["O-000001#1", "O-000001#2"]
    assert [f.event_id for f in app.failures] == ["O-000001#1"]


def test_a_refusal_of_the_first_event_of_a_batch_marks_nothing() -> None:
    publisher = Refusing({"O-000001#1"})
    app = app_with(publisher=publisher)
    app.handle(place_command())
    assert outbox_ids(app) == ["O-000001#1", "O-000001#2"] and publisher.stored == []
    assert app.relay_outbox() == 0


class Recording:
    """A publisher that records what it received; ``during`` runs once, inside the first publish."""

    def __init__(self, during: Callable[[], object] | None = None, fail_after: int | None = None) -> None:
        self.received: list[str] = []
        self.during = during
        self.fail_after = fail_after  # calls that succeed before each one fails

    def publish(self, events: list[OrderEvent]) -> None:
        if self.fail_after is not None and self.fail_after <= 0:
            raise ConnectionError("broker unreachable")
        if self.fail_after is not None:
            self.fail_after -= 1
        self.received.extend(e.event_id for e in events)
        during, self.during = self.during, None
        if during is not None:
            during()


def test_two_relays_taking_the_same_events_leave_none_behind_and_the_command_returns() -> None:
    store = MemoryStore()
    other = Recording()
    b = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds(order_prefix="B"), publisher=other)
    # while this worker publishes its batch, the other places an order and relays everything first
    mine = Recording(during=lambda: b.handle(place_command()))
    a = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds(order_prefix="A"), publisher=mine)
    result = a.handle(place_command())
    assert result.order_id == OrderId("A-000001") and result.version == 2  # the command's result, no error
    assert mine.received == ["A-000001#1", "A-000001#2"]
    assert other.received == ["A-000001#1", "A-000001#2", "B-000001#1", "B-000001#2"]
    assert outbox_ids(a) == [] and not a.failures and not b.failures  # a lost race is not a failure


def test_what_the_other_relay_left_in_the_outbox_is_published_again() -> None:
    store = MemoryStore()
    order_id = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds()).handle(place_command()).order_id
    # the other relay marks the first event, then its publisher fails on the second
    other = bootstrap(store, publisher=Recording(fail_after=1))
    mine = Recording(during=lambda: other.bus.relay_outbox(batch_size=1))
    assert bootstrap(store, publisher=mine).relay_outbox() == 1  # its batch was refused, then the rest
    assert mine.received == [f"{order_id}#1", f"{order_id}#2", f"{order_id}#2"]
    with store.unit_of_work() as uow:
        assert uow.outbox.pending() == []


def test_a_relay_that_keeps_losing_the_race_stops_after_a_few_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    bootstrap(store, clock=ManualClock(AT), ids=SequentialIds()).handle(place_command())

    def always_taken(uow: MemoryUnitOfWork, *args: Any) -> None:  # as if another relay were always first
        raise InvalidValue("is not in the outbox", field="event_id", value=args[4][0])

    monkeypatch.setattr(MemoryUnitOfWork, "_write", always_taken)
    publisher = Recording()
    assert bootstrap(store, publisher=publisher).relay_outbox() == 0  # returns: no endless loop, no error
    assert publisher.received == ["O-000001#1", "O-000001#2"] * 6  # the first read and five more


def test_a_store_failure_while_relaying_after_a_commit_is_recorded_and_the_result_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    write = MemoryUnitOfWork._write
    down = [False]

    def marking_fails(uow: MemoryUnitOfWork, *args: Any) -> None:
        if down[0] and args[4]:  # the ids to mark published
            raise StoreUnavailable("the server does not answer")
        write(uow, *args)

    monkeypatch.setattr(MemoryUnitOfWork, "_write", marking_fails)
    app = bootstrap(
        store,
        clock=ManualClock(AT),
        ids=SequentialIds(),
        publisher=Recording(lambda: down.__setitem__(0, True)),
    )
    result = app.handle(place_command())  # committed; marking its events published then fails
    assert result.order_id == OrderId("O-000001") and result.version == 2
    assert [f.handler for f in app.failures] == ["outbox relay"]
    assert "StoreUnavailable" in app.failures[0].error and app.failures[0].event_id == "O-000001#1"
    assert outbox_ids(app) == ["O-000001#1", "O-000001#2"]  # waiting for the next relay
    with pytest.raises(StoreUnavailable):  # called directly, a relay reports the store's failure
        app.relay_outbox()
    down[0] = False
    assert app.relay_outbox() == 2 and outbox_ids(app) == []


def test_the_unit_of_work_rolls_back_when_a_handler_raises_before_commit() -> None:
    @attrs.frozen(kw_only=True)
    class AcceptThenFail(OrderCommand):
        pass

    def handler(cmd: AcceptThenFail, uow: UnitOfWork, svc: Services) -> CommandResult:
        order = uow.orders.get(cmd.order_id)
        order.accept(actor=cmd.actor, at=svc.clock.now())
        uow.orders.save(order)
        raise RuntimeError("crashed before commit")

    app = app_with(command_handlers={AcceptThenFail: handler})
    order_id = app.handle(place_command()).order_id
    with pytest.raises(RuntimeError):
        app.handle(AcceptThenFail(order_id=order_id))
    assert app.get_order(order_id).status == S.PLACED
    assert outbox_ids(app) == ["O-000001#1", "O-000001#2"]


def test_a_command_without_handler_is_refused() -> None:
    @attrs.frozen(kw_only=True)
    class Unknown(Command):
        pass

    with pytest.raises(OrderCoreError, match="no handler"):
        app_with().handle(Unknown())


# -- bootstrap and stores -------------------------------------------------------------------------------
def test_stores_are_chosen_by_url_scheme() -> None:
    store = open_store("memory://")
    with store.unit_of_work() as uow:
        assert uow.orders.list_ids() == []
    with pytest.raises(UnknownStore, match="available: memory"):
        open_store("nosuch://x")
    with pytest.raises(UnknownStore, match="no scheme"):
        bootstrap("orders.db")


@pytest.mark.parametrize(
    "url", ["memory://orders", "memory:///tmp/orders.db", "memory://?name=a", "MEMORY://x"]
)
def test_a_memory_url_naming_anything_is_refused_not_ignored(url: str) -> None:
    with pytest.raises(InvalidValue) as info:
        open_store(url)
    assert info.value.field == "url"
    assert "memory://" in str(info.value)
    assert open_store(url.split("://")[0] + "://").unit_of_work() is not None  # the bare URL opens


def test_importing_ordercore_has_no_side_effects() -> None:
    code = (
        "import sys, threading; import ordercore; "
        "loaded = sorted(m for m in sys.modules if m.startswith('ordercore_adapters') or m in "
        "('sqlite3', 'socket', 'hypothesis', 'pytest')); "
        "print(loaded, threading.active_count())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] 1"


def test_commands_take_ids_as_strings_too(ordercore_app: OrderCore) -> None:
    order_id = ordercore_app.handle(place_command()).order_id
    ordercore_app.handle(AcceptOrder(order_id=order_id.value))
    assert ordercore_app.get_order(order_id).status == S.ACCEPTED


def test_handlers_run_in_subscription_order_across_event_types() -> None:
    app = app_with(strict=True)
    calls: list[str] = []
    app.subscribe(StatusChanged, lambda ev: calls.append("A"))
    app.subscribe(OrderEvent, lambda ev: calls.append("B"))
    app.subscribe(StatusChanged, lambda ev: calls.append("C"))
    app.handle(place_command())
    assert calls == ["B", "A", "B", "C"]  # OrderCreated: B; StatusChanged: A, B, C


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"clock": "now"}, "clock"),
        ({"ids": 5}, "ids"),
        ({"publisher": print}, "publisher"),
        ({"lifecycle": "default"}, "lifecycle"),
        ({"rules": "rules.yaml"}, "rules"),
        ({"strict": "yes"}, "strict"),
        ({"on_failure": 3}, "on_failure"),
        ({"event_handlers": [print]}, "event_handlers"),
        ({"payment": object()}, "payment"),
    ],
)
def test_bootstrap_refuses_a_malformed_port_before_opening_the_store(
    given: dict[str, object], field: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidValue) as err:
        bootstrap(f"sqlite:///{tmp_path / 'orders.db'}", **given)  # type: ignore[arg-type]
    assert err.value.field == field
    assert not (tmp_path / "orders.db").exists()  # nothing was created


def test_bootstrap_reports_every_malformed_port_at_once() -> None:
    with pytest.raises(ValidationFailed) as err:
        bootstrap(clock="now", ids=5)  # type: ignore[arg-type]
    assert sorted(p.field for p in err.value.problems) == ["clock", "ids"]


def test_bootstrap_refuses_something_that_is_not_a_store() -> None:
    with pytest.raises(InvalidValue) as err:
        bootstrap(123)  # type: ignore[arg-type]
    assert err.value.field == "store"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda app: app.available("SKU-1", at=datetime(2026, 1, 1)), "at"),  # no time zone
        (lambda app: app.available("SKU-1", at="2026-01-01"), "at"),
        (lambda app: app.hold_aging(now=datetime(2026, 1, 1)), "now"),
        (lambda app: app.what_if(None, []), "rules"),
        (lambda app: app.use_rules("rules.yaml"), "rules"),
        (lambda app: app.reevaluate_held("FRAUD", reason="reviewed"), "codes"),
    ],
)
def test_the_application_refuses_malformed_arguments_naming_them(
    call: Callable[[OrderCore], object], field: str
) -> None:
    app = app_with()
    app.handle(ReceiveStock(node_id="WH-1", sku="SKU-1", quantity=5, reason="open"))
    app.handle(place_command())
    with pytest.raises(InvalidValue) as err:
        call(app)
    assert err.value.field == field
    assert app.rules is None  # nothing changed by the refused call


# -- idempotency keys and the retry policy for conflicts -------------------------------------------------
def test_an_idempotency_key_returns_the_first_order_to_a_retry_with_the_same_payload() -> None:
    app = app_with()
    first = app.handle(place_command(idempotency_key="REQ-1"))
    retry = app.handle(place_command(idempotency_key="REQ-1", reason="client retry"))
    assert (retry.order_id, retry.version, retry.events) == (first.order_id, first.version, ())
    assert app.list_orders() == [first.order_id]


def test_an_idempotency_key_with_another_payload_is_refused() -> None:
    app = app_with()
    first = app.handle(place_command(idempotency_key="REQ-1"))
    with pytest.raises(IdempotencyConflict) as err:
        app.handle(place_command(idempotency_key="REQ-1", currency="USD"))
    assert isinstance(err.value, DuplicateOrder) and err.value.code == "idempotency_conflict"
    assert (err.value.key, err.value.existing_order_id) == ("REQ-1", first.order_id)
    assert app.list_orders() == [first.order_id]


def test_a_blank_idempotency_key_is_refused() -> None:
    with pytest.raises(InvalidValue) as err:
        app_with().handle(place_command(idempotency_key="  "))
    assert err.value.field == "idempotency_key"


def test_the_request_fingerprint_ignores_who_asks_and_why_but_not_what() -> None:
    base = request_fingerprint(place_command())
    assert request_fingerprint(place_command(reason="retry", idempotency_key="K")) == base
    assert request_fingerprint(place_command(service_level="express")) != base
    assert request_fingerprint(place_command(order_id="O-7")) != base
    assert base.startswith("sha256:") and len(base) == len("sha256:") + 64


def test_an_idempotency_key_binds_to_the_order_found_by_external_reference() -> None:
    app = app_with()
    first = app.handle(place_command(external_ref="EXT-1"))
    again = app.handle(place_command(external_ref="EXT-1", idempotency_key="REQ-1"))
    assert (again.order_id, again.events) == (first.order_id, ())
    with pytest.raises(IdempotencyConflict):
        app.handle(place_command(external_ref="EXT-2", idempotency_key="REQ-1"))


def racing_hold(app_ref: list[OrderCore], calls: list[HoldOrder]) -> dict[type[Command], object]:
    """A HoldOrder handler that, on its first call, lets another hold commit between its read and its
    commit: a real conflict, every time."""

    def handle(cmd: HoldOrder, uow: UnitOfWork, svc: Services) -> CommandResult:
        calls.append(cmd)
        uow.orders.get(cmd.order_id)  # read at the version before the other hold
        if len(calls) == 1:
            app_ref[0].handle(HoldOrder(order_id=cmd.order_id, code="OTHER"))
        return COMMAND_HANDLERS[HoldOrder](cmd, uow, svc)

    return {HoldOrder: handle}


def test_a_conflicting_command_runs_again_and_nothing_is_lost() -> None:
    app_ref: list[OrderCore] = []
    calls: list[HoldOrder] = []
    app = app_with(command_handlers=racing_hold(app_ref, calls))
    app_ref.append(app)
    order_id = app.handle(place_command()).order_id
    result = app.handle(HoldOrder(order_id=order_id, code="MINE"))
    assert len(calls) == 3  # mine, the other one inside it, mine again after the conflict
    assert {h.code for h in app.get_order(order_id).holds} == {"MINE", "OTHER"}
    assert result.version == 4


def test_a_command_with_expected_version_is_not_run_again_after_a_conflict() -> None:
    app_ref: list[OrderCore] = []
    calls: list[HoldOrder] = []
    app = app_with(command_handlers=racing_hold(app_ref, calls))
    app_ref.append(app)
    order_id = app.handle(place_command()).order_id
    with pytest.raises(ConcurrencyConflict):
        app.handle(HoldOrder(order_id=order_id, code="MINE", expected_version=2))
    assert len(calls) == 2
    assert {h.code for h in app.get_order(order_id).holds} == {"OTHER"}


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_conflicts_are_retried_at_most_conflict_retries_times(retries: int) -> None:
    calls: list[Command] = []

    def always_conflicts(cmd: Command, uow: UnitOfWork, svc: Services) -> CommandResult:
        calls.append(cmd)
        raise ConcurrencyConflict("O-1", 1, 2)

    app = app_with(command_handlers={HoldOrder: always_conflicts}, conflict_retries=retries)
    with pytest.raises(ConcurrencyConflict):
        app.handle(HoldOrder(order_id="O-1", code="X"))
    assert len(calls) == retries + 1


@pytest.mark.parametrize("retries", [-1, 1.5, True, "3"])
def test_conflict_retries_must_be_a_whole_number_not_below_zero(retries: object) -> None:
    with pytest.raises(InvalidValue) as err:
        app_with(conflict_retries=retries)
    assert err.value.field == "conflict_retries"


def unavailable_then_hold(
    failures: list[StoreUnavailable], calls: list[HoldOrder]
) -> dict[type[Command], object]:
    """A HoldOrder handler whose unit of work fails with each of ``failures`` in turn, then holds."""

    def handle(cmd: HoldOrder, uow: UnitOfWork, svc: Services) -> CommandResult:
        calls.append(cmd)
        if len(calls) <= len(failures):
            uow.orders.get(cmd.order_id)
            raise failures[len(calls) - 1]
        return COMMAND_HANDLERS[HoldOrder](cmd, uow, svc)

    return {HoldOrder: handle}


@pytest.mark.parametrize("expected_version", [None, 2])
def test_a_retryable_store_failure_runs_the_command_again_and_it_applies_once(
    expected_version: int | None,
) -> None:
    calls: list[HoldOrder] = []
    broken = StoreUnavailable("the pooled connection was found broken", retryable=True)
    app = app_with(command_handlers=unavailable_then_hold([broken, broken], calls))
    order_id = app.handle(place_command()).order_id
    result = app.handle(HoldOrder(order_id=order_id, code="MINE", expected_version=expected_version))
    assert len(calls) == 3 and result.version == 3
    assert [h.code for h in app.get_order(order_id).holds] == ["MINE"]


@pytest.mark.parametrize(
    "failure",
    [
        StoreUnavailable("the server does not answer"),
        StoreUnavailable("the connection broke during the commit", retryable=True, outcome_unknown=True),
    ],
)
def test_a_store_failure_that_is_not_retryable_reaches_the_caller_at_once(failure: StoreUnavailable) -> None:
    calls: list[HoldOrder] = []
    app = app_with(command_handlers=unavailable_then_hold([failure], calls))
    order_id = app.handle(place_command()).order_id
    with pytest.raises(StoreUnavailable) as err:
        app.handle(HoldOrder(order_id=order_id, code="MINE"))
    assert err.value is failure and len(calls) == 1
    assert app.get_order(order_id).holds == ()
    assert failure.to_dict()["retryable"] is False
    assert failure.to_dict()["outcome_unknown"] is failure.outcome_unknown


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_store_failures_are_retried_at_most_unavailable_retries_times(retries: int) -> None:
    calls: list[HoldOrder] = []
    failures = [StoreUnavailable(f"attempt {i}", retryable=True) for i in range(5)]
    app = app_with(command_handlers=unavailable_then_hold(failures, calls), unavailable_retries=retries)
    order_id = app.handle(place_command()).order_id
    with pytest.raises(StoreUnavailable) as err:
        app.handle(HoldOrder(order_id=order_id, code="MINE"))
    assert len(calls) == retries + 1 and err.value is failures[retries]


@pytest.mark.parametrize("retries", [-1, 1.5, True, "3"])
def test_unavailable_retries_must_be_a_whole_number_not_below_zero(retries: object) -> None:
    with pytest.raises(InvalidValue) as err:
        app_with(unavailable_retries=retries)
    assert err.value.field == "unavailable_retries"


def test_purge_drops_old_idempotency_keys_and_past_capacity_days() -> None:
    from datetime import timedelta

    from ordercore.inventory import NodeDay

    clock = ManualClock(AT)
    app = bootstrap(clock=clock, ids=SequentialIds())
    first = app.handle(place_command(idempotency_key="K-OLD")).order_id
    with app.store.unit_of_work() as uow:
        day = NodeDay.open("WH-1", AT.date() - timedelta(days=1))
        day.take("x", limit=None)
        uow.capacity.save(day)
        uow.commit()
    clock.advance(timedelta(days=31))
    app.handle(place_command(idempotency_key="K-NEW"))
    assert app.purge() == (1, 1)
    # the old key is gone: the same request now makes a new order; the recent one still returns its own
    assert app.handle(place_command(idempotency_key="K-OLD")).order_id != first
    assert not app.handle(place_command(idempotency_key="K-NEW")).changed
    assert app.purge(keys_older_than=None) == (0, 0)
    with pytest.raises(InvalidValue):
        app.purge(keys_older_than=timedelta(days=-1))
    with pytest.raises(InvalidValue):
        app.purge(capacity_before="2026-01-01")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -5, 2.5, True, "10", None])
def test_a_relay_batch_that_is_not_a_positive_whole_number_is_refused(size: object) -> None:
    store = MemoryStore()
    bootstrap(store, clock=ManualClock(AT), ids=SequentialIds()).handle(place_command())  # 2 events wait
    publisher = Recording()
    app = bootstrap(store, publisher=publisher)
    with pytest.raises(InvalidValue) as e:
        app.bus.relay_outbox(batch_size=size)  # type: ignore[arg-type]
    assert e.value.field == "batch_size" and publisher.received == []  # nothing relayed
    assert app.bus.relay_outbox(batch_size=2**70) == 2  # a huge batch is every event
    assert publisher.received == ["O-000001#1", "O-000001#2"]
