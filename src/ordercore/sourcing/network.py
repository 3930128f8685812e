"""The stock of a whole fulfilment network, as sourcing reads it.

:class:`NetworkStock` is built once from :class:`NodeStock` values and reused for many orders. It keeps
what changes (available units, shipments left today) apart from what does not (where a node is, what it
charges), indexes the changing part per SKU so that a strategy only looks at nodes holding an ordered SKU,
and precomputes the static part so that distances and rates cost a few float operations. Batch sourcing
takes a plan's units out with :meth:`NetworkStock.apply` and puts them back with
:meth:`NetworkStock.restore`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal

import attrs

from ordercore.errors import InvalidValue, Problem, UnknownNode, ValidationFailed
from ordercore.geo import EARTH_RADIUS_KM, haversine_km
from ordercore.inventory.nodes import FulfilmentNode, WorkingCalendar
from ordercore.money import minor_units
from ordercore.sourcing.grid import Grid
from ordercore.sourcing.model import NodeStock, Rejection, SourcingPlan, SourcingRequest
from ordercore.values import GeoPoint, Sku

__all__ = ["NetworkStock", "NodeFacts", "point_radians"]

_DEG = math.pi / 180.0  # what math.radians multiplies by, so distances match ordercore.geo bit for bit
_TWO_R = 2 * EARTH_RADIUS_KM
_GRID_FROM = 150  # nodes


def _floor_float(value: Decimal) -> float:
    """The largest float not above ``value``: ``km <= _floor_float(d)`` iff ``km <= d`` for any float km."""
    f = float(value)
    if Decimal(f) > value:
        f = math.nextafter(f, -math.inf)
    return f


class NodeFacts:
    """What sourcing needs to know about a node that never changes: its coordinates in radians and its
    shipping rates as floats (the same operations :meth:`ShippingCost.rates` does, so the same values)."""

    __slots__ = (
        "calendar_key",
        "cos_lat",
        "lat",
        "lon",
        "node",
        "node_id",
        "pickup",
        "pkm",
        "priority",
        "ps",
        "pu",
        "pukm",
        "ships",
        "zones",
    )

    def __init__(self, node: FulfilmentNode, calendar_key: int) -> None:
        cost = node.cost
        self.node = node
        self.node_id = node.node_id
        self.lat = node.location.latitude * _DEG
        self.cos_lat = math.cos(self.lat)
        self.lon = node.location.longitude
        self.ps = float(cost.per_shipment)
        self.pkm = float(cost.per_km)
        self.pu = float(cost.per_unit)
        self.pukm = float(cost.per_unit_km)
        self.zones: tuple[tuple[float, float, float], ...] = tuple(
            (_floor_float(z.max_km), float(z.per_shipment), float(z.per_unit)) for z in cost.zones
        )
        self.ships = node.ships
        self.pickup = node.offers_pickup
        self.priority = node.priority
        self.calendar_key = calendar_key

    def distance_km(self, lat: float, cos_lat: float, lon: float) -> float:
        """Great-circle km to a point given as (latitude in radians, its cosine, longitude in degrees);
        equal to ``haversine_km(node.location, point)``."""
        dlat = lat - self.lat
        dlon = (lon - self.lon) * _DEG
        h = math.sin(dlat / 2) ** 2 + self.cos_lat * cos_lat * math.sin(dlon / 2) ** 2
        return _TWO_R * math.asin(min(1.0, math.sqrt(h)))

    def rates(self, km: float) -> tuple[float, float] | None:
        """``node.cost.rates(km)``, from the precomputed floats."""
        fixed = self.ps + self.pkm * km
        unit = self.pu + self.pukm * km
        if self.zones:
            for bound, zps, zpu in self.zones:
                if km <= bound:
                    return fixed + zps, unit + zpu
            return None
        return fixed, unit


def point_radians(point: GeoPoint) -> tuple[float, float, float]:
    """(latitude in radians, its cosine, longitude in degrees): a destination as distance_km takes it."""
    lat = point.latitude * _DEG
    return lat, math.cos(lat), point.longitude


class _Static:
    """The part of a network shared by every copy: node facts, incoming supply per SKU, rate floors, and
    memo tables (dispatch dates) that depend only on static data. A snapshot of the same nodes built
    ``like`` this one shares everything (the node facts too) but its own stock of each node, the incoming
    supply and the offline nodes."""

    __slots__ = (
        "detailed",
        "dispatch",
        "facts",
        "geo",
        "grid",
        "has_zones",
        "incoming",
        "max_rates",
        "min_rates",
        "offline",
        "order",
        "reach",
        "rejections",
        "stocks",
        "unable",
    )

    facts: dict[str, NodeFacts]
    stocks: dict[str, NodeStock]
    order: tuple[str, ...]
    incoming: dict[Sku, tuple[tuple[date, str, int], ...]]
    min_rates: tuple[float, float, float, float]
    max_rates: tuple[float, float, float, float]
    reach: tuple[GeoPoint, float]
    has_zones: bool
    offline: frozenset[str]
    unable: frozenset[str]
    dispatch: dict[int, tuple[datetime, datetime, date]]
    rejections: dict[str, dict[str, Rejection]]
    detailed: dict[str, dict[tuple[str, str], Rejection]]
    geo: dict[str, tuple[float, float, float, float, float, float, float]]
    grid: Grid | None

    def __init__(self, stocks: list[NodeStock], like: _Static | None = None, *, same: bool = False) -> None:
        # canonical order: sums do not depend on listing (``same``: ``stocks`` are sorted, of like's nodes)
        ordered = stocks if same else sorted(stocks, key=_node_id_of)
        if like is not None and (same or like.same_nodes(ordered)):
            self._share(like, ordered)
        else:
            self._compute(ordered)
        # this snapshot's stock of each node, in node id order
        self.stocks = by_node = {s.node_id: s for s in ordered}
        incoming: dict[Sku, list[tuple[date, str, int]]] = {}
        offline = []
        for node_id, stock in by_node.items():
            if stock.incoming:
                for sku, entries in stock.incoming.items():
                    incoming.setdefault(sku, []).extend((d, node_id, q) for d, q in entries)
            if not stock.online:
                offline.append(node_id)
        self.incoming = {sku: tuple(sorted(v)) for sku, v in incoming.items()}
        self.offline = frozenset(offline)

    def same_nodes(self, ordered: list[NodeStock]) -> bool:
        """Whether ``ordered`` (sorted by node id) holds exactly this network's node objects."""
        if len(ordered) != len(self.order):
            return False
        facts = self.facts
        for node_id, s in zip(self.order, ordered, strict=True):
            if s.node_id != node_id or facts[node_id].node is not s.node:
                return False
        return True

    def _share(self, like: _Static, ordered: list[NodeStock]) -> None:
        """Take everything that depends on the nodes alone from ``like`` (same node objects), the facts
        of each node among them: only the stock is this snapshot's own."""
        self.facts = like.facts
        self.order = like.order
        self.min_rates = like.min_rates
        self.max_rates = like.max_rates
        self.reach = like.reach
        self.has_zones = like.has_zones
        self.unable = like.unable
        self.dispatch = like.dispatch
        self.rejections = like.rejections
        self.detailed = like.detailed
        self.geo = like.geo
        self.grid = like.grid

    def _compute(self, ordered: list[NodeStock]) -> None:
        calendars: dict[WorkingCalendar, int] = {}
        self.facts = {}
        for s in ordered:
            key = calendars.setdefault(s.node.calendar, len(calendars))
            self.facts[s.node_id] = NodeFacts(s.node, key)
        self.order = tuple(sorted(self.facts))
        facts = list(self.facts.values())
        # lower bounds of (fixed, per_unit) over every node, as linear functions of the distance
        self.min_rates = (
            (
                min(f.ps for f in facts),
                min(f.pkm for f in facts),
                min(f.pu for f in facts),
                min(f.pukm for f in facts),
            )
            if facts
            else (0.0, 0.0, 0.0, 0.0)
        )
        # upper bounds of (fixed, per_unit) over every node: (per_shipment + zone, per_km, per_unit + zone,
        # per_unit_km)
        self.max_rates = (
            (
                max(f.ps + max((z[1] for z in f.zones), default=0.0) for f in facts),
                max(f.pkm for f in facts),
                max(f.pu + max((z[2] for z in f.zones), default=0.0) for f in facts),
                max(f.pukm for f in facts),
            )
            if facts
            else (0.0, 0.0, 0.0, 0.0)
        )
        # a point and a radius around it holding every node: the farthest node is at most this far
        if facts:
            mid = GeoPoint(
                sum(f.node.location.latitude for f in facts) / len(facts),
                sum(f.lon for f in facts) / len(facts),
            )
            self.reach = (mid, max(haversine_km(mid, f.node.location) for f in facts))
        else:
            self.reach = (GeoPoint(0.0, 0.0), 0.0)
        self.has_zones = any(f.zones for f in facts)
        self.unable = frozenset(f.node_id for f in facts if not f.ships)
        self.dispatch = {}
        # rejections without detail, per reason value and node id, shared by every plan
        self.rejections = {}
        self.detailed = {}
        # (latitude rad, its cosine, longitude deg, per_unit, per_unit_km, per_shipment, per_km) per node
        self.geo = {f.node_id: (f.lat, f.cos_lat, f.lon, f.pu, f.pukm, f.ps, f.pkm) for f in facts}
        # a spatial index, for networks large enough to gain from visiting nodes nearest first
        self.grid = (
            Grid.build({f.node_id: (f.node.location.latitude, f.lon) for f in facts})
            if len(facts) >= _GRID_FROM
            else None
        )

    def farthest_km(self, point: GeoPoint) -> float:
        """An upper bound on the distance from ``point`` to any node."""
        mid, radius = self.reach
        return haversine_km(point, mid) + radius + 1.0

    def dispatch_date(self, facts: NodeFacts, at: datetime) -> date:
        """``facts.node.calendar.dispatch_date(at)``, memoized per calendar (many nodes share one) over the
        window the calendar says its answer holds (see :meth:`WorkingCalendar.dispatch_window`), so that
        orders arriving one after another reuse it."""
        window = self.dispatch.get(facts.calendar_key)
        if window is not None and window[0] <= at < window[1]:
            return window[2]
        day, until = facts.node.calendar.dispatch_window(at)
        self.dispatch[facts.calendar_key] = (at, until, day)
        return day


def _node_id_of(stock: NodeStock) -> str:
    return stock.node_id


def _all_node_stocks(entries: Sequence[object]) -> bool:
    return all(isinstance(entry, NodeStock) for entry in entries)


class NetworkStock:
    """Every node's stock, as one snapshot that strategies read and batch sourcing changes.

    ``NetworkStock(nodes)`` takes :class:`NodeStock` values (any order; each node once, all costing in one
    currency). ``currency`` is taken from the nodes, and must be given for an empty network. Iteration
    yields the current stock of every node, by node id. :meth:`copy` is cheap (per-SKU tables are copied
    when first written), so a caller can try plans on a copy.

    ``like``, an earlier snapshot, lends what depends on the nodes alone (coordinates, rates, memo tables)
    when ``nodes`` hold the very node objects it was built from, which are then not checked again (nor is
    the currency, which must be its own): building a snapshot per order costs the stock figures only.
    """

    __slots__ = ("_by_sku", "_cap", "_changed", "_exhausted", "_owned", "_static", "_totals", "currency")

    def __init__(
        self, nodes: Iterable[NodeStock], currency: str | None = None, *, like: NetworkStock | None = None
    ) -> None:
        listed = list(nodes)
        if like is not None and (currency is None or currency == like.currency):
            ordered = sorted(listed, key=_node_id_of) if _all_node_stocks(listed) else None
            if ordered is not None and like._static.same_nodes(ordered):
                # the very nodes of ``like``, which were checked when it was built
                self._build(like.currency, _Static(ordered, like._static, same=True))
                return
        problems: list[Problem] = []
        stocks: list[NodeStock] = []
        seen: set[str] = set()
        for i, entry in enumerate(listed):
            if not isinstance(entry, NodeStock):
                problems.append(Problem(f"nodes[{i}]", InvalidValue.code, "must be a NodeStock", entry))
            elif entry.node_id in seen:
                problems.append(
                    Problem(f"nodes[{i}]", InvalidValue.code, "lists a node twice", entry.node_id)
                )
            else:
                seen.add(entry.node_id)
                stocks.append(entry)
        currencies = sorted({s.node.cost.currency for s in stocks})
        if len(currencies) > 1:
            problems.append(
                Problem("nodes", InvalidValue.code, "node costs must share one currency", tuple(currencies))
            )
        if currency is None:
            if not stocks:
                problems.append(
                    Problem("currency", InvalidValue.code, "is required for a network without nodes", None)
                )
            elif currencies:
                currency = currencies[0]
        else:
            try:
                minor_units(currency)
            except InvalidValue as e:
                problems.append(Problem("currency", e.code, e.message, currency))
            else:
                if currencies and currencies != [currency]:
                    problems.append(
                        Problem("currency", InvalidValue.code, "differs from the nodes' currency", currency)
                    )
        if problems:
            raise ValidationFailed(problems, subject="network stock")
        assert currency is not None
        self._build(currency, _Static(stocks, None if like is None else like._static))

    @classmethod
    def trusted_like(cls, like: NetworkStock, stocks: list[NodeStock]) -> NetworkStock:
        """A snapshot of ``stocks``, which hold the very node objects ``like`` was built of, in its node id
        order: trusted, so neither listed again nor checked (for a caller that builds one per order from
        a fixed set of nodes, as :func:`ordercore.service.sourcing.stock_view` does)."""
        view: NetworkStock = object.__new__(cls)
        view._build(like.currency, _Static(stocks, like._static, same=True))
        return view

    def _build(self, currency: str, static: _Static) -> None:
        self.currency: str = currency
        self._static = static
        by_sku: dict[Sku, dict[str, int]] = {}
        stocks = self._static.stocks
        for node_id, stock in stocks.items():
            for sku, qty in stock.available.items():
                if qty > 0:
                    held = by_sku.get(sku)
                    if held is None:
                        held = by_sku[sku] = {}
                    held[node_id] = qty
        self._by_sku = by_sku
        self._owned: set[Sku] = set(by_sku)
        self._cap: dict[str, int] = {
            node_id: stock.capacity_left
            for node_id, stock in stocks.items()
            if stock.capacity_left is not None
        }
        self._exhausted: set[str] = {node_id for node_id, left in self._cap.items() if left <= 0}
        self._totals: dict[Sku, int] = {sku: sum(held.values()) for sku, held in by_sku.items()}
        self._changed: set[str] = set()

    # -- reading --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._static.order)

    def __iter__(self) -> Iterator[NodeStock]:
        for node_id in self._static.order:
            yield self._current(node_id)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._static.facts

    def __repr__(self) -> str:
        return f"NetworkStock({len(self)} nodes, {len(self._by_sku)} SKUs in stock, {self.currency})"

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Every node id, sorted."""
        return self._static.order

    def get(self, node_id: str) -> NodeStock | None:
        """The current stock of ``node_id`` (None when the network has no such node)."""
        if node_id not in self._static.facts:
            return None
        return self._current(node_id)

    def available(self, node_id: str, sku: Sku) -> int:
        """Units of ``sku`` ``node_id`` can promise now (0 for an unknown node or SKU)."""
        held = self._by_sku.get(sku)
        return held.get(node_id, 0) if held else 0

    def capacity_left(self, node_id: str) -> int | None:
        """Shipments ``node_id`` can still take on its next dispatch day (None: no limit, or unknown
        node). Never below 0, even after a plan that ignored capacity was applied."""
        left = self._cap.get(node_id)
        return None if left is None else max(0, left)

    def total(self, sku: Sku) -> int:
        """Units of ``sku`` available over the whole network."""
        return self._totals.get(sku, 0)

    def holders(self, sku: Sku) -> dict[str, int]:
        """The nodes holding ``sku`` with their available units. Read only: the table is live."""
        return self._by_sku.get(sku) or {}

    def facts(self, node_id: str) -> NodeFacts:
        """The static facts of ``node_id``; :class:`UnknownNode` when there is none."""
        try:
            return self._static.facts[node_id]
        except KeyError:
            raise UnknownNode(node_id) from None

    def dispatch_date(self, node_id: str, at: datetime) -> date:
        """The day ``node_id`` dispatches an order arriving at ``at`` (memoized calendar arithmetic)."""
        return self._static.dispatch_date(self.facts(node_id), at)

    def incoming(self, sku: Sku) -> tuple[tuple[date, str, int], ...]:
        """Every supply of ``sku`` not yet on hand as ``(expected date, node id, units)``, earliest first."""
        return self._static.incoming.get(sku, ())

    def _current(self, node_id: str) -> NodeStock:
        stock = self._static.stocks[node_id]
        if node_id not in self._changed:
            return stock
        available = {sku: self.available(node_id, sku) for sku in stock.available}
        cap = self.capacity_left(node_id)
        return attrs.evolve(stock, available=available, capacity_left=cap)

    # -- changing -------------------------------------------------------------------------------------------
    def copy(self) -> NetworkStock:
        """An independent copy; the per-SKU tables are shared until either side writes to them."""
        other = object.__new__(NetworkStock)
        other.currency = self.currency
        other._static = self._static
        other._by_sku = dict(self._by_sku)
        other._owned = set()
        self._owned = set()
        other._cap = dict(self._cap)
        other._exhausted = set(self._exhausted)
        other._totals = dict(self._totals)
        other._changed = set(self._changed)
        return other

    def apply(self, request: SourcingRequest, plan: SourcingPlan) -> None:
        """Take what ``plan`` ships out of the network: its units from ``available``, and one shipment from
        ``capacity_left`` per shipment. InvalidValue (and nothing changed) when a node has fewer units
        than the plan takes."""
        takes = self._takes(request, plan)
        short = [
            (node_id, sku, qty, self.available(node_id, sku))
            for (node_id, sku), qty in takes.items()
            if qty > self.available(node_id, sku)
        ]
        if short:
            node_id, sku, qty, have = short[0]
            raise InvalidValue(
                f"takes {qty} of {sku} from {node_id}, which has {have}"
                + (f" (and {len(short) - 1} more shortfalls)" if len(short) > 1 else ""),
                field="plan.shipments",
                value=plan.order_ref,
            )
        for (node_id, sku), qty in takes.items():
            held = self._writable(sku)
            left = held[node_id] - qty
            if left:
                held[node_id] = left
            else:
                del held[node_id]
            self._totals[sku] -= qty
            self._changed.add(node_id)
        for shipment in plan.shipments:
            self._ship(shipment.node_id, -1)
            self._changed.add(shipment.node_id)

    def restore(self, request: SourcingRequest, plan: SourcingPlan) -> None:
        """Undo :meth:`apply` of the same plan: its units back to ``available``, its shipments back to
        ``capacity_left``."""
        takes = self._takes(request, plan)
        for (node_id, sku), qty in takes.items():
            held = self._writable(sku)
            held[node_id] = held.get(node_id, 0) + qty
            self._totals[sku] = self._totals.get(sku, 0) + qty
            self._changed.add(node_id)
        for shipment in plan.shipments:
            self._ship(shipment.node_id, +1)

    def _ship(self, node_id: str, change: int) -> None:
        left = self._cap.get(node_id)
        if left is None:
            return
        left += change
        self._cap[node_id] = left
        if left <= 0:
            self._exhausted.add(node_id)
        else:
            self._exhausted.discard(node_id)

    def _writable(self, sku: Sku) -> dict[str, int]:
        if sku not in self._owned:
            self._by_sku[sku] = dict(self._by_sku.get(sku) or {})
            self._owned.add(sku)
        return self._by_sku[sku]

    def _takes(self, request: SourcingRequest, plan: SourcingPlan) -> dict[tuple[str, Sku], int]:
        """Units per (node, SKU) that ``plan`` ships; checks the plan belongs to ``request``."""
        if plan.order_ref != request.order_ref:
            raise InvalidValue(
                f"is for {plan.order_ref}, not {request.order_ref}",
                field="plan.order_ref",
                value=plan.order_ref,
            )
        sku_of = {line.line_id: line.sku for line in request.lines}
        takes: dict[tuple[str, Sku], int] = {}
        for i, shipment in enumerate(plan.shipments):
            if shipment.node_id not in self._static.facts:
                raise UnknownNode(shipment.node_id)
            for line_id, qty in shipment.lines:
                sku = sku_of.get(line_id)
                if sku is None:
                    raise InvalidValue(
                        "names a line the request does not have",
                        field=f"plan.shipments[{i}].lines",
                        value=line_id,
                    )
                if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
                    raise InvalidValue(
                        "must ship a whole number of units >= 1",
                        field=f"plan.shipments[{i}].lines",
                        value=qty,
                    )
                key = (shipment.node_id, sku)
                takes[key] = takes.get(key, 0) + qty
        return takes
