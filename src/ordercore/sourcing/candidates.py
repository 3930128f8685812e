"""Which nodes may take part in a plan for one request, and why the others may not.

:func:`scope_for` reads a request against a :class:`NetworkStock` once for every strategy. It totals the
demand per SKU, records a :class:`Rejection` for every node that holds an ordered SKU (or that the policy
names) but may not ship this order, and puts the others in the scope's *pool* with their distance and
rates. Reading a pool node's stock (making it a :class:`Candidate`) is left to the strategy, which on a
large network only needs the nodes it actually looks at: the nearest ones, or the cheapest per unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from heapq import heappop, heappush
from math import asin, sin, sqrt

from ordercore.errors import UnknownNode
from ordercore.inventory.nodes import FulfilmentNode
from ordercore.sourcing.model import Rejection, RejectReason, SourcingLine, SourcingPolicy, SourcingRequest
from ordercore.sourcing.network import _DEG, _TWO_R, NetworkStock, NodeFacts, point_radians
from ordercore.values import Sku

__all__ = [
    "Candidate",
    "PoolEntry",
    "Scope",
    "detailed",
    "reason_table",
    "rejection",
    "scope_for",
]

_CACHE_LIMIT = 200_000
_R = RejectReason

PoolEntry = tuple[float, float, str, float, NodeFacts]
"""A node that may ship the order: (per-unit rate, fixed cost, node id, km, facts)."""


class Candidate:
    """A node that may ship (part of) one order: how far it is, what a shipment from it costs as
    ``fixed + per_unit * units`` (floats, from :meth:`ShippingCost.rates`), and how many units of each of
    the order's SKUs it can ship (``available``, in the order of :attr:`Scope.skus`, at most the demand)."""

    __slots__ = ("available", "facts", "fixed", "held", "km", "node_id", "per_unit")

    def __init__(
        self, facts: NodeFacts, km: float, fixed: float, per_unit: float, available: tuple[int, ...]
    ) -> None:
        self.facts = facts
        self.node_id = facts.node_id
        self.km = km
        self.fixed = fixed
        self.per_unit = per_unit
        self.available = available
        self.held = sum(available)

    @property
    def node(self) -> FulfilmentNode:
        return self.facts.node

    def cost(self, units: int) -> float:
        """The float cost of a shipment of ``units`` from this node (0 for no units)."""
        return self.fixed + self.per_unit * units if units else 0.0

    def __repr__(self) -> str:
        return f"Candidate({self.node_id!r}, {self.km:.1f} km, {self.fixed:g} + {self.per_unit:g}/unit)"


class Scope:
    """One request read against the network.

    ``skus`` are the distinct ordered SKUs (sorted); ``demand[j]`` the units ordered of ``skus[j]`` over
    every line and ``lines[j]`` those lines by line id; ``coverable[j]`` how many of them the pool can ship
    now. ``ids`` are the nodes that may ship (the pool; see :meth:`entry`, :meth:`by_rate`,
    :meth:`by_distance`); ``rejected`` maps node id to why a node may not. ``limit`` is the policy's
    shipment limit.
    """

    __slots__ = (
        "_entries",
        "_made",
        "coverable",
        "demand",
        "dest",
        "ids",
        "limit",
        "lines",
        "notes",
        "pickup",
        "policy",
        "rejected",
        "request",
        "skus",
        "stock",
        "tables",
    )

    def __init__(self, request: SourcingRequest, stock: NetworkStock) -> None:
        self.request = request
        self.stock = stock
        self.policy: SourcingPolicy = request.policy
        self.limit: int | None = request.policy.shipment_limit
        self.pickup: bool = request.policy.pickup_node is not None
        self.dest = point_radians(request.destination)
        by_sku: dict[Sku, list[SourcingLine]] = {}
        for line in request.lines:
            by_sku.setdefault(line.sku, []).append(line)
        self.skus: tuple[Sku, ...] = tuple(sorted(by_sku, key=lambda s: s.value))
        self.lines: tuple[tuple[SourcingLine, ...], ...] = tuple(
            tuple(sorted(by_sku[s], key=lambda ln: ln.line_id)) for s in self.skus
        )
        self.demand: tuple[int, ...] = tuple(sum(ln.quantity for ln in group) for group in self.lines)
        self.tables: list[dict[str, int]] = [stock.holders(s) for s in self.skus]
        self.ids: set[str] = set()
        self._entries: dict[str, PoolEntry] = {}
        self.rejected: dict[str, Rejection] = {}
        self.notes: list[str] = []
        self.coverable: tuple[int, ...] = (0,) * len(self.skus)
        self._made: dict[str, Candidate] = {}

    @property
    def currency(self) -> str:
        return self.stock.currency

    def reject(self, node_id: str, reason: RejectReason, detail: str = "") -> None:
        self.rejected[node_id] = rejection(self.stock, node_id, reason, detail)

    def available(self, node_id: str) -> tuple[int, ...]:
        """Units of each ordered SKU ``node_id`` can ship now, at most the demand."""
        return tuple(min(t.get(node_id, 0), d) for t, d in zip(self.tables, self.demand, strict=True))

    def entry(self, node_id: str) -> PoolEntry:
        """The pool node ``node_id`` with its distance and rates (worked out once per scope)."""
        found = self._entries.get(node_id)
        if found is None:
            facts = self.stock._static.facts[node_id]
            km = facts.distance_km(*self.dest)
            rates = facts.rates(km)
            assert rates is not None  # a node out of range is never in the pool
            found = self._entries[node_id] = (rates[1], rates[0], node_id, km, facts)
        return found

    def _work_out(self, ids: Iterable[str]) -> list[PoolEntry]:
        """Distance and rates of pool nodes (``NodeFacts.distance_km`` and ``NodeFacts.rates`` inlined:
        entries are only worked out here for networks without zones)."""
        static = self.stock._static
        geo, facts_of, entries = static.geo, static.facts, self._entries
        lat0, cos0, lon0 = self.dest
        out = []
        for node_id in ids:
            la, cl, lo, u, ukm, ps, pkm = geo[node_id]
            x = sqrt(sin((lat0 - la) / 2) ** 2 + cl * cos0 * sin((lon0 - lo) * _DEG / 2) ** 2)
            d = _TWO_R * asin(x if x < 1.0 else 1.0)
            e = entries[node_id] = (u + ukm * d, ps + pkm * d, node_id, d, facts_of[node_id])
            out.append(e)
        return out

    @property
    def pool(self) -> list[PoolEntry]:
        """Every pool node (unordered)."""
        entries = self._entries
        if len(entries) < len(self.ids):
            self._work_out(self.ids - entries.keys())
        return [entries[n] for n in self.ids]

    def _rings(self) -> Iterator[tuple[list[PoolEntry], float]] | None:
        """The pool nodes ring by ring around the destination, with a lower bound on the distance of the
        nodes in later rings; None when the network has no grid (or entries were worked out already)."""
        grid = self.stock._static.grid
        lat, lon = self.request.destination.latitude, self.request.destination.longitude
        if grid is None or len(self._entries) >= len(self.ids) or not grid.covers(lon):
            return None
        ids = self.ids
        return ((self._work_out([n for n in ring if n in ids]), km) for ring, km in grid.rings(lat, lon))

    def by_rate(self) -> Iterator[PoolEntry]:
        """Pool nodes by (per-unit rate, fixed cost, node id), worked out only as far as they are read."""
        rings = self._rings()
        if rings is None:
            yield from sorted(self.pool)
            return
        _, _, pu, pukm = self.stock._static.min_rates
        heap: list[PoolEntry] = []
        for entries, km in rings:
            for e in entries:
                heappush(heap, e)
            floor = pu + pukm * km  # no node further out has a lower rate
            while heap and heap[0][0] < floor:
                yield heappop(heap)
        while heap:
            yield heappop(heap)

    def by_distance(self) -> Iterator[PoolEntry]:
        """Pool nodes nearest first (then by node id), worked out only as far as they are read."""
        rings = self._rings()
        if rings is None:
            for _, _, e in sorted((e[3], e[2], e) for e in self.pool):
                yield e
            return
        heap: list[tuple[float, str, PoolEntry]] = []
        for entries, km in rings:
            for e in entries:
                heappush(heap, (e[3], e[2], e))
            while heap and heap[0][0] < km:
                yield heappop(heap)[2]
        while heap:
            yield heappop(heap)[2]

    def candidate(self, entry: PoolEntry) -> Candidate:
        """The pool node ``entry`` as a :class:`Candidate` (its stock read once per scope)."""
        made = self._made.get(entry[2])
        if made is None:
            c, f, node_id, km, facts = entry
            made = self._made[node_id] = Candidate(facts, km, f, c, self.available(node_id))
        return made

    def candidates(self) -> list[Candidate]:
        """Every pool node as a :class:`Candidate`, by node id."""
        return [self.candidate(self.entry(n)) for n in sorted(self.ids)]

    def single_node(self) -> bool:
        """Whether one pool node can ship every unit the pool can."""
        need = [(t, c) for t, c in zip(self.tables, self.coverable, strict=True) if c]
        if not need:
            return True
        common = self.ids.intersection(*(t.keys() for t, _ in need))
        return any(all(t[n] >= c for t, c in need) for n in common)

    def may_supply(self, node_id: str) -> bool:
        """Whether incoming supply at ``node_id`` may be promised to this order: the node is in the network
        and allowed by the policy (not excluded; the pickup node for a pickup order, else a node that ships
        to the destination). Being offline, out of capacity or late today does not matter for a promise."""
        if node_id in self.policy.excluded_nodes or node_id not in self.stock:
            return False
        facts = self.stock.facts(node_id)
        if self.pickup:
            return node_id == self.policy.pickup_node and facts.pickup
        return facts.ships and facts.rates(facts.distance_km(*self.dest)) is not None


def rejection(stock: NetworkStock, node_id: str, reason: RejectReason, detail: str = "") -> Rejection:
    """A :class:`Rejection`, shared between plans (they are immutable), so that large networks do not
    build thousands of equal values per order."""
    if not detail:
        return reason_table(stock, reason)[node_id]
    return detailed(stock, reason)(node_id, detail)


def detailed(stock: NetworkStock, reason: RejectReason) -> Callable[[str, str], Rejection]:
    """A function giving the (shared) rejection of a node for ``reason`` with a detail."""
    tables = stock._static.detailed
    table = tables.get(reason.value)
    if table is None:
        table = tables[reason.value] = {}

    def get(node_id: str, detail: str) -> Rejection:
        key = (node_id, detail)
        found = table.get(key)
        if found is None:
            if len(table) >= _CACHE_LIMIT:
                table.clear()
            found = table[key] = Rejection(node_id, reason, detail)
        return found

    return get


def reason_table(stock: NetworkStock, reason: RejectReason) -> dict[str, Rejection]:
    """The detail-free rejection of every node of the network for ``reason`` (built on first use)."""
    tables = stock._static.rejections
    table = tables.get(reason.value)
    if table is None:
        table = tables[reason.value] = {n: Rejection(n, reason) for n in stock._static.order}
    return table


def scope_for(request: SourcingRequest, stock: NetworkStock) -> Scope:
    """Read ``request`` against ``stock``: demand, pool and rejected nodes (see :class:`Scope`).

    Preferred or excluded nodes the network does not have are ignored (a policy may name nodes of
    another snapshot); a pickup node it does not have is :class:`UnknownNode`. A pickup order's node
    hands the order over at distance 0.
    """
    scope = Scope(request, stock)
    policy = scope.policy
    holding: set[str] = set().union(*scope.tables)
    if scope.pickup:
        _pickup_pool(scope, holding)
    else:
        _shipping_pool(scope, holding)
    if policy.preferred_nodes and not scope.pickup:
        _apply_preference(scope)
    _coverable(scope, holding)
    return scope


def _shipping_pool(scope: Scope, holding: set[str]) -> None:
    """Every node holding an ordered SKU that passes the policy joins the pool; the rest are rejected
    (as are nodes the policy names that hold nothing ordered)."""
    policy = scope.policy
    stock = scope.stock
    static = stock._static
    excluded = policy.excluded_nodes
    blocked = holding & excluded if excluded else set()
    for group in (static.unable, static.offline, stock._exhausted if policy.respect_capacity else ()):
        if group:
            blocked |= holding.intersection(group)
    named = [n for n in policy.preferred_nodes | excluded if n in stock and n not in holding]
    for node_id in (*blocked, *named):
        facts = static.facts[node_id]
        if node_id in excluded:
            scope.reject(node_id, _R.EXCLUDED)
        elif not facts.ships:
            scope.reject(node_id, _R.CANNOT_SHIP, "does not ship parcels")
        elif node_id in static.offline:
            scope.reject(node_id, _R.OFFLINE)
        elif node_id not in holding:
            scope.reject(node_id, _R.NO_STOCK)
        else:
            scope.reject(node_id, _R.NO_CAPACITY, "no shipments left on its next dispatch day")
    eligible = holding - blocked if blocked else holding
    deliver_by = policy.deliver_by
    if not static.has_zones and deliver_by is None:
        scope.ids = eligible  # distances and rates are worked out when the strategy reads a node
        return
    at = scope.request.at
    entries = scope._entries
    for node_id in eligible:
        facts = static.facts[node_id]
        km = facts.distance_km(*scope.dest)
        rates = facts.rates(km)
        if rates is None:
            scope.reject(node_id, _R.OUT_OF_RANGE, f"{km:.0f} km is beyond its last zone")
            continue
        if deliver_by is not None:
            arrives = static.dispatch_date(facts, at) + timedelta(days=facts.node.transit.days(km))
            if arrives > deliver_by:
                scope.reject(node_id, _R.TOO_LATE, f"delivers {arrives}, needed by {deliver_by}")
                continue
        entries[node_id] = (rates[1], rates[0], node_id, km, facts)
    scope.ids = set(entries)


def _pickup_pool(scope: Scope, holding: set[str]) -> None:
    """A pickup order: the pickup node is the only pool node (at distance 0); everyone else is rejected."""
    policy = scope.policy
    stock = scope.stock
    pickup = policy.pickup_node
    assert pickup is not None
    if pickup not in stock:
        raise UnknownNode(pickup)
    for node_id in holding | {n for n in policy.excluded_nodes if n in stock}:
        if node_id in policy.excluded_nodes:
            scope.reject(node_id, _R.EXCLUDED)
        elif node_id != pickup:
            scope.reject(node_id, _R.NOT_PICKUP_NODE)
    facts = stock.facts(pickup)
    if not facts.pickup:
        scope.reject(pickup, _R.CANNOT_SHIP, "does not offer pickup")
    elif pickup in stock._static.offline:
        scope.reject(pickup, _R.OFFLINE)
    elif pickup not in holding:
        scope.reject(pickup, _R.NO_STOCK)
    elif policy.respect_capacity and stock.capacity_left(pickup) == 0:
        scope.reject(pickup, _R.NO_CAPACITY, "no handovers left on its next dispatch day")
    else:
        rates = facts.rates(0.0)
        ready = stock._static.dispatch_date(facts, scope.request.at)
        if rates is None:  # pragma: no cover - every zone reaches 0 km
            scope.reject(pickup, _R.OUT_OF_RANGE)
        elif policy.deliver_by is not None and ready > policy.deliver_by:
            scope.reject(pickup, _R.TOO_LATE, f"ready {ready}, needed by {policy.deliver_by}")
        else:
            scope._entries[pickup] = (rates[1], rates[0], pickup, 0.0, facts)
            scope.ids = {pickup}


def _coverable(scope: Scope, holding: set[str]) -> None:
    """How many units of each SKU the pool can ship: the network's totals less what nodes outside the
    pool hold (few, usually), or the pool's own sum when that is shorter to add up."""
    outside = [n for n in holding if n in scope.rejected]
    if len(outside) * 2 <= len(scope.ids) or not scope.ids:
        totals = [scope.stock.total(s) for s in scope.skus]
        for node_id in outside:
            for j, table in enumerate(scope.tables):
                totals[j] -= table.get(node_id, 0)
    else:
        totals = [0] * len(scope.skus)
        for node_id in scope.ids:
            for j, table in enumerate(scope.tables):
                totals[j] += table.get(node_id, 0)
    scope.coverable = tuple(min(d, t) for d, t in zip(scope.demand, totals, strict=True))


def _apply_preference(scope: Scope) -> None:
    """Keep only the preferred pool nodes when they can fill whatever the whole pool can fill."""
    preferred = scope.policy.preferred_nodes
    everyone = [0] * len(scope.skus)
    alone = [0] * len(scope.skus)
    for node_id in scope.ids:
        for j, table in enumerate(scope.tables):
            q = table.get(node_id, 0)
            everyone[j] += q
            if node_id in preferred:
                alone[j] += q
    can = sum(min(d, t) for d, t in zip(scope.demand, everyone, strict=True))
    can_alone = sum(min(d, t) for d, t in zip(scope.demand, alone, strict=True))
    if can_alone >= can:
        for node_id in scope.ids - preferred:
            scope.reject(node_id, _R.NOT_PREFERRED)
        scope.ids = scope.ids & preferred
        scope.notes.append("the preferred nodes can fill the order alone; no other node is used")
    else:
        scope.notes.append(
            f"the preferred nodes can ship {can_alone} of the {can} units the network can;"
            " every allowed node is considered"
        )
