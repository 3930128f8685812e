"""Fulfilment nodes: the warehouses, stores, drop-ship vendors and 3PLs that ship orders.

A node is a value: where it is, what it can do, how much it can ship a day, when it works (a calendar with
a cut-off time) and what a shipment from it costs (:class:`ShippingCost`). Sourcing reads nodes; it never
changes them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

import attrs
from dateutil import rrule, tz

from ordercore.errors import InvalidValue, Problem, UnknownNode, ValidationFailed
from ordercore.money import minor_units
from ordercore.values import GeoPoint, check_aware, check_text_fault, text_fault

__all__ = [
    "Capability",
    "FulfilmentNetwork",
    "FulfilmentNode",
    "NodeKind",
    "ShippingCost",
    "TransitTime",
    "WorkingCalendar",
    "Zone",
    "check_node_id",
]

MAX_NODE_ID = 64


def check_node_id(value: object, field: str = "node_id") -> str:
    """Return ``value`` if it is a valid node id: a non-empty string of at most 64 characters, no spaces
    around it."""
    if not isinstance(value, str) or not value.strip() or value != value.strip() or len(value) > MAX_NODE_ID:
        raise InvalidValue(
            f"must be a non-empty string of at most {MAX_NODE_ID} characters without surrounding spaces",
            field=field,
            value=value,
        )
    check_text_fault(value, field)
    return value


class NodeKind(enum.Enum):
    WAREHOUSE = "warehouse"
    STORE = "store"
    DROP_SHIP = "drop_ship"
    THIRD_PARTY = "3pl"


class Capability(enum.Enum):
    SHIP = "ship"
    """Ships parcels to customers."""
    PICKUP = "pickup"
    """Customers collect orders here (pickup in store)."""
    SHIP_FROM_STORE = "ship_from_store"
    """A store that also ships to customers (treated like :attr:`SHIP` by sourcing)."""


def _decimal(problems: list[Problem], name: str, value: object, *, allow_negative: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, Decimal):
        problems.append(
            Problem(name, InvalidValue.code, f"must be a Decimal, not {type(value).__name__}", value)
        )
        return
    if not value.is_finite():
        problems.append(Problem(name, InvalidValue.code, "must be finite", value))
    elif value < 0 and not allow_negative:
        problems.append(Problem(name, InvalidValue.code, "must not be negative", value))


@attrs.frozen
class Zone:
    """A distance band: shipments going at most ``max_km`` pay ``per_shipment`` plus ``per_unit`` a unit."""

    max_km: Decimal
    per_shipment: Decimal = Decimal(0)
    per_unit: Decimal = Decimal(0)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        for name in ("max_km", "per_shipment", "per_unit"):
            _decimal(problems, name, getattr(self, name))
        if problems:
            raise ValidationFailed(problems, subject="zone")


@attrs.frozen
class ShippingCost:
    """What one shipment from a node costs, in ``currency``::

        per_shipment + per_km * km + units * (per_unit + per_unit_km * km) + the zone's charges

    where ``km`` is the great-circle distance to the destination. With ``zones`` (sorted by ``max_km``),
    the first zone that reaches the destination adds its charges, and a destination beyond the last zone is
    out of the node's range.
    """

    currency: str
    per_shipment: Decimal
    per_unit: Decimal = Decimal(0)
    per_km: Decimal = Decimal(0)
    per_unit_km: Decimal = Decimal(0)
    zones: tuple[Zone, ...] = ()

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        try:
            minor_units(self.currency)
        except InvalidValue as e:
            problems.append(Problem("currency", e.code, e.message, self.currency))
        for name in ("per_shipment", "per_unit", "per_km", "per_unit_km"):
            _decimal(problems, name, getattr(self, name))
        if not isinstance(self.zones, tuple) or not all(isinstance(z, Zone) for z in self.zones):
            problems.append(Problem("zones", InvalidValue.code, "must be a tuple of Zone", self.zones))
        elif [z.max_km for z in self.zones] != sorted({z.max_km for z in self.zones}):
            problems.append(
                Problem("zones", InvalidValue.code, "must be sorted by max_km, each max_km once", self.zones)
            )
        if problems:
            raise ValidationFailed(problems, subject="shipping cost")

    def zone_for(self, km: float) -> Zone | None:
        """The zone reaching ``km``; None when the destination is out of range (only with zones)."""
        for zone in self.zones:
            if km <= zone.max_km:
                return zone
        return None

    def in_range(self, km: float) -> bool:
        return not self.zones or self.zone_for(km) is not None

    def rates(self, km: float) -> tuple[float, float] | None:
        """``(fixed, per_unit)`` cost of a shipment going ``km`` as floats, for the search; None when out
        of range. :meth:`cost` gives the exact amount."""
        fixed = float(self.per_shipment) + float(self.per_km) * km
        unit = float(self.per_unit) + float(self.per_unit_km) * km
        if self.zones:
            zone = self.zone_for(km)
            if zone is None:
                return None
            fixed += float(zone.per_shipment)
            unit += float(zone.per_unit)
        return fixed, unit

    def cost(self, units: int, km: float) -> Decimal:
        """The exact (unrounded) cost of a shipment of ``units`` going ``km``; InvalidValue when the
        destination is out of range."""
        try:
            d = Decimal(repr(float(km)))
        except (InvalidOperation, ValueError) as e:  # pragma: no cover - float repr is always a Decimal
            raise InvalidValue("must be a distance in km", field="km", value=km) from e
        total = self.per_shipment + self.per_km * d + units * (self.per_unit + self.per_unit_km * d)
        if self.zones:
            zone = self.zone_for(km)
            if zone is None:
                raise InvalidValue(f"{km:.1f} km is beyond the last zone", field="km", value=km)
            total += zone.per_shipment + units * zone.per_unit
        return total


@attrs.frozen
class TransitTime:
    """Calendar days from dispatch to delivery: ``base_days`` plus one day per started ``km_per_day``
    beyond the first."""

    base_days: int = 1
    km_per_day: float = 800.0

    def __attrs_post_init__(self) -> None:
        if isinstance(self.base_days, bool) or not isinstance(self.base_days, int) or self.base_days < 0:
            raise InvalidValue("must be a whole number of days >= 0", field="base_days", value=self.base_days)
        if (
            isinstance(self.km_per_day, bool)
            or not isinstance(self.km_per_day, int | float)
            or not self.km_per_day > 0
            or self.km_per_day == float("inf")
        ):
            raise InvalidValue("must be a positive number", field="km_per_day", value=self.km_per_day)

    def days(self, km: float) -> int:
        return self.base_days + int(km // self.km_per_day)


_ALL_DAYS = frozenset(range(7))
_ONE_DAY = timedelta(days=1)
_MIDNIGHT = time(0)
_WINDOW = timedelta(hours=1)
_TICK = timedelta(microseconds=1)


@attrs.frozen
class WorkingCalendar:
    """When a node dispatches: on ``workdays`` (0 = Monday) that are not ``holidays``, for orders in
    before ``cutoff`` local time in ``timezone`` (an IANA name such as ``Europe/Berlin``)."""

    timezone: str = "UTC"
    cutoff: time = time(16, 0)
    workdays: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = frozenset()

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not isinstance(self.timezone, str) or tz.gettz(self.timezone) is None:
            problems.append(
                Problem("timezone", InvalidValue.code, "must be an IANA time zone name", self.timezone)
            )
        if not isinstance(self.cutoff, time) or self.cutoff.tzinfo is not None:
            problems.append(
                Problem("cutoff", InvalidValue.code, "must be a local time without zone", self.cutoff)
            )
        if not isinstance(self.workdays, frozenset) or not self.workdays or not self.workdays <= _ALL_DAYS:
            problems.append(
                Problem(
                    "workdays", InvalidValue.code, "must be a non-empty set of weekdays 0-6", self.workdays
                )
            )
        if not isinstance(self.holidays, frozenset) or not all(type(d) is date for d in self.holidays):
            problems.append(Problem("holidays", InvalidValue.code, "must be a set of dates", self.holidays))
        if problems:
            raise ValidationFailed(problems, subject="working calendar")

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.workdays and day not in self.holidays

    def working_days(self, start: date, count: int) -> list[date]:
        """The first ``count`` working days from ``start`` on (``start`` included when it is one)."""
        rules = rrule.rruleset()
        rules.rrule(
            rrule.rrule(
                rrule.DAILY,
                dtstart=datetime.combine(start, time()),
                byweekday=sorted(self.workdays),
                count=count + len(self.holidays),
            )
        )
        for h in self.holidays:
            rules.exdate(datetime.combine(h, time()))
        days = [d.date() for d in rules]
        return days[:count]

    def dispatch_date(self, at: datetime) -> date:
        """The day an order arriving at ``at`` leaves the node: today before the cut-off on a working day,
        else the next working day."""
        check_aware(at, "at")
        local = at.astimezone(tz.gettz(self.timezone))
        return self._dispatch_day(local.date(), local.time() < self.cutoff)

    def dispatch_window(self, at: datetime) -> tuple[date, datetime]:
        """:meth:`dispatch_date` of ``at``, and a moment after ``at`` before which every later order gets
        the same day: the next cut-off or local midnight, at most an hour on, and no later than ``at``
        itself plus a microsecond when the zone's offset changes before then (a daylight saving change,
        which moves local time). For callers that remember the day while time moves on."""
        check_aware(at, "at")
        zone = tz.gettz(self.timezone)
        local = at.astimezone(zone)
        today = local.date()
        before_cutoff = local.time() < self.cutoff
        day = self._dispatch_day(today, before_cutoff)
        # the answer depends on the local date and on the side of the cut-off only: it holds until the
        # next of the two, while local time moves as UTC does (the same offset at both ends, an hour apart
        # at most: no two offset changes fit in between)
        if before_cutoff:
            turn = datetime.combine(today, self.cutoff, zone)
        else:
            turn = datetime.combine(today + _ONE_DAY, _MIDNIGHT, zone)
        now = at.astimezone(UTC)
        until = min(turn.astimezone(UTC), now + _WINDOW)
        if until <= now or until.astimezone(zone).utcoffset() != local.utcoffset():
            until = now + _TICK
        return day, until

    def _dispatch_day(self, today: date, before_cutoff: bool) -> date:
        if before_cutoff and self.is_working_day(today):
            return today
        # working_days(today + 1 day, 1)[0], without building a recurrence rule for one day
        day = today + _ONE_DAY
        while not self.is_working_day(day):
            day += _ONE_DAY
        return day


def _capabilities(value: Iterable[Capability]) -> frozenset[Capability]:
    return frozenset(value)


@attrs.frozen
class FulfilmentNode:
    """A place that ships (or hands over) orders. ``priority``: lower is preferred by the priority
    strategy. ``daily_capacity``: shipments a day, None for no limit."""

    node_id: str
    kind: NodeKind
    location: GeoPoint
    cost: ShippingCost
    capabilities: frozenset[Capability] = attrs.field(
        default=frozenset({Capability.SHIP}), converter=_capabilities
    )
    priority: int = 100
    daily_capacity: int | None = None
    calendar: WorkingCalendar = WorkingCalendar()
    transit: TransitTime = TransitTime()
    name: str = ""

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        try:
            check_node_id(self.node_id)
        except InvalidValue as e:
            problems.append(Problem("node_id", e.code, e.message, self.node_id))
        for name, cls in (
            ("kind", NodeKind),
            ("location", GeoPoint),
            ("cost", ShippingCost),
            ("calendar", WorkingCalendar),
            ("transit", TransitTime),
        ):
            if not isinstance(getattr(self, name), cls):
                problems.append(
                    Problem(name, InvalidValue.code, f"must be a {cls.__name__}", getattr(self, name))
                )
        if not all(isinstance(c, Capability) for c in self.capabilities):
            problems.append(
                Problem("capabilities", InvalidValue.code, "must be Capability values", self.capabilities)
            )
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            problems.append(Problem("priority", InvalidValue.code, "must be a whole number", self.priority))
        cap = self.daily_capacity
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            problems.append(
                Problem("daily_capacity", InvalidValue.code, "must be a whole number >= 0 or None", cap)
            )
        if not isinstance(self.name, str) or len(self.name) > 200:
            problems.append(
                Problem("name", InvalidValue.code, "must be text of at most 200 characters", self.name)
            )
        elif (fault := text_fault(self.name)) is not None:
            problems.append(Problem("name", InvalidValue.code, fault, self.name))
        if problems:
            raise ValidationFailed(problems, subject=f"fulfilment node {self.node_id!r}")

    @property
    def ships(self) -> bool:
        return bool(self.capabilities & {Capability.SHIP, Capability.SHIP_FROM_STORE})

    @property
    def offers_pickup(self) -> bool:
        return Capability.PICKUP in self.capabilities


class FulfilmentNetwork:
    """The nodes an application sources from, and which of them are online right now.

    Node definitions are configuration; whether a node is online is operational state that changes at run
    time (:meth:`set_online`), so this is a small mutable registry held by the application, not a value.
    """

    def __init__(self, nodes: Iterable[FulfilmentNode]) -> None:
        listed = list(nodes)
        problems: list[Problem] = []
        by_id: dict[str, FulfilmentNode] = {}
        for i, node in enumerate(listed):
            if not isinstance(node, FulfilmentNode):
                problems.append(Problem(f"nodes[{i}]", InvalidValue.code, "must be a FulfilmentNode", node))
            elif node.node_id in by_id:
                problems.append(
                    Problem(f"nodes[{i}].node_id", InvalidValue.code, "is listed twice", node.node_id)
                )
            else:
                by_id[node.node_id] = node
        currencies = sorted({n.cost.currency for n in by_id.values()})
        if len(currencies) > 1:
            problems.append(
                Problem(
                    "nodes",
                    InvalidValue.code,
                    f"costs must share one currency, found {currencies}",
                    currencies,
                )
            )
        if problems:
            raise ValidationFailed(problems, subject="fulfilment network")
        self._nodes = {k: by_id[k] for k in sorted(by_id)}
        self._offline: set[str] = set()

    @property
    def nodes(self) -> tuple[FulfilmentNode, ...]:
        """Every node, by id."""
        return tuple(self._nodes.values())

    @property
    def currency(self) -> str | None:
        return next(iter(self._nodes.values())).cost.currency if self._nodes else None

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def get(self, node_id: str) -> FulfilmentNode:
        """The node (UnknownNode if there is none)."""
        try:
            return self._nodes[node_id]
        except (KeyError, TypeError):
            raise UnknownNode(node_id) from None

    def is_online(self, node_id: str) -> bool:
        self.get(node_id)
        return node_id not in self._offline

    @property
    def offline_ids(self) -> frozenset[str]:
        """The ids of the nodes marked offline."""
        return frozenset(self._offline)

    def set_online(self, node_id: str, online: bool) -> bool:
        """Mark a node online or offline; returns whether that changed anything."""
        self.get(node_id)
        if not isinstance(online, bool):
            raise InvalidValue("must be true or false", field="online", value=online)
        was = node_id not in self._offline
        if online:
            self._offline.discard(node_id)
        else:
            self._offline.add(node_id)
        return was != online
