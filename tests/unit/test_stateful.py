"""Random command sequences through the application; the order's invariants are checked after every step.

Sourcing is part of it (stock arrives, orders are sourced, short-picked, re-sourced, nodes go offline), so
after each step the stock reserved at each node is also exactly what the order holds there.

After each step: every line's buckets are non-negative and add up to what was ordered; every recorded
status change is a transition the lifecycle allows; a refused command changed nothing; totals add up;
the status agrees with the buckets once the order is accepted; replaying the history gives the same
order; and subscribers saw exactly the committed history.
"""

import itertools
from datetime import timedelta
from decimal import Decimal

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ordercore import (
    DEFAULT_LIFECYCLE,
    AcceptOrder,
    AllocateLines,
    BackorderLines,
    CancelLines,
    CancelOrder,
    ChangeLineQuantity,
    ChangeShippingAddress,
    Command,
    CompleteOrder,
    FireTrigger,
    GeoPoint,
    HoldOrder,
    LineId,
    ManualClock,
    Money,
    Order,
    OrderCoreError,
    OrderEvent,
    OrderStatus,
    ReceiveStock,
    RecordDelivery,
    RecordReturn,
    RecordShipment,
    RejectOrder,
    ReleaseHold,
    ReleaseToFulfilment,
    ReportShortPick,
    ResourceOrder,
    SequentialIds,
    SourceOrder,
    bootstrap,
    derive_status,
)
from ordercore import events as ev
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from ordercore.lifecycle import Trigger, Triggers
from ordercore.lines import BUCKETS
from ordercore.testing.strategies import addresses, place_order_commands
from tests.unit.factories import AT

S, T = OrderStatus, Triggers

_TRIGGER_OF: dict[type[OrderEvent], Trigger] = {
    ev.HoldApplied: T.HOLD,
    ev.HoldReleased: T.RELEASE_HOLD,
    ev.LinesAllocated: T.ALLOCATE,
    ev.LinesBackordered: T.BACKORDER,
    ev.LinesReleased: T.RELEASE,
    ev.ShipmentRecorded: T.SHIP,
    ev.DeliveryRecorded: T.DELIVER,
    ev.ReturnRecorded: T.RETURN,
    ev.LinesCancelled: T.CANCEL_LINES,
    ev.OrderCancelled: T.CANCEL,
    ev.LineQuantityChanged: T.EDIT,
    ev.ShippingAddressChanged: T.EDIT,
    ev.SourcingPlanned: T.SOURCE,
    ev.AllocationWithdrawn: T.DEALLOCATE,
}

NODES = ("BER", "HAM", "MUC")


def _network() -> list[FulfilmentNode]:
    cost = ShippingCost("EUR", per_shipment=Decimal(8), per_unit_km=Decimal("0.01"))
    spots = {"BER": (52.52, 13.40), "HAM": (53.55, 9.99), "MUC": (48.14, 11.58)}
    return [
        FulfilmentNode(
            n, NodeKind.WAREHOUSE, GeoPoint(*spots[n]), cost, daily_capacity=None if n != "MUC" else 2
        )
        for n in NODES
    ]


class _Geocoder:
    """Every address is in Kassel: the generated addresses carry no coordinates."""

    def locate(self, address: object) -> GeoPoint:
        return GeoPoint(51.31, 9.49)


HOLD_CODES = st.sampled_from(["CREDIT", "FRAUD", "ADDRESS"])
SOME = st.integers(0, 3)
RARELY = st.integers(0, 7).map(lambda n: n == 0)


class OrderLifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(AT, tick=timedelta(minutes=1))
        self.app = bootstrap(clock=self.clock, ids=SequentialIds(), network=_network(), geocoder=_Geocoder())
        self.seen: list[OrderEvent] = []
        self.app.subscribe(OrderEvent, self.seen.append)
        self.order: Order
        # nodes switched offline, each with the length of the order's history when it was
        self.offline_since: dict[str, int] = {}

    @initialize(cmd=place_order_commands(max_lines=3), draft=st.sampled_from([False, False, False, True]))
    def place(self, cmd: Command, draft: bool) -> None:
        order_id = self.app.handle(attrs.evolve(cmd, draft=draft)).order_id
        self.order = self.app.get_order(order_id)

    # -- driving -------------------------------------------------------------------------------------------
    def _lines(self, data: st.DataObject) -> dict[LineId, int]:
        picks = data.draw(st.lists(st.sampled_from(self.order.lines), min_size=1, max_size=3))
        return {ln.id: data.draw(SOME) for ln in picks}

    def _run(self, command: Command) -> None:
        before = self.app.get_order(self.order.id)
        try:
            result = self.app.handle(command)
        except OrderCoreError:
            after = self.app.get_order(self.order.id)
            assert after == before, f"{type(command).__name__} failed but changed the order"
            return
        self.order = self.app.get_order(self.order.id)
        assert self.order.version == before.version + len(result.events)

    def _cmd(self, kind: type[Command], **kwargs: object) -> None:
        self._run(kind(order_id=self.order.id, **kwargs))  # type: ignore[call-arg]

    @rule()
    def place_draft(self) -> None:
        self._cmd(FireTrigger, trigger=T.PLACE)

    @rule()
    def accept(self) -> None:
        self._cmd(AcceptOrder)

    # the final decisions are drawn rarely, so that sequences get deep into fulfilment first
    @rule(go=RARELY)
    def reject(self, go: bool) -> None:
        if go:
            self._cmd(RejectOrder, reason="refused", code="TEST")

    @rule(code=HOLD_CODES)
    def hold(self, code: str) -> None:
        self._cmd(HoldOrder, code=code)

    @rule(code=HOLD_CODES)
    def release_hold(self, code: str) -> None:
        self._cmd(ReleaseHold, code=code)

    @rule(go=RARELY)
    def cancel(self, go: bool) -> None:
        if go:
            self._cmd(CancelOrder, reason="customer")

    @rule(data=st.data())
    def cancel_lines(self, data: st.DataObject) -> None:
        self._cmd(CancelLines, lines=self._lines(data), reason="partial")

    @rule(data=st.data(), everything=st.booleans())
    def allocate(self, data: st.DataObject, everything: bool) -> None:
        self._cmd(AllocateLines, lines=None if everything else self._lines(data))

    @rule(data=st.data())
    def backorder(self, data: st.DataObject) -> None:
        self._cmd(BackorderLines, lines=self._lines(data))

    @rule(data=st.data(), everything=st.booleans())
    def release(self, data: st.DataObject, everything: bool) -> None:
        self._cmd(ReleaseToFulfilment, lines=None if everything else self._lines(data))

    @rule(data=st.data(), everything=st.booleans())
    def ship(self, data: st.DataObject, everything: bool) -> None:
        self._cmd(RecordShipment, shipment_id="S", lines=None if everything else self._lines(data))

    @rule(data=st.data(), everything=st.booleans())
    def deliver(self, data: st.DataObject, everything: bool) -> None:
        self._cmd(RecordDelivery, lines=None if everything else self._lines(data))

    @rule(data=st.data())
    def record_return(self, data: st.DataObject) -> None:
        self._cmd(RecordReturn, lines=self._lines(data))

    @rule()
    def complete(self) -> None:
        self._cmd(CompleteOrder)

    @rule(data=st.data(), quantity=st.integers(0, 12))
    def change_quantity(self, data: st.DataObject, quantity: int) -> None:
        line = data.draw(st.sampled_from(self.order.lines))
        self._cmd(ChangeLineQuantity, line_id=line.id, quantity=quantity)

    @rule(address=addresses())
    def change_address(self, address: object) -> None:
        self._cmd(ChangeShippingAddress, address=address)

    @rule(data=st.data(), node=st.sampled_from(NODES), quantity=st.integers(1, 6))
    def receive_stock(self, data: st.DataObject, node: str, quantity: int) -> None:
        line = data.draw(st.sampled_from(self.order.lines))
        self._run(ReceiveStock(node_id=node, sku=line.sku, quantity=quantity))

    @rule(strategy=st.sampled_from(["cost_optimal", "nearest", "priority", "fewest_shipments"]))
    def source(self, strategy: str) -> None:
        self._cmd(SourceOrder, strategy=strategy)

    @rule(node=st.sampled_from([None, *NODES]))
    def resource(self, node: str | None) -> None:
        self._cmd(ResourceOrder, node_id=node)

    @rule(data=st.data())
    def short_pick(self, data: st.DataObject) -> None:
        if self.order.allocations:
            a = data.draw(st.sampled_from(self.order.allocations))
            self._cmd(
                ReportShortPick, node_id=a.node_id, lines={a.line_id: data.draw(st.integers(1, a.quantity))}
            )

    @rule(node=st.sampled_from(NODES), online=st.booleans())
    def switch_node(self, node: str, online: bool) -> None:
        if online:
            self.offline_since.pop(node, None)
        else:
            self.offline_since.setdefault(node, len(self.order.history))
        self.app.set_node_online(node, online)
        assert self.app.node_states().offline == set(self.offline_since)
        self.order = self.app.get_order(self.order.id)

    # -- invariants ----------------------------------------------------------------------------------------
    @invariant()
    def buckets_add_up(self) -> None:
        for line in self.order.lines:
            q = line.qty
            values = [getattr(q, b) for b in BUCKETS]
            assert all(v >= 0 for v in values)
            assert sum(values) == q.ordered
            assert q.ordered - q.cancelled - q.open - q.backordered >= 0  # never more allocated than ordered

    @invariant()
    def every_status_change_is_legal(self) -> None:
        history = self.order.history
        assert history[0].status == DEFAULT_LIFECYCLE.initial
        for prev, event in itertools.pairwise(history):
            trigger = event.trigger if isinstance(event, ev.StatusChanged) else _TRIGGER_OF[type(event)]
            transition = DEFAULT_LIFECYCLE.transition(prev.status, trigger)
            assert transition is not None, f"{trigger} from {prev.status}"
            assert event.status in transition.targets, f"{trigger}: {prev.status} -> {event.status}"

    @invariant()
    def totals_are_consistent(self) -> None:
        t = self.order.totals()
        zero = Money.zero(self.order.currency)
        for part in (t.subtotal, t.discount_total, t.tax_total, t.shipping_total):
            assert part >= zero
        assert t.discount_total == t.line_discounts + t.order_discounts
        assert t.grand_total == t.subtotal - t.discount_total + t.tax_total + t.shipping_total
        assert t.grand_total >= zero

    @invariant()
    def status_follows_the_buckets_once_accepted(self) -> None:
        o = self.order
        if o.accepted and not o.holds and o.status not in (S.COMPLETED, S.REJECTED):
            assert o.status == derive_status(o.quantities)

    @invariant()
    def reservations_match_the_node_allocations(self) -> None:
        now = self.clock.now()
        held: dict[tuple[str, str], int] = {}
        for a in self.order.allocations:
            key = (a.node_id, self.order.line(a.line_id).sku.value)
            held[key] = held.get(key, 0) + a.quantity
        for line in self.order.lines:
            tracked = sum(a.quantity for a in self.order.allocations if a.line_id == line.id)
            assert tracked <= line.qty.allocated + line.qty.released
            for node in NODES:
                position = self.app.stock(node, line.sku)
                if position is not None:
                    assert position.on_hand >= 0
                    assert position.reserved(now) == held.get((node, line.sku.value), 0)

    @invariant()
    def nothing_is_sourced_at_a_node_after_it_went_offline(self) -> None:
        for node, since in self.offline_since.items():
            for event in self.order.history[since:]:
                if isinstance(event, ev.SourcingPlanned):
                    assert all(a.node_id != node for a in event.allocations), f"sourced at offline {node}"

    @invariant()
    def replay_equals_state(self) -> None:
        assert Order.replay(self.order.history) == self.order

    @invariant()
    def subscribers_saw_exactly_the_history(self) -> None:
        assert self.seen == self.order.history


OrderLifecycleMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestOrderLifecycle = OrderLifecycleMachine.TestCase


class SourcingMachine(OrderLifecycleMachine):
    """The same order and invariants, started accepted with stock on hand and driven only by what moves
    units between nodes: sourcing, short picks, re-sourcing, nodes going offline, shipments, cancellations
    of lines and smaller quantities."""

    @initialize(
        cmd=place_order_commands(max_lines=3),
        stock=st.lists(st.tuples(st.sampled_from(NODES), st.integers(0, 2), st.integers(1, 8)), max_size=6),
    )
    def place_accepted(self, cmd: Command, stock: list[tuple[str, int, int]]) -> None:
        order_id = self.app.handle(attrs.evolve(cmd, draft=False)).order_id
        self.app.handle(AcceptOrder(order_id=order_id))
        self.order = self.app.get_order(order_id)
        for node, pick, quantity in stock:
            sku = self.order.lines[pick % len(self.order.lines)].sku
            self.app.handle(ReceiveStock(node_id=node, sku=sku, quantity=quantity))

    # not part of this machine: the general one drives them
    place = place_draft = accept = reject = hold = release_hold = cancel = None  # type: ignore[assignment]
    allocate = backorder = deliver = record_return = complete = change_address = None  # type: ignore[assignment]


SourcingMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=30, deadline=None)
TestSourcing = SourcingMachine.TestCase
