"""Sourcing in the application layer: an order meets the fulfilment network and the stock positions.

The handlers here orchestrate: build a :class:`~ordercore.sourcing.SourcingRequest` from the order's open
and backordered units, read the stock of every node, let the strategy plan, reserve the planned units in
the reservation ledger and record the plan on the order, all in one unit of work. When an order's node
allocations shrink (a shipment, a cancellation, a withdrawal), :func:`sync_reservations` releases or
consumes exactly the reservations that changed.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from datetime import date, datetime
from decimal import Decimal

from ordercore.errors import InvalidValue, OrderCoreError, SourcingFailed
from ordercore.events import NodeAllocation, NodeRejected, SourcingPlanned, WaitingUnits
from ordercore.geo import haversine_km
from ordercore.inventory import FulfilmentNetwork, FulfilmentNode, StockPosition
from ordercore.lifecycle import Triggers
from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import Geocoder, UnitOfWork
from ordercore.sourcing import (
    NodeStock,
    SourcingLine,
    SourcingPlan,
    SourcingPolicy,
    SourcingRequest,
    SourcingStrategy,
)
from ordercore.sourcing.network import NetworkStock
from ordercore.storage import StagedStock
from ordercore.values import Actor, GeoPoint, LineId, Sku

__all__ = [
    "allocations_of",
    "capacity_left",
    "default_policy",
    "destination_of",
    "load_positions",
    "needs_sourcing",
    "offline_nodes",
    "record_plan",
    "resource_if_cheaper",
    "source_order",
    "sourcing_request",
    "stock_view",
    "sync_reservations",
    "withdrawable",
]

_TRUE = frozenset({"1", "true", "yes"})


def default_policy(order: Order) -> SourcingPolicy:
    """The policy an order asks for through its attributes: ``pickup_node`` (collect in store) and
    ``ship_complete`` ("true": one shipment). Pass your own function to ``bootstrap(sourcing_policy=...)``
    to decide from customer, channel or rules."""
    pickup = order.attributes.get("pickup_node") or None
    complete = order.attributes.get("ship_complete", "").strip().lower() in _TRUE
    return SourcingPolicy(allow_split=not complete, pickup_node=pickup)


def destination_of(order: Order, geocoder: Geocoder | None) -> GeoPoint:
    """Where the order goes: the shipping address's coordinates, else what the geocoder finds."""
    address = order.shipping_address
    if address.coordinates is not None:
        return address.coordinates
    if geocoder is not None:
        found = geocoder.locate(address)
        if found is not None:
            return found
    raise SourcingFailed(
        f"order {order.id} cannot be sourced",
        reasons=[
            "the shipping address has no coordinates"
            + (" and the geocoder could not locate it" if geocoder else " and no geocoder is configured")
        ],
    )


def sourcing_request(
    order: Order, destination: GeoPoint, policy: SourcingPolicy, at: datetime
) -> SourcingRequest:
    """Every open and backordered unit of the order, line by line."""
    lines = tuple(
        SourcingLine(line.id.value, line.sku, line.qty.open + line.qty.backordered)
        for line in order.lines
        if line.qty.open + line.qty.backordered
    )
    return SourcingRequest(order.id.value, lines, destination, at, policy)


def capacity_left(uow: UnitOfWork, network: FulfilmentNetwork, at: datetime) -> dict[str, int | None]:
    """Shipments each node can still take on its next dispatch day (None: no limit), from the capacity
    the unit of work's store has recorded."""
    left: dict[str, int | None] = {}
    by_day: dict[date, list[FulfilmentNode]] = {}
    for node in network.nodes:
        if node.daily_capacity is None:
            left[node.node_id] = None
        else:
            by_day.setdefault(node.calendar.dispatch_date(at), []).append(node)
    for day, nodes in sorted(by_day.items()):
        limits = {n.node_id: n.daily_capacity for n in nodes}
        for node_day in uow.capacity.for_day(day, list(limits)):
            left[node_day.node_id] = node_day.left(limits[node_day.node_id])
    return left


def stock_view(
    network: FulfilmentNetwork,
    positions: Iterable[StockPosition],
    at: datetime,
    capacity: Mapping[str, int | None] | None = None,
    offline: AbstractSet[str] = frozenset(),
) -> NetworkStock:
    """What every node of ``network`` can promise at ``at``: available-to-promise and incoming supply per
    SKU from ``positions`` (positions of nodes outside the network are ignored), the shipments each can
    still take (``capacity``, from :func:`capacity_left`; no limit when not given), and whether it is
    online: not when the network says so, nor when it is in ``offline`` (the node states the store keeps,
    from :func:`offline_nodes`)."""
    nodes = network.nodes
    available: dict[str, dict[Sku, int]] = {}
    incoming: dict[str, dict[Sku, tuple[tuple[date, int], ...]]] = {}
    for pos in positions:
        node_id = pos.node_id
        held = available.get(node_id)
        if held is None:
            if node_id not in network:
                continue
            held = available[node_id] = {}
        held[pos.sku] = pos.available(at)
        if pos.supply:
            supply = pos.incoming()
            if supply:
                incoming.setdefault(node_id, {})[pos.sku] = supply
    down = network.offline_ids | offline if offline else network.offline_ids
    stocks = [
        NodeStock.trusted(
            node,
            available.get(node.node_id) or {},
            incoming.get(node.node_id) or {},
            capacity_left=None if capacity is None else capacity.get(node.node_id),
            online=node.node_id not in down,
        )
        for node in nodes
    ]
    like = _first_views.get(network)
    if like is not None:  # the network's very nodes, in id order, as the view it lends from was built of
        return NetworkStock.trusted_like(like, stocks)
    view = NetworkStock(stocks, currency=network.currency)
    _first_views[network] = view
    return view


# The first view built for each network: every later one takes its node-only part (coordinates, rates, memo
# tables, shared by all of them) from it instead of working it out again. A network's nodes never change,
# so later views hold the very node objects it was built of, checked then. Held weakly: a network dropped
# by its application drops its view.
_first_views: weakref.WeakKeyDictionary[FulfilmentNetwork, NetworkStock] = weakref.WeakKeyDictionary()


def offline_nodes(uow: UnitOfWork) -> frozenset[str]:
    """The nodes the store has switched offline, for every worker; the unit's commit then checks that
    they did not change meanwhile (see :class:`ordercore.ports.NodeStateRepository`)."""
    return uow.nodes.current().offline


def allocations_of(
    plan: SourcingPlan, order: Order
) -> tuple[tuple[NodeAllocation, ...], tuple[WaitingUnits, ...], tuple[NodeRejected, ...]]:
    """The plan as the order records it. Each allocation gets its own reservation key,
    ``<order>/<line>/<node>/<event sequence>``, unique for the order's whole life."""
    seq = order.version + 1
    ids = {line.id.value: line.id for line in order.lines}  # the order's own ids, checked when made

    def line_id_of(value: str) -> LineId:
        return ids.get(value) or LineId(value)

    allocations = tuple(
        NodeAllocation(
            line_id_of(line_id),
            s.node_id,
            qty,
            f"{order.id.value}/{line_id}/{s.node_id}/{seq}",
            s.dispatch_on,
        )
        for s in plan.shipments
        for line_id, qty in s.lines
    )
    waiting = tuple(
        WaitingUnits(line_id_of(b.line_id), b.quantity, b.node_id, b.expected_on) for b in plan.backorders
    )
    # ``_value_``: the member's value as a plain attribute (``value`` is a property, read 20 times an order)
    rejected = tuple(NodeRejected(r.node_id, r.reason._value_, r.detail) for r in plan.rejected)
    return allocations, waiting, rejected


def source_order(
    order: Order,
    uow: UnitOfWork,
    *,
    network: FulfilmentNetwork,
    strategy: SourcingStrategy,
    policy: SourcingPolicy,
    geocoder: Geocoder | None,
    actor: Actor,
    at: datetime,
    reason: str = "",
) -> SourcingPlanned | None:
    """Plan every open and backordered unit of ``order``, reserve the planned units (hard reservations)
    and record the plan on the order. None when no unit waits to be sourced. Nothing is committed here."""
    if not needs_sourcing(order):
        return None
    request = sourcing_request(order, destination_of(order, geocoder), policy, at)
    positions = load_positions(uow, [request])
    view = stock_view(network, positions.values(), at, capacity_left(uow, network, at), offline_nodes(uow))
    plan = strategy.plan(request, view)
    return record_plan(
        order, plan, request, positions, uow, network=network, actor=actor, at=at, reason=reason
    )


def needs_sourcing(order: Order) -> bool:
    """Whether the order has open or backordered units."""
    return any(line.qty.open + line.qty.backordered for line in order.lines)


def load_positions(
    uow: UnitOfWork, requests: Iterable[SourcingRequest]
) -> dict[tuple[str, Sku], StockPosition]:
    """Every stock position of the SKUs the requests ask for, by (node, SKU), read in one go, **to be read
    only**: a store may hand out the very copies it keeps (see :meth:`StagedStock.read_for_skus`); the
    unit's own copy of one to be changed comes from ``uow.inventory.get``."""
    skus = {line.sku for r in requests for line in r.lines}
    inventory = uow.inventory
    if isinstance(inventory, StagedStock):
        return inventory.read_for_skus(skus)
    return {(p.node_id, p.sku): p for p in inventory.for_skus(sorted(skus, key=lambda s: s.value))}


def record_plan(
    order: Order,
    plan: SourcingPlan,
    request: SourcingRequest,
    positions: Mapping[tuple[str, Sku], StockPosition],
    uow: UnitOfWork,
    *,
    network: FulfilmentNetwork,
    actor: Actor,
    at: datetime,
    reason: str = "",
) -> SourcingPlanned:
    """Reserve what ``plan`` ships at each node, take a shipment of the capacity of each node with a daily
    limit on its dispatch day, and record the plan on ``order`` (saving what changed in the unit of work).
    Raises, leaving the unit uncommitted, if a reservation or the capacity is refused."""
    allocations, waiting, rejected = allocations_of(plan, order)
    sku_of = {line.line_id: line.sku for line in request.lines}
    changed: dict[tuple[str, Sku], StockPosition] = {}
    for a in allocations:
        key = (a.node_id, sku_of[a.line_id.value])
        pos = changed.get(key)
        if pos is None and key in positions:  # the unit's own copy, to be changed
            pos = uow.inventory.get(*key)
        if pos is None:  # a strategy planned stock that no position holds
            raise SourcingFailed(f"order {order.id}: {a.node_id} holds no {key[1]}", reasons=[plan.strategy])
        pos.reserve(a.key, a.quantity, reference=order.id.value, at=at, hard=True, reason=f"order {order.id}")
        changed[key] = pos
    event = order.source(
        allocations,
        waiting,
        strategy=plan.strategy,
        cost=plan.cost,
        optimal=plan.optimal,
        notes=plan.notes,
        rejected=rejected,
        actor=actor,
        at=at,
        reason=reason,
    )
    for key in sorted(changed, key=lambda k: (k[0], k[1].value)):
        uow.inventory.save(changed[key])
    for shipment in sorted(plan.shipments, key=lambda s: s.node_id):
        limit = network.get(shipment.node_id).daily_capacity
        if limit is not None:
            node_day = uow.capacity.get(shipment.node_id, shipment.dispatch_on)
            if node_day.take(order.id.value, limit=limit):
                uow.capacity.save(node_day)
    return event


def resource_if_cheaper(
    order: Order,
    uow: UnitOfWork,
    *,
    network: FulfilmentNetwork,
    strategy: SourcingStrategy,
    policy: SourcingPolicy,
    geocoder: Geocoder | None,
    actor: Actor,
    at: datetime,
    reason: str = "",
) -> bool:
    """Source the order's unreleased units again when that is cheaper than keeping them where they are
    (after a cancellation left a parcel for a single unit, say); returns whether it did. The comparison
    prices the current allocation with the same cost model, against stock that counts the order's own
    reservations as free."""
    units = withdrawable(order)
    if not units or any(line.qty.open + line.qty.backordered for line in order.lines):
        return False  # nothing to move, or units still wait: SourceOrder handles those
    try:
        plan, request = _cheaper_plan(
            order, units, uow, network, strategy, policy, geocoder, actor, at, reason
        )
    except OrderCoreError:  # cannot be priced or planned now (no coordinates, say): keep what it has
        return False
    if plan is None:
        return False
    before = order.allocations
    for node_id, lines in units.items():
        order.withdraw_allocation(node_id, lines, code="resourcing", actor=actor, at=at, reason=reason)
    sync_reservations(uow, order, before, at=at, reason=reason or f"order {order.id}")
    record_plan(
        order,
        plan,
        request,
        load_positions(uow, [request]),
        uow,
        network=network,
        actor=actor,
        at=at,
        reason=reason,
    )
    return True


def _cheaper_plan(
    order: Order,
    units: Mapping[str, Mapping[LineId, int]],
    uow: UnitOfWork,
    network: FulfilmentNetwork,
    strategy: SourcingStrategy,
    policy: SourcingPolicy,
    geocoder: Geocoder | None,
    actor: Actor,
    at: datetime,
    reason: str,
) -> tuple[SourcingPlan | None, SourcingRequest]:
    """A plan for ``units`` that costs less than keeping them where they are (None if there is none),
    tried on copies of the order and the stock positions."""
    destination = destination_of(order, geocoder)
    trial = order.clone()
    for node_id, lines in units.items():
        trial.withdraw_allocation(node_id, lines, code="resourcing", actor=actor, at=at, reason=reason)
    if order.lifecycle.transition(trial.status, Triggers.SOURCE) is None:
        return None, sourcing_request(order, destination, policy, at)  # held, say
    request = sourcing_request(trial, destination, policy, at)
    positions = {k: p.clone() for k, p in load_positions(uow, [request]).items()}
    left = {(n, lid): q for n, lines in units.items() for lid, q in lines.items()}
    for a in reversed(order.allocations):  # newest first, as withdrawable() takes them
        take = min(a.quantity, left.get((a.node_id, a.line_id), 0))
        pos = positions.get((a.node_id, order.line(a.line_id).sku))
        if take and pos is not None:
            left[(a.node_id, a.line_id)] -= take
            pos.release(a.key, take, at=at, reason="trial")
    capacity = capacity_left(uow, network, at)
    for node_id in units:  # the order's own parcel slots would be free too
        if capacity.get(node_id) is not None:
            capacity[node_id] = (capacity[node_id] or 0) + 1
    plan = strategy.plan(request, stock_view(network, positions.values(), at, capacity, offline_nodes(uow)))
    if plan.backorders:
        return None, request
    kept = Decimal(0)
    for node_id, lines in units.items():
        node = network.get(node_id)
        km = haversine_km(node.location, destination)
        kept += node.cost.cost(sum(lines.values()), km)
    if plan.cost.amount >= Money.rounded(kept, plan.cost.currency).amount:
        return None, request
    allocations, waiting, _ = allocations_of(plan, trial)
    trial.source(
        allocations, waiting, strategy=plan.strategy, cost=plan.cost, actor=actor, at=at, reason=reason
    )  # refuses now, on the copy, what would be refused on the order
    return plan, request


def withdrawable(order: Order, node_id: str | None = None) -> dict[str, dict[LineId, int]]:
    """Units that can be taken back from nodes to source again, by node: allocated units (not released to
    the node yet), newest allocations first, at ``node_id`` only when given."""
    left = {line.id: line.qty.allocated for line in order.lines}
    out: dict[str, dict[LineId, int]] = {}
    for a in reversed(order.allocations):
        if node_id is not None and a.node_id != node_id:
            continue
        take = min(a.quantity, left[a.line_id])
        if take:
            left[a.line_id] -= take
            per_node = out.setdefault(a.node_id, {})
            per_node[a.line_id] = per_node.get(a.line_id, 0) + take
    return {n: out[n] for n in sorted(out)}


def shipped_slot_key(order: Order) -> str:
    """The key a node day's slot is kept under once the order shipped from that node that day."""
    return f"{order.id.value} shipped"


def keep_shipped_slot(uow: UnitOfWork, order: Order, node_id: str, day: date) -> None:
    """Move the order's slot at ``node_id`` on ``day`` to :func:`shipped_slot_key`: the shipment left, so
    cancelling or moving the rest of the order must not give it back (another order would take the day
    beyond its limit)."""
    node_day = uow.capacity.get(node_id, day)
    held = node_day.taken.get(order.id.value)
    if held is None:
        return
    key = shipped_slot_key(order)
    shipped = node_day.taken.get(key, 0)  # an earlier shipment of the order from there that day
    node_day.give_back(order.id.value)
    if shipped:
        node_day.give_back(key)
    node_day.take(key, limit=None, shipments=shipped + held)  # the same shipments, moved
    uow.capacity.save(node_day)


def sync_reservations(
    uow: UnitOfWork,
    order: Order,
    before: Iterable[NodeAllocation],
    *,
    at: datetime,
    shipped: bool = False,
    reason: str = "",
) -> None:
    """Release (or, for a shipment, consume) the reservation units that ``order`` no longer allocates."""
    after: Mapping[str, int] = {a.key: a.quantity for a in order.allocations}
    why = reason or f"order {order.id}"
    for a in before:
        gone = a.quantity - after.get(a.key, 0)
        if gone <= 0:
            continue
        pos = uow.inventory.get(a.node_id, order.line(a.line_id).sku)
        if pos is None:
            raise InvalidValue(
                f"order {order.id} holds reservation {a.key} at a stock position that does not exist",
                field="allocations",
                value=a,
            )
        if shipped:
            pos.consume(a.key, gone, at=at, reason=why)
        else:
            pos.release(a.key, gone, at=at, reason=why)
        uow.inventory.save(pos)
    if shipped:  # a shipment used the capacity it took: its slot stays taken whatever the order does next
        left = {(a.node_id, a.dispatch_on) for a in before if a.quantity > after.get(a.key, 0)}
        for node_id, day in sorted(left, key=str):
            if day is not None:
                keep_shipped_slot(uow, order, node_id, day)
        return
    still = {(a.node_id, a.dispatch_on) for a in order.allocations}
    for node_id, day in sorted({(a.node_id, a.dispatch_on) for a in before} - still, key=str):
        if day is not None:  # the order no longer ships from this node that day: its slot is free again
            node_day = uow.capacity.get(node_id, day)
            if node_day.give_back(order.id.value):
                uow.capacity.save(node_day)
