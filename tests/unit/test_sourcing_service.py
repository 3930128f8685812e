"""Sourcing through the application: plans reserve stock, and the reservations follow the order."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordercore import (
    AcceptOrder,
    Actor,
    Address,
    CancelLines,
    CancelOrder,
    GeoPoint,
    HoldOrder,
    InsufficientStock,
    InvalidValue,
    ManualClock,
    NewLine,
    OrderCore,
    OrderCoreError,
    OrderStatus,
    QuantityExceeded,
    RecordShipment,
    ReleaseHold,
    ReleaseToFulfilment,
    ReservationConflict,
    SequentialIds,
    Sku,
    SourcingFailed,
    SourcingPlanned,
    StockNotFound,
    UnknownNode,
    bootstrap,
)
from ordercore.inventory import Capability, FulfilmentNode, NodeKind, ShippingCost, Supply
from ordercore.service.commands import (
    CancelSupply,
    ChangeShippingAddress,
    CountStock,
    ExpectSupply,
    ReceiveStock,
    ReleaseReservation,
    ReportShortPick,
    ReserveStock,
    ResourceOrder,
    SetSafetyStock,
    SourceOrder,
    SourceWave,
)
from ordercore.sourcing import SourcingPolicy
from tests.unit.factories import AT, eur, place_command

S = OrderStatus
BERLIN = Address(
    country="DE",
    postal_code="10115",
    city="Berlin",
    line1="Invalidenstr. 1",
    coordinates=GeoPoint(52.53, 13.38),
)
NO_COORDINATES = attrs.evolve(BERLIN, coordinates=None)


def node(
    node_id: str, lat: float, lon: float, *, kind: NodeKind = NodeKind.WAREHOUSE, **kw: object
) -> FulfilmentNode:
    cost = ShippingCost("EUR", per_shipment=Decimal(8), per_unit_km=Decimal("0.01"))
    return FulfilmentNode(node_id, kind, GeoPoint(lat, lon), cost, **kw)  # type: ignore[arg-type]


NETWORK = [
    node("BER", 52.52, 13.40),  # next to the customer
    node("HAM", 53.55, 9.99),  # about 255 km away
    node("MUC", 48.14, 11.58),  # about 505 km away
    node(
        "STORE-B",
        52.50,
        13.45,
        kind=NodeKind.STORE,
        capabilities={Capability.PICKUP, Capability.SHIP_FROM_STORE},
    ),
]


def make_app(stock: dict[tuple[str, str], int], **kwargs: object) -> OrderCore:
    app = bootstrap(
        clock=ManualClock(AT, tick=timedelta(seconds=1)), ids=SequentialIds(), network=NETWORK, **kwargs
    )  # type: ignore[arg-type]
    for (node_id, sku), qty in sorted(stock.items()):
        app.handle(ReceiveStock(node_id=node_id, sku=sku, quantity=qty, reason="opening stock"))
    return app


def placed(app: OrderCore, *quantities: tuple[str, int], address: Address = BERLIN, **kw: object) -> str:
    lines = [NewLine(Sku(sku), q, eur("5.00")) for sku, q in quantities]
    order_id = app.handle(place_command(lines=lines, shipping_address=address, **kw)).order_id
    app.handle(AcceptOrder(order_id=order_id))
    return str(order_id)


def reserved(app: OrderCore, node_id: str, sku: str) -> int:
    position = app.stock(node_id, sku)
    return 0 if position is None else position.reserved(app.clock.now())


def test_sourcing_reserves_the_planned_units_and_explains_the_plan() -> None:
    app = make_app({("BER", "MUG"): 5, ("HAM", "MUG"): 5, ("HAM", "TEA"): 5})
    oid = placed(app, ("MUG", 2), ("TEA", 1))
    result = app.handle(SourceOrder(order_id=oid))
    (event,) = result.events
    assert isinstance(event, SourcingPlanned)
    order = app.get_order(oid)
    assert order.status == S.ALLOCATED
    # one shipment from Hamburg beats two (Berlin for the mugs, Hamburg for the tea): 8 + 3 x 2.55 < 16 + ...
    assert {a.node_id for a in order.allocations} == {"HAM"}
    assert event.strategy == "cost_optimal" and event.optimal
    assert reserved(app, "HAM", "MUG") == 2 and reserved(app, "HAM", "TEA") == 1
    assert reserved(app, "BER", "MUG") == 0
    assert app.available("MUG") == {"BER": 5, "HAM": 3}
    assert any(r.node_id == "BER" for r in event.rejected)
    assert "cost_optimal" in order.timeline()[-1]


def test_units_no_node_holds_wait_against_incoming_supply() -> None:
    app = make_app({("BER", "MUG"): 1})
    app.handle(
        ExpectSupply(node_id="MUC", sku="MUG", supply=Supply("PO-7", 10, AT.date() + timedelta(days=4)))
    )
    oid = placed(app, ("MUG", 3))
    (event,) = app.handle(SourceOrder(order_id=oid)).events
    assert isinstance(event, SourcingPlanned)
    assert [(a.node_id, a.quantity) for a in event.allocations] == [("BER", 1)]
    assert [(w.quantity, w.node_id, w.expected_on) for w in event.waiting] == [
        (2, "MUC", AT.date() + timedelta(days=4))
    ]
    order = app.get_order(oid)
    assert order.status == S.PARTIALLY_ALLOCATED
    assert order.lines[0].qty.backordered == 2
    # stock arrives: sourcing again allocates the waiting units
    app.handle(ReceiveStock(node_id="MUC", sku="MUG", quantity=10, supply_ref="PO-7"))
    app.handle(SourceOrder(order_id=oid))
    order = app.get_order(oid)
    assert order.status == S.ALLOCATED
    assert sorted((a.node_id, a.quantity) for a in order.allocations) == [("BER", 1), ("MUC", 2)]


def test_a_shipment_consumes_the_reservation_and_the_stock() -> None:
    app = make_app({("BER", "MUG"): 5})
    oid = placed(app, ("MUG", 2))
    app.handle(SourceOrder(order_id=oid))
    app.handle(ReleaseToFulfilment(order_id=oid))
    app.handle(RecordShipment(order_id=oid, shipment_id="S-1", node_id="BER"))
    position = app.stock("BER", "MUG")
    assert position is not None
    assert position.on_hand == 3 and position.reserved(app.clock.now()) == 0
    assert app.get_order(oid).allocations == ()


def test_cancelling_releases_every_reservation() -> None:
    app = make_app({("BER", "MUG"): 5, ("BER", "TEA"): 5})
    oid = placed(app, ("MUG", 2), ("TEA", 3))
    app.handle(SourceOrder(order_id=oid))
    app.handle(CancelLines(order_id=oid, lines={"2": 1}, reason="customer"))
    assert reserved(app, "BER", "TEA") == 2
    app.handle(CancelOrder(order_id=oid, reason="customer"))
    assert reserved(app, "BER", "MUG") == 0 and reserved(app, "BER", "TEA") == 0
    assert app.available("MUG") == {"BER": 5}


def test_a_short_pick_moves_the_units_to_another_node() -> None:
    app = make_app({("BER", "MUG"): 5, ("HAM", "MUG"): 5})
    oid = placed(app, ("MUG", 2))
    app.handle(SourceOrder(order_id=oid))
    assert reserved(app, "BER", "MUG") == 2
    app.handle(ReportShortPick(order_id=oid, node_id="BER", lines={"1": 2}, reason="bin empty"))
    order = app.get_order(oid)
    assert [(a.node_id, a.quantity) for a in order.allocations] == [("HAM", 2)]
    assert reserved(app, "BER", "MUG") == 0 and reserved(app, "HAM", "MUG") == 2
    assert [ev.type for ev in order.history[-2:]] == ["AllocationWithdrawn", "SourcingPlanned"]


def test_a_node_going_offline_resources_its_unreleased_orders() -> None:
    app = make_app({("BER", "MUG"): 5, ("MUC", "MUG"): 5})
    first, second = placed(app, ("MUG", 1)), placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=first))
    app.handle(SourceOrder(order_id=second))
    app.handle(ReleaseToFulfilment(order_id=second))  # already handed to Berlin's warehouse: stays
    results = app.set_node_online("BER", False)
    assert [str(r.order_id) for r in results] == [first]
    assert [a.node_id for a in app.get_order(first).allocations] == ["MUC"]
    assert [a.node_id for a in app.get_order(second).allocations] == ["BER"]
    assert reserved(app, "BER", "MUG") == 1 and reserved(app, "MUC", "MUG") == 1
    with pytest.raises(UnknownNode):
        app.set_node_online("NOWHERE", False)


def test_going_offline_finds_the_orders_through_the_nodes_reservations_and_is_shared() -> None:
    app = make_app({("BER", "MUG"): 9, ("MUC", "MUG"): 9})
    oid = placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=oid))
    # other holds at Berlin: a cart (soft), a hard one for something that is not an order, one for an
    # order id that names no order
    app.handle(
        ReserveStock(
            node_id="BER",
            sku="MUG",
            key="CART-1",
            quantity=1,
            reference="CART-1",
            expires_at=AT + timedelta(hours=1),
        )
    )
    app.handle(ReserveStock(node_id="BER", sku="MUG", key="K-2", quantity=1, reference="desk 4"))
    app.handle(ReserveStock(node_id="BER", sku="MUG", key="K-3", quantity=1, reference="NO-SUCH-ORDER"))
    results = app.set_node_online("BER", False, reason="flood", actor=Actor.user("alice"))
    assert [str(r.order_id) for r in results] == [oid]
    assert [a.node_id for a in app.get_order(oid).allocations] == ["MUC"]
    status = app.node_states().status("BER")
    assert status is not None and (status.online, status.actor, status.reason) == (
        False,
        Actor.user("alice"),
        "flood",
    )
    assert app.set_node_online("BER", False) == []  # nothing left there to move
    # a second application on the same store sources around it too
    other = bootstrap(app.store, clock=app.clock, ids=SequentialIds(order_prefix="B"), network=NETWORK)
    again = placed(other, ("MUG", 1))
    other.handle(SourceOrder(order_id=again))
    assert [a.node_id for a in other.get_order(again).allocations] == ["MUC"]


def test_an_order_on_hold_gives_back_its_units_at_a_node_going_offline_and_is_sourced_later() -> None:
    app = make_app({("BER", "MUG"): 5, ("MUC", "MUG"): 5})
    oid = placed(app, ("MUG", 2))
    app.handle(SourceOrder(order_id=oid))
    app.handle(HoldOrder(order_id=oid, code="fraud-check"))
    [result] = app.set_node_online("BER", False)
    held = app.get_order(oid)
    assert result.order_id == held.id and held.status is OrderStatus.ON_HOLD
    assert held.allocations == () and held.lines[0].qty.open == 2
    assert reserved(app, "BER", "MUG") == 0
    app.handle(ReleaseHold(order_id=oid, code="fraud-check"))
    app.handle(SourceOrder(order_id=oid))
    assert [(a.node_id, a.quantity) for a in app.get_order(oid).allocations] == [("MUC", 2)]


def test_an_order_that_cannot_be_taken_back_does_not_stop_the_others_and_is_named() -> None:
    app = make_app({("BER", "MUG"): 5, ("MUC", "MUG"): 5})
    stuck, moved = placed(app, ("MUG", 1)), placed(app, ("MUG", 1))
    for oid in (stuck, moved):
        app.handle(SourceOrder(order_id=oid))
    # the address of one loses its coordinates (and there is no geocoder): it cannot be planned again
    app.handle(ChangeShippingAddress(order_id=stuck, address=attrs.evolve(BERLIN, coordinates=None)))
    with pytest.raises(SourcingFailed) as info:
        app.set_node_online("BER", False)
    assert len(info.value.reasons) == 1 and info.value.reasons[0].startswith(f"{stuck}: SourcingFailed")
    assert [a.node_id for a in app.get_order(moved).allocations] == ["MUC"]
    assert [a.node_id for a in app.get_order(stuck).allocations] == ["BER"]  # left as it was, whole
    assert reserved(app, "BER", "MUG") == 1 and app.node_states().offline == {"BER"}


def test_a_cancelled_line_resources_the_rest_when_that_is_cheaper() -> None:
    app = make_app({("BER", "MUG"): 5, ("MUC", "TEA"): 5, ("MUC", "MUG"): 5})
    oid = placed(app, ("MUG", 1), ("TEA", 1))
    app.handle(SourceOrder(order_id=oid))
    assert {a.node_id for a in app.get_order(oid).allocations} == {"MUC"}  # one parcel for both
    # without the tea, the mug is cheaper from Berlin: the cancellation moves it, in the same transaction
    result = app.handle(CancelLines(order_id=oid, lines={"2": 1}, reason="tea discontinued"))
    assert [ev.type for ev in result.events] == ["LinesCancelled", "AllocationWithdrawn", "SourcingPlanned"]
    order = app.get_order(oid)
    assert [(a.node_id, a.quantity) for a in order.allocations] == [("BER", 1)]
    assert reserved(app, "MUC", "MUG") == 0 and reserved(app, "BER", "MUG") == 1
    assert reserved(app, "MUC", "TEA") == 0


def test_resource_order_moves_units_on_demand() -> None:
    app = make_app({("BER", "MUG"): 5, ("HAM", "MUG"): 5})
    oid = placed(app, ("MUG", 2))
    app.handle(SourceOrder(order_id=oid, policy=SourcingPolicy(excluded_nodes={"BER"})))
    assert [a.node_id for a in app.get_order(oid).allocations] == ["HAM"]
    app.handle(ResourceOrder(order_id=oid))
    assert [a.node_id for a in app.get_order(oid).allocations] == ["BER"]
    assert reserved(app, "HAM", "MUG") == 0 and reserved(app, "BER", "MUG") == 2


def test_policies_come_from_the_order_or_the_command() -> None:
    app = make_app({("BER", "MUG"): 5, ("STORE-B", "MUG"): 5})
    pickup = placed(app, ("MUG", 1), attributes={"pickup_node": "STORE-B"})
    app.handle(SourceOrder(order_id=pickup))
    assert [a.node_id for a in app.get_order(pickup).allocations] == ["STORE-B"]
    other = placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=other, policy=SourcingPolicy(excluded_nodes={"BER"})))
    assert [a.node_id for a in app.get_order(other).allocations] == ["STORE-B"]
    greedy = placed(app, ("MUG", 1))
    (event,) = app.handle(SourceOrder(order_id=greedy, strategy="priority")).events
    assert isinstance(event, SourcingPlanned) and event.strategy == "priority"


def test_sourcing_refusals_change_nothing() -> None:
    app = make_app({("BER", "MUG"): 5})
    oid = placed(app, ("MUG", 2))
    with pytest.raises(InvalidValue) as info:
        app.handle(SourceOrder(order_id=oid, strategy="no-such-strategy"))
    assert info.value.field == "strategy"
    lost = placed(app, ("MUG", 1), address=NO_COORDINATES)
    with pytest.raises(SourcingFailed, match="no coordinates"):
        app.handle(SourceOrder(order_id=lost))
    strict = placed(app, ("MUG", 9))
    with pytest.raises(SourcingFailed):
        app.handle(SourceOrder(order_id=strict, policy=SourcingPolicy(allow_backorder=False)))
    for order_id in (oid, lost, strict):
        assert app.get_order(order_id).status == S.ACCEPTED
    assert reserved(app, "BER", "MUG") == 0
    bare = bootstrap(clock=ManualClock(AT))
    other = placed(bare, ("MUG", 1))
    with pytest.raises(SourcingFailed, match="no fulfilment network"):
        bare.handle(SourceOrder(order_id=other))


def test_a_geocoder_locates_addresses_without_coordinates() -> None:
    class Geocoder:
        def locate(self, address: Address) -> GeoPoint | None:
            return GeoPoint(48.1, 11.6) if address.city == "Berlin" else None

    app = make_app({("BER", "MUG"): 5, ("MUC", "MUG"): 5}, geocoder=Geocoder())
    oid = placed(app, ("MUG", 1), address=NO_COORDINATES)
    app.handle(SourceOrder(order_id=oid))
    assert [a.node_id for a in app.get_order(oid).allocations] == ["MUC"]  # where the geocoder put it


def test_soft_cart_reservations_hold_stock_until_they_lapse() -> None:
    app = make_app({("BER", "MUG"): 2})
    app.handle(
        ReserveStock(
            node_id="BER",
            sku="MUG",
            key="cart-1",
            quantity=2,
            reference="cart-1",
            expires_at=AT + timedelta(minutes=30),
        )
    )
    oid = placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=oid))
    assert app.get_order(oid).status == S.BACKORDERED
    app.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    app.handle(SourceOrder(order_id=oid))
    assert app.get_order(oid).status == S.ALLOCATED


@pytest.mark.parametrize("joint", [False, True])
def test_a_wave_is_sourced_jointly_without_taking_units_from_earlier_orders(joint: bool) -> None:
    app = make_app({("BER", "MUG"): 1, ("BER", "TEA"): 1, ("HAM", "MUG"): 5})
    first = placed(app, ("MUG", 1))
    second = placed(app, ("MUG", 1), ("TEA", 1))
    held = placed(app, ("MUG", 1))
    app.handle(HoldOrder(order_id=held, code="FRAUD"))
    result = app.handle(SourceWave(order_ids=[first, second, held], joint=joint))
    assert {str(ev.order_id) for ev in result.events} == {first, second}  # the held order is left out
    nodes = {oid: sorted({a.node_id for a in app.get_order(oid).allocations}) for oid in (first, second)}
    if joint:  # the first order ships from Hamburg so that the second ships complete from Berlin
        assert nodes == {first: ["HAM"], second: ["BER"]}
    else:  # one by one, the first takes Berlin's only mug and the second needs two parcels
        assert nodes == {first: ["BER"], second: ["BER", "HAM"]}
    assert reserved(app, "BER", "MUG") + reserved(app, "HAM", "MUG") == 2
    assert app.get_order(held).status == S.ON_HOLD


def test_an_orders_hard_reservation_is_not_released_by_key_while_the_order_allocates_it() -> None:
    app = make_app({("BER", "MUG"): 1})
    first = placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=first))
    [allocation] = app.get_order(first).allocations
    before = app.stock("BER", "MUG")
    with pytest.raises(ReservationConflict, match=f"allocated to order {first}") as info:
        app.handle(ReleaseReservation(node_id="BER", sku="MUG", key=allocation.key, reason="cart cleanup"))
    assert info.value.key == allocation.key
    assert app.stock("BER", "MUG") == before and reserved(app, "BER", "MUG") == 1
    second = placed(app, ("MUG", 1))  # the only mug stays the first order's
    app.handle(SourceOrder(order_id=second))
    assert app.get_order(second).allocations == ()
    app.handle(RecordShipment(order_id=first, shipment_id="S-1"))
    assert app.get_order(first).status == S.SHIPPED


def test_a_hard_reservation_of_a_reference_that_is_no_order_is_released_by_key() -> None:
    app = make_app({("BER", "MUG"): 5})
    app.handle(ReserveStock(node_id="BER", sku="MUG", key="quote-7", quantity=2, reference="quote 7/b"))
    app.handle(ReserveStock(node_id="BER", sku="MUG", key="b2b-1", quantity=1, reference="O-999999"))
    assert reserved(app, "BER", "MUG") == 3
    app.handle(ReleaseReservation(node_id="BER", sku="MUG", key="quote-7"))  # not an order's id
    app.handle(ReleaseReservation(node_id="BER", sku="MUG", key="b2b-1"))  # no such order
    assert reserved(app, "BER", "MUG") == 0


def test_a_shipment_named_as_leaving_a_node_cannot_take_units_sourced_at_another() -> None:
    app = make_app({("BER", "MUG"): 5, ("HAM", "MUG"): 5})
    oid = placed(app, ("MUG", 2))
    app.handle(SourceOrder(order_id=oid))
    [allocation] = app.get_order(oid).allocations
    other = "HAM" if allocation.node_id == "BER" else "BER"
    stock_before = {n: app.stock(n, "MUG") for n in ("BER", "HAM")}
    with pytest.raises(QuantityExceeded, match=f"0 are allocated at {other}") as info:
        app.handle(RecordShipment(order_id=oid, shipment_id="S-1", node_id=other))
    assert info.value.field == "node_id"
    assert {n: app.stock(n, "MUG") for n in ("BER", "HAM")} == stock_before  # neither node's stock used
    assert app.get_order(oid).status == S.ALLOCATED
    app.handle(RecordShipment(order_id=oid, shipment_id="S-1", node_id=allocation.node_id, lines={"1": 1}))
    app.handle(RecordShipment(order_id=oid, shipment_id="S-2", node_id=allocation.node_id))
    assert app.stock(allocation.node_id, "MUG").on_hand == 3  # type: ignore[union-attr]
    assert app.stock(other, "MUG").on_hand == 5  # type: ignore[union-attr]
    assert app.get_order(oid).status == S.SHIPPED


def test_inventory_commands_keep_the_ledger() -> None:
    app = make_app({("BER", "MUG"): 10})
    app.handle(SetSafetyStock(node_id="BER", sku="MUG", quantity=2))
    app.handle(ReserveStock(node_id="BER", sku="MUG", key="cart-9", quantity=3, reference="cart-9"))
    assert app.available("MUG") == {"BER": 5}
    app.handle(
        ReserveStock(node_id="BER", sku="MUG", key="cart-9", quantity=3, reference="cart-9")
    )  # a retry
    app.handle(ReleaseReservation(node_id="BER", sku="MUG", key="cart-9"))
    app.handle(CountStock(node_id="BER", sku="MUG", on_hand=7, reason="cycle count"))
    app.handle(
        ExpectSupply(node_id="BER", sku="MUG", supply=Supply("PO-1", 5, AT.date() + timedelta(days=2)))
    )
    app.handle(CancelSupply(node_id="BER", sku="MUG", ref="PO-1"))
    assert app.available("MUG") == {"BER": 5}
    with app.store.unit_of_work() as uow:
        kinds = [e.kind.value for e in uow.inventory.ledger("BER", Sku("MUG"))]
    assert kinds == [
        "opened",
        "received",
        "safety_stock_set",
        "reserved",
        "released",
        "adjusted",
        "supply_expected",
        "supply_cancelled",
    ]
    with pytest.raises(UnknownNode):
        app.handle(ReceiveStock(node_id="NOWHERE", sku="MUG", quantity=1))
    with pytest.raises(StockNotFound):
        app.handle(ReserveStock(node_id="HAM", sku="MUG", key="k", quantity=1, reference="r"))
    with pytest.raises(InsufficientStock):
        app.handle(ReserveStock(node_id="BER", sku="MUG", key="k", quantity=6, reference="r"))
    assert app.available("MUG") == {"BER": 5}


def test_a_node_ships_no_more_parcels_a_day_than_its_capacity() -> None:
    network = [node("BER", 52.52, 13.40, daily_capacity=1), node("HAM", 53.55, 9.99)]
    app = bootstrap(clock=ManualClock(AT), ids=SequentialIds(), network=network)
    for node_id in ("BER", "HAM"):
        app.handle(ReceiveStock(node_id=node_id, sku="MUG", quantity=10))
    first, second = placed(app, ("MUG", 1)), placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=first))
    (event,) = app.handle(SourceOrder(order_id=second)).events
    assert [a.node_id for a in app.get_order(first).allocations] == ["BER"]
    assert isinstance(event, SourcingPlanned)
    assert [a.node_id for a in event.allocations] == ["HAM"]
    assert ("BER", "no_capacity") in {(r.node_id, r.reason) for r in event.rejected}
    app.handle(CancelOrder(order_id=first, reason="customer"))  # its slot at Berlin is free again
    third = placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=third))
    assert [a.node_id for a in app.get_order(third).allocations] == ["BER"]
    with app.store.unit_of_work() as uow:
        day = uow.capacity.get("BER", network[0].calendar.dispatch_date(AT))  # Monday: AT is a Sunday
    assert day.used == 1 and set(day.taken) == {third}


def berlin_with_parcels_a_day(parcels: int) -> tuple[OrderCore, FulfilmentNode]:
    """An application whose Berlin node ships ``parcels`` parcels a day, Hamburg any number; ten mugs each."""
    berlin = node("BER", 52.52, 13.40, daily_capacity=parcels)
    app = bootstrap(clock=ManualClock(AT), ids=SequentialIds(), network=[berlin, node("HAM", 53.55, 9.99)])
    for node_id in ("BER", "HAM"):
        app.handle(ReceiveStock(node_id=node_id, sku="MUG", quantity=10))
    return app, berlin


@pytest.mark.parametrize("then", ["cancel the rest", "a short pick of the rest"])
def test_a_partial_shipment_keeps_its_slot_whatever_happens_to_the_rest_of_the_order(then: str) -> None:
    app, berlin = berlin_with_parcels_a_day(1)
    first = placed(app, ("MUG", 2))
    app.handle(SourceOrder(order_id=first))
    assert [(a.node_id, a.quantity) for a in app.get_order(first).allocations] == [("BER", 2)]
    app.handle(RecordShipment(order_id=first, shipment_id="S-1", node_id="BER", lines={"1": 1}))
    if then == "cancel the rest":
        app.handle(CancelLines(order_id=first, lines={"1": 1}, reason="customer"))
    else:  # Berlin cannot find the second mug: it is sourced again, from Hamburg
        app.handle(ReportShortPick(order_id=first, node_id="BER", lines={"1": 1}))
        assert [a.node_id for a in app.get_order(first).allocations] == ["HAM"]
    second = placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=second))  # S-1 left Berlin today: its one parcel a day is taken
    assert [a.node_id for a in app.get_order(second).allocations] == ["HAM"]
    with app.store.unit_of_work() as uow:
        day = uow.capacity.get("BER", berlin.calendar.dispatch_date(AT))
    assert day.used == 1


def test_two_parcels_of_one_order_from_a_node_in_a_day_keep_two_slots() -> None:
    app, berlin = berlin_with_parcels_a_day(2)
    first = placed(app, ("MUG", 2))
    app.handle(SourceOrder(order_id=first))
    app.handle(RecordShipment(order_id=first, shipment_id="S-1", node_id="BER", lines={"1": 1}))
    app.handle(ResourceOrder(order_id=first))  # the rest sourced again: at Berlin, the same day
    assert [a.node_id for a in app.get_order(first).allocations] == ["BER"]
    app.handle(RecordShipment(order_id=first, shipment_id="S-2", node_id="BER"))
    with app.store.unit_of_work() as uow:
        day = uow.capacity.get("BER", berlin.calendar.dispatch_date(AT))
    assert day.used == 2  # two parcels left Berlin
    second = placed(app, ("MUG", 1))
    app.handle(SourceOrder(order_id=second))
    assert [a.node_id for a in app.get_order(second).allocations] == ["HAM"]


OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["place", "source", "cancel_line", "cancel", "release", "ship", "offline", "online", "short"]
        ),
        st.integers(0, 5),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_reservations_always_match_what_orders_allocate(ops: list[tuple[str, int, int]]) -> None:
    """Whatever happens to orders, each node's reserved units are exactly what live orders hold there, stock
    is never negative, and a refused command changes nothing."""
    stock = {("BER", "MUG"): 4, ("HAM", "MUG"): 3, ("HAM", "TEA"): 2, ("MUC", "TEA"): 4}
    app = make_app(stock)
    orders: list[str] = []
    nodes = ["BER", "HAM", "MUC"]
    for op, pick, qty in ops:
        try:
            if op == "place" or not orders:
                orders.append(placed(app, ("MUG", qty), ("TEA", 1 + pick % 2)))
                continue
            oid = orders[pick % len(orders)]
            if op == "source":
                app.handle(SourceOrder(order_id=oid))
            elif op == "cancel_line":
                app.handle(CancelLines(order_id=oid, lines={"1": 1}, reason="x"))
            elif op == "cancel":
                app.handle(CancelOrder(order_id=oid, reason="x"))
            elif op == "release":
                app.handle(ReleaseToFulfilment(order_id=oid))
            elif op == "ship":
                order = app.get_order(oid)
                at_node = sorted({a.node_id for a in order.allocations})
                app.handle(
                    RecordShipment(
                        order_id=oid, shipment_id=f"S{len(ops)}", node_id=at_node[0] if at_node else ""
                    )
                )
            elif op == "offline":
                app.set_node_online(nodes[pick % 3], False)
            elif op == "online":
                app.set_node_online(nodes[pick % 3], True)
            elif op == "short":
                order = app.get_order(oid)
                if order.allocations:
                    a = order.allocations[0]
                    app.handle(
                        ReportShortPick(order_id=oid, node_id=a.node_id, lines={a.line_id: 1}, reason="x")
                    )
        except (InvalidValue, SourcingFailed) as e:
            assert e.code  # a typed refusal
        except OrderCoreError as e:  # another typed refusal (an illegal transition, say)
            assert e.code
        now = app.clock.now()
        held: dict[tuple[str, str], int] = {}
        for oid in orders:
            order = app.get_order(oid)
            for a in order.allocations:
                key = (a.node_id, order.line(a.line_id).sku.value)
                held[key] = held.get(key, 0) + a.quantity
            for line in order.lines:
                assert sum(a.quantity for a in order.allocations if a.line_id == line.id) <= (
                    line.qty.allocated + line.qty.released
                )
        for node_id, sku in stock:
            position = app.stock(node_id, sku)
            assert position is not None
            assert position.on_hand >= 0
            assert position.reserved(now) == held.get((node_id, sku), 0)
            assert position.reserved(now) <= position.on_hand
