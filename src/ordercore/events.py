"""Domain events: every change to an order is one of these, kept as the order's history.

Each event says who (``actor``), when (``occurred_at``, timezone-aware), why (``reason``) and what status the
order was in afterwards (``status``). An event is a fact: replaying an order's history rebuilds the order
exactly (:meth:`ordercore.Order.replay`), whatever the lifecycle says today.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

import attrs

from ordercore.lifecycle import State, Trigger
from ordercore.lines import Adjustment, OrderLine, TaxLine, frozen_attributes
from ordercore.money import Money
from ordercore.values import Actor, Address, Channel, CustomerRef, LineId, OrderId

__all__ = [
    "AllocationWithdrawn",
    "DeliveryRecorded",
    "EVENT_TYPES",
    "HoldApplied",
    "HoldReleased",
    "LineQty",
    "LineQuantityChanged",
    "LinesEvent",
    "LinesAllocated",
    "LinesBackordered",
    "LinesCancelled",
    "LinesReleased",
    "NodeAllocation",
    "NodeRejected",
    "OrderCancelled",
    "OrderCreated",
    "OrderEvent",
    "ReturnRecorded",
    "RuleVerdict",
    "RulesEvaluated",
    "ShipmentRecorded",
    "ShippingAddressChanged",
    "SourcingPlanned",
    "StatusChanged",
    "WaitingUnits",
]


class LineQty(NamedTuple):
    """A number of units of one line. A named tuple: every quantity move makes one per line."""

    line_id: LineId
    quantity: int


@attrs.frozen
class OrderEvent:
    """Base of every order event."""

    order_id: OrderId
    sequence: int
    occurred_at: datetime
    actor: Actor
    status: State
    reason: str

    @property
    def event_id(self) -> str:
        """Unique across all orders: the order id and the event's sequence number in that order."""
        return f"{self.order_id.value}#{self.sequence}"

    @property
    def type(self) -> str:
        return type(self).__name__


@attrs.frozen
class OrderCreated(OrderEvent):
    channel: Channel
    external_ref: str | None
    customer: CustomerRef
    currency: str
    shipping_address: Address
    billing_address: Address | None
    lines: tuple[OrderLine, ...]
    discounts: tuple[Adjustment, ...]
    shipping_charges: tuple[Adjustment, ...]
    shipping_taxes: tuple[TaxLine, ...]
    service_level: str
    requested_delivery_date: date | None
    #: a :class:`~ordercore.lines.FrozenAttributes`: events are immutable, and shared by the order's copies
    attributes: dict[str, str] = attrs.field(hash=False, converter=frozen_attributes)


@attrs.frozen
class StatusChanged(OrderEvent):
    """A decision moved the order (place, accept, reject, complete, or a user-defined trigger)."""

    trigger: Trigger
    previous: State
    code: str = ""


@attrs.frozen
class HoldApplied(OrderEvent):
    code: str
    message: str = ""


@attrs.frozen
class HoldReleased(OrderEvent):
    code: str
    comment: str = ""


@attrs.frozen
class LinesEvent(OrderEvent):
    """Base of the events that move units of lines between buckets (subscribe to it for all of them)."""

    lines: tuple[LineQty, ...]


@attrs.frozen
class LinesAllocated(LinesEvent):
    pass


@attrs.frozen
class LinesBackordered(LinesEvent):
    pass


@attrs.frozen
class LinesReleased(LinesEvent):
    """Units handed to fulfilment (a warehouse or store)."""


@attrs.frozen
class ShipmentRecorded(LinesEvent):
    """Units left a node (``node_id``, when known) in a shipment."""

    shipment_id: str
    carrier: str = ""
    tracking_number: str = ""
    node_id: str = ""


@attrs.frozen
class DeliveryRecorded(LinesEvent):
    shipment_id: str = ""


@attrs.frozen
class ReturnRecorded(LinesEvent):
    return_id: str = ""


@attrs.frozen
class LinesCancelled(LinesEvent):
    pass


@attrs.frozen
class OrderCancelled(LinesEvent):
    """The whole order was cancelled; ``lines`` are the units that were cancelled by it."""


class NodeAllocation(NamedTuple):
    """``quantity`` units of a line sourced at ``node_id``, held there by the stock reservation ``key``, to
    leave on ``dispatch_on`` (the day whose shipment capacity the order takes at the node)."""

    line_id: LineId
    node_id: str
    quantity: int
    key: str
    dispatch_on: date | None = None


class WaitingUnits(NamedTuple):
    """Units of a line that wait for supply: expected at ``node_id`` on ``expected_on`` (a pre-order), or
    with no known supply (both None)."""

    line_id: LineId
    quantity: int
    node_id: str | None = None
    expected_on: date | None = None


class NodeRejected(NamedTuple):
    """A node a sourcing plan did not use, and why (``reason`` is a :class:`ordercore.sourcing.RejectReason`
    value)."""

    node_id: str
    reason: str
    detail: str = ""


@attrs.frozen
class SourcingPlanned(OrderEvent):
    """A sourcing plan for every unit that was open or backordered: ``allocations`` ship from nodes (their
    units become allocated), ``waiting`` units are backordered. The plan's cost, the strategy, whether it
    was proved optimal, its notes and the nodes that lost are kept to explain the decision later."""

    strategy: str
    allocations: tuple[NodeAllocation, ...]
    waiting: tuple[WaitingUnits, ...]
    cost: Money
    optimal: bool = False
    notes: tuple[str, ...] = ()
    rejected: tuple[NodeRejected, ...] = ()


@attrs.frozen
class AllocationWithdrawn(LinesEvent):
    """Allocated (or released) units at ``node_id`` went back to open: the node short-picked
    (``code`` "short_pick"), went offline ("node_offline"), or the order is being sourced again
    ("resourcing")."""

    node_id: str
    code: str


@attrs.frozen
class RuleVerdict:
    """What one rule said about an order: whether it ``matched``, the ``outcome`` it carries ("accept",
    "hold", "reject"), its reason ``code`` and rendered ``message``, and the ``inputs`` it saw (path, value
    as text). ``error`` says why a rule could not be evaluated; ``skipped`` why it was not evaluated."""

    rule_id: str
    stage: str
    matched: bool
    outcome: str
    code: str = ""
    message: str = ""
    inputs: tuple[tuple[str, str], ...] = ()
    error: str = ""
    skipped: str = ""


@attrs.frozen
class RulesEvaluated(OrderEvent):
    """A rule set decided about the order: ``decision`` is "accept", "hold" or "reject"; ``verdicts`` has one
    entry per rule in the set, in evaluation order. ``reason`` says what prompted the evaluation."""

    rule_set: str
    rule_set_version: str
    decision: str
    verdicts: tuple[RuleVerdict, ...]


@attrs.frozen
class LineQuantityChanged(OrderEvent):
    line_id: LineId
    quantity: int
    previous: int
    discounts: tuple[Adjustment, ...]
    taxes: tuple[TaxLine, ...]


@attrs.frozen
class ShippingAddressChanged(OrderEvent):
    address: Address
    previous: Address


#: Every built-in event type by name (for serialization).
EVENT_TYPES: dict[str, type[OrderEvent]] = {
    cls.__name__: cls
    for cls in (
        OrderCreated,
        StatusChanged,
        HoldApplied,
        HoldReleased,
        LinesAllocated,
        LinesBackordered,
        LinesReleased,
        ShipmentRecorded,
        DeliveryRecorded,
        ReturnRecorded,
        LinesCancelled,
        OrderCancelled,
        LineQuantityChanged,
        ShippingAddressChanged,
        SourcingPlanned,
        AllocationWithdrawn,
        RulesEvaluated,
    )
}
