"""The values sourcing works on: what to source (:class:`SourcingRequest`), under which rules
(:class:`SourcingPolicy`), from what (:class:`NodeStock`), and the answer (:class:`SourcingPlan`), which
says what ships from where, what waits for supply, what it costs, and why every other node lost.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

import attrs

from ordercore.errors import InvalidValue, Problem, ValidationFailed
from ordercore.inventory.nodes import FulfilmentNode, check_node_id
from ordercore.money import Money
from ordercore.values import GeoPoint, Sku, check_aware, check_quantity

if TYPE_CHECKING:
    from ordercore.sourcing.network import NetworkStock

__all__ = [
    "NodeStock",
    "PlannedBackorder",
    "PlannedShipment",
    "RejectReason",
    "Rejection",
    "SourcingLine",
    "SourcingPlan",
    "SourcingPolicy",
    "SourcingRequest",
    "SourcingStrategy",
]


@attrs.frozen
class SourcingLine:
    """``quantity`` units of ``sku`` for the order line ``line_id``."""

    line_id: str
    sku: Sku
    quantity: int

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not isinstance(self.line_id, str) or not self.line_id or len(self.line_id) > 64:
            problems.append(
                Problem("line_id", InvalidValue.code, "must be a string of 1-64 characters", self.line_id)
            )
        if not isinstance(self.sku, Sku):
            problems.append(Problem("sku", InvalidValue.code, "must be a Sku", self.sku))
        try:
            check_quantity(self.quantity, "quantity")
        except InvalidValue as e:
            problems.append(Problem("quantity", e.code, e.message, self.quantity))
        if problems:
            raise ValidationFailed(problems, subject="sourcing line")


def _node_ids(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise InvalidValue("must be a collection of node ids, not one string", field="nodes", value=value)
    return frozenset(value)


@attrs.frozen
class SourcingPolicy:
    """The rules a plan must keep.

    - ``allow_split``: False ships the order complete from one node (units short everywhere wait).
    - ``max_shipments``: at most this many nodes ship the order (None: no limit).
    - ``preferred_nodes``: when the preferred nodes alone can fill what the network can, only they are
      used; otherwise every allowed node is.
    - ``excluded_nodes``: never used.
    - ``pickup_node``: the customer collects at this node (it must offer pickup); nothing else ships.
    - ``allow_backorder``: units no node has now wait for supply; False makes such an order fail to source.
    - ``allow_preorder``: waiting units are promised against incoming supply with its date.
    - ``deliver_by``: nodes that cannot deliver by this date are not used.
    - ``respect_capacity``: nodes with no shipment capacity left today are not used.
    """

    allow_split: bool = True
    max_shipments: int | None = None
    preferred_nodes: frozenset[str] = attrs.field(default=frozenset(), converter=_node_ids)
    excluded_nodes: frozenset[str] = attrs.field(default=frozenset(), converter=_node_ids)
    pickup_node: str | None = None
    allow_backorder: bool = True
    allow_preorder: bool = True
    deliver_by: date | None = None
    respect_capacity: bool = True

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        for name in ("allow_split", "allow_backorder", "allow_preorder", "respect_capacity"):
            if not isinstance(getattr(self, name), bool):
                problems.append(
                    Problem(name, InvalidValue.code, "must be true or false", getattr(self, name))
                )
        m = self.max_shipments
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            problems.append(
                Problem("max_shipments", InvalidValue.code, "must be a whole number >= 1 or None", m)
            )
        for name in ("preferred_nodes", "excluded_nodes"):
            for node_id in getattr(self, name):
                try:
                    check_node_id(node_id, name)
                except InvalidValue as e:
                    problems.append(Problem(name, e.code, e.message, node_id))
        if self.pickup_node is not None:
            try:
                check_node_id(self.pickup_node, "pickup_node")
            except InvalidValue as e:
                problems.append(Problem("pickup_node", e.code, e.message, self.pickup_node))
            if self.pickup_node in self.excluded_nodes:
                problems.append(
                    Problem("pickup_node", InvalidValue.code, "is also an excluded node", self.pickup_node)
                )
        if self.deliver_by is not None and type(self.deliver_by) is not date:
            problems.append(
                Problem("deliver_by", InvalidValue.code, "must be a date or None", self.deliver_by)
            )
        if problems:
            raise ValidationFailed(problems, subject="sourcing policy")

    @property
    def shipment_limit(self) -> int | None:
        """The most nodes a plan may use under this policy (1 when the order ships complete or is picked
        up), None for no limit."""
        if not self.allow_split or self.pickup_node is not None:
            return 1
        return self.max_shipments


@attrs.frozen
class SourcingRequest:
    """Source ``lines`` to ``destination`` as of ``at`` (which decides cut-offs and dates)."""

    order_ref: str
    lines: tuple[SourcingLine, ...]
    destination: GeoPoint
    at: datetime
    policy: SourcingPolicy = SourcingPolicy()

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not isinstance(self.order_ref, str) or not self.order_ref:
            problems.append(
                Problem("order_ref", InvalidValue.code, "must be a non-empty string", self.order_ref)
            )
        if not isinstance(self.lines, tuple) or not self.lines:
            problems.append(
                Problem("lines", InvalidValue.code, "must be a non-empty tuple of SourcingLine", self.lines)
            )
        else:
            seen: set[str] = set()
            for i, line in enumerate(self.lines):
                if not isinstance(line, SourcingLine):
                    problems.append(Problem(f"lines[{i}]", InvalidValue.code, "must be a SourcingLine", line))
                elif line.line_id in seen:
                    problems.append(
                        Problem(f"lines[{i}].line_id", InvalidValue.code, "is listed twice", line.line_id)
                    )
                else:
                    seen.add(line.line_id)
        if not isinstance(self.destination, GeoPoint):
            problems.append(Problem("destination", InvalidValue.code, "must be a GeoPoint", self.destination))
        try:
            check_aware(self.at, "at")
        except InvalidValue as e:
            problems.append(Problem("at", e.code, e.message, self.at))
        if not isinstance(self.policy, SourcingPolicy):
            problems.append(Problem("policy", InvalidValue.code, "must be a SourcingPolicy", self.policy))
        if problems:
            raise ValidationFailed(problems, subject="sourcing request")


def _quantities(value: Mapping[Sku, int]) -> dict[Sku, int]:
    return dict(value)


def _supply(value: Mapping[Sku, tuple[tuple[date, int], ...]]) -> dict[Sku, tuple[tuple[date, int], ...]]:
    return {sku: tuple(sorted((d, q) for d, q in entries)) for sku, entries in value.items()}


@attrs.frozen
class NodeStock:
    """What one node can promise now: ``available`` units per SKU (available-to-promise), ``incoming``
    supply not yet on hand as ``(expected date, units)`` per SKU, the shipments it can still take on its
    next dispatch day (``capacity_left``; None for no limit) and whether it is ``online``."""

    node: FulfilmentNode
    available: dict[Sku, int] = attrs.field(factory=dict, converter=_quantities, hash=False)
    incoming: dict[Sku, tuple[tuple[date, int], ...]] = attrs.field(
        factory=dict, converter=_supply, hash=False
    )
    capacity_left: int | None = None
    online: bool = True

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not isinstance(self.node, FulfilmentNode):
            problems.append(Problem("node", InvalidValue.code, "must be a FulfilmentNode", self.node))
        for sku, qty in self.available.items():
            if not isinstance(sku, Sku):
                problems.append(Problem("available", InvalidValue.code, "keys must be Sku", sku))
            try:
                check_quantity(qty, f"available[{sku}]", allow_zero=True)
            except InvalidValue as e:
                problems.append(Problem(f"available[{sku}]", e.code, e.message, qty))
        for sku, entries in self.incoming.items():
            for d, q in entries:
                if type(d) is not date or isinstance(q, bool) or not isinstance(q, int) or q < 1:
                    problems.append(
                        Problem(
                            f"incoming[{sku}]", InvalidValue.code, "must be (date, units >= 1) pairs", (d, q)
                        )
                    )
        cap = self.capacity_left
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            problems.append(
                Problem("capacity_left", InvalidValue.code, "must be a whole number >= 0 or None", cap)
            )
        if not isinstance(self.online, bool):
            problems.append(Problem("online", InvalidValue.code, "must be true or false", self.online))
        if problems:
            raise ValidationFailed(problems, subject="node stock")

    @property
    def node_id(self) -> str:
        return self.node.node_id

    @classmethod
    def trusted(
        cls,
        node: FulfilmentNode,
        available: dict[Sku, int],
        incoming: dict[Sku, tuple[tuple[date, int], ...]],
        capacity_left: int | None = None,
        online: bool = True,
    ) -> NodeStock:
        """A node stock from figures that are valid by construction (units >= 0 from stock positions,
        supply sorted by date with units >= 1, a capacity >= 0): neither copied nor checked again, which
        matters when every order builds one per node. The dictionaries become the value's own."""
        stock: NodeStock = object.__new__(cls)
        object.__setattr__(stock, "node", node)
        object.__setattr__(stock, "available", available)
        object.__setattr__(stock, "incoming", incoming)
        object.__setattr__(stock, "capacity_left", capacity_left)
        object.__setattr__(stock, "online", online)
        return stock


class RejectReason(enum.Enum):
    """Why a node did not ship (part of) an order."""

    EXCLUDED = "excluded"
    """The policy excludes it."""
    OFFLINE = "offline"
    CANNOT_SHIP = "cannot_ship"
    """It does not ship parcels (or does not offer pickup, for a pickup order)."""
    NOT_PICKUP_NODE = "not_pickup_node"
    """The customer collects elsewhere."""
    NO_STOCK = "no_stock"
    """It holds none of the order's SKUs."""
    NO_CAPACITY = "no_capacity"
    OUT_OF_RANGE = "out_of_range"
    """The destination is beyond its last shipping zone."""
    TOO_LATE = "too_late"
    """It cannot deliver by the requested date."""
    NOT_PREFERRED = "not_preferred"
    """The preferred nodes could fill the order alone."""
    DOMINATED = "dominated"
    """A cheaper node can fill everything it could."""
    INCOMPLETE = "incomplete"
    """It cannot fill the order alone, and the order ships complete."""
    COSTLIER = "costlier"
    """Plans using it cost more than the chosen one."""
    SHIPMENT_LIMIT = "shipment_limit"
    """Using it would need more shipments than the policy allows."""
    NOT_NEEDED = "not_needed"
    """The chosen nodes already fill what it could (greedy strategies)."""


@attrs.frozen
class Rejection:
    """One node that lost, and why (``detail`` gives the numbers)."""

    node_id: str
    reason: RejectReason
    detail: str = ""


@attrs.frozen
class PlannedShipment:
    """Units of lines that ``node_id`` ships (or hands over, for pickup), what that costs, and when."""

    node_id: str
    lines: tuple[tuple[str, int], ...]
    cost: Money
    distance_km: float
    dispatch_on: date
    deliver_on: date

    @property
    def units(self) -> int:
        return sum(q for _, q in self.lines)


@attrs.frozen
class PlannedBackorder:
    """Units of a line that wait for supply: against incoming supply at ``node_id`` expected on
    ``expected_on`` (a pre-order), or with no known supply (both None)."""

    line_id: str
    quantity: int
    node_id: str | None = None
    expected_on: date | None = None


@attrs.frozen
class SourcingPlan:
    """Where each unit of an order comes from, and why.

    ``optimal`` is True when the strategy proved no cheaper plan exists under the policy (False when it
    did not, or could not within its budget). ``notes`` explain the choice in sentences; ``rejected`` lists
    every candidate node that lost, with its reason.
    """

    order_ref: str
    strategy: str
    shipments: tuple[PlannedShipment, ...]
    backorders: tuple[PlannedBackorder, ...]
    cost: Money
    rejected: tuple[Rejection, ...] = ()
    notes: tuple[str, ...] = ()
    optimal: bool = False
    steps: int = 0

    @property
    def node_ids(self) -> tuple[str, ...]:
        return tuple(s.node_id for s in self.shipments)

    def allocated(self, line_id: str) -> int:
        """Units of ``line_id`` that ship now."""
        return sum(q for s in self.shipments for lid, q in s.lines if lid == line_id)

    def backordered(self, line_id: str) -> int:
        return sum(b.quantity for b in self.backorders if b.line_id == line_id)

    def explain(self) -> str:
        """The plan in a few readable lines: what ships from where at what cost, what waits, who lost."""
        out = [
            f"plan for {self.order_ref} by {self.strategy}: cost {self.cost}"
            + (" (proved optimal)" if self.optimal else "")
        ]
        for s in self.shipments:
            items = ", ".join(f"{lid} x{q}" for lid, q in s.lines)
            out.append(
                f"  ship from {s.node_id} ({s.distance_km:.0f} km, {s.cost}): {items};"
                f" dispatch {s.dispatch_on}, delivery {s.deliver_on}"
            )
        for b in self.backorders:
            when = f"expected {b.expected_on} at {b.node_id}" if b.expected_on else "no supply known"
            out.append(f"  wait: {b.line_id} x{b.quantity} ({when})")
        out.extend(f"  {n}" for n in self.notes)
        for r in self.rejected:
            out.append(f"  not {r.node_id}: {r.reason.value}" + (f" ({r.detail})" if r.detail else ""))
        return "\n".join(out)


class SourcingStrategy(Protocol):
    """Chooses nodes for a request. ``name`` appears in plans; ``plan`` must be deterministic: the same
    request and stock give the same plan whatever order nodes and lines are listed in."""

    @property
    def name(self) -> str: ...

    def plan(self, request: SourcingRequest, stock: NetworkStock) -> SourcingPlan: ...
