"""Commands: what callers ask the application to do. Plain frozen values; handlers carry them out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import attrs

from ordercore.errors import InvalidValue
from ordercore.inventory import Supply
from ordercore.lifecycle import Trigger
from ordercore.lines import Adjustment, NewLine, TaxLine, adjustments, charges, new_lines, shipping_taxes
from ordercore.order import UnitsByLine
from ordercore.sourcing.batch import Fairness
from ordercore.sourcing.model import SourcingPolicy
from ordercore.values import Actor, Address, Channel, CustomerRef, LineId, OrderId, Sku

__all__ = [
    "AcceptOrder",
    "AllocateLines",
    "BackorderLines",
    "CancelLines",
    "CancelOrder",
    "CancelSupply",
    "ChangeLineQuantity",
    "ChangeShippingAddress",
    "Command",
    "CompleteOrder",
    "CountStock",
    "ExpectSupply",
    "FireTrigger",
    "HoldOrder",
    "OrderCommand",
    "PlaceOrder",
    "RecordDelivery",
    "RecordReturn",
    "RecordShipment",
    "ReceiveStock",
    "RejectOrder",
    "ReevaluateOrder",
    "ReleaseHold",
    "ReleaseReservation",
    "ReleaseToFulfilment",
    "ReportShortPick",
    "ReserveStock",
    "ResourceOrder",
    "SetNodeOnline",
    "SetSafetyStock",
    "SourceOrder",
    "SourceWave",
    "StockCommand",
]

_API = Actor.system("api")


# converters: commands accept identifiers as objects or as their string form
def _order_id(value: OrderId | str) -> OrderId:
    return OrderId.parse(value)


def _optional_order_id(value: OrderId | str | None) -> OrderId | None:
    return None if value is None else OrderId.parse(value)


def _line_id(value: LineId | str) -> LineId:
    return LineId.parse(value)


def _order_ids(value: object) -> tuple[OrderId, ...]:
    if isinstance(value, str | OrderId) or not isinstance(value, Iterable):
        raise InvalidValue("must be a collection of order ids", field="order_ids", value=value)
    return tuple(OrderId.parse(v) for v in value)


def _priorities(value: Mapping[OrderId | str, int]) -> dict[OrderId, int]:
    if not isinstance(value, Mapping):
        raise InvalidValue("must map order ids to priorities", field="priorities", value=value)
    return {OrderId.parse(k): v for k, v in value.items()}


def _unit_map(value: UnitsByLine) -> dict[LineId, int]:
    """Units by line: keys may be line ids or their string form; they are kept as line ids."""
    if not isinstance(value, Mapping):
        raise InvalidValue("must map line ids to quantities", field="lines", value=value)
    return {LineId.parse(k): v for k, v in value.items()}


def _optional_unit_map(value: UnitsByLine | None) -> dict[LineId, int] | None:
    return None if value is None else _unit_map(value)


# validators: a wrong type is refused when the command is built, naming the field
def _bool(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not True and value is not False:
        raise InvalidValue(
            f"must be True or False, not {type(value).__name__}", field=attribute.name, value=value
        )


def _optional_bool(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _bool(instance, attribute, value)


def _version(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidValue(
            "must be a whole number of 0 or more (the version read), or None",
            field=attribute.name,
            value=value,
        )


def _strategy(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidValue(
            f"must be the name of a sourcing strategy (a string), not {type(value).__name__}",
            field=attribute.name,
            value=value,
        )


@attrs.frozen(kw_only=True)
class Command:
    """Base of every command: who asks, and why."""

    actor: Actor = _API
    reason: str = ""


@attrs.frozen(kw_only=True)
class PlaceOrder(Command):
    """Take an order from a channel. With ``external_ref``, a retry with the same payload returns the same
    order; the same reference with a different payload is refused (DuplicateOrder). With
    ``idempotency_key``, likewise for the key, whatever the channel: the store records the key with the
    order, and the same key with a different payload is refused (IdempotencyConflict)."""

    channel: Channel
    customer: CustomerRef
    currency: str
    shipping_address: Address
    lines: tuple[NewLine, ...] = attrs.field(converter=new_lines)
    order_id: OrderId | None = attrs.field(default=None, converter=_optional_order_id)
    external_ref: str | None = None
    billing_address: Address | None = None
    discounts: tuple[Adjustment, ...] = attrs.field(default=(), converter=adjustments)
    shipping_charges: tuple[Adjustment, ...] = attrs.field(default=(), converter=charges)
    shipping_taxes: tuple[TaxLine, ...] = attrs.field(default=(), converter=shipping_taxes)
    service_level: str = "standard"
    requested_delivery_date: date | None = None
    attributes: dict[str, str] = attrs.field(factory=dict, hash=False)
    draft: bool = attrs.field(default=False, validator=_bool)
    idempotency_key: str | None = None


@attrs.frozen(kw_only=True)
class OrderCommand(Command):
    """A command on one existing order. ``expected_version`` makes it fail with ConcurrencyConflict if the
    order changed since the caller read it."""

    order_id: OrderId = attrs.field(converter=_order_id)
    expected_version: int | None = attrs.field(default=None, validator=_version)


@attrs.frozen(kw_only=True)
class AcceptOrder(OrderCommand):
    pass


@attrs.frozen(kw_only=True)
class RejectOrder(OrderCommand):
    code: str = ""


@attrs.frozen(kw_only=True)
class CompleteOrder(OrderCommand):
    pass


@attrs.frozen(kw_only=True)
class FireTrigger(OrderCommand):
    """Fire a manual trigger, such as one of a user-extended lifecycle."""

    trigger: Trigger
    code: str = ""


@attrs.frozen(kw_only=True)
class HoldOrder(OrderCommand):
    code: str
    message: str = ""


@attrs.frozen(kw_only=True)
class ReleaseHold(OrderCommand):
    code: str
    comment: str = ""


@attrs.frozen(kw_only=True)
class ReevaluateOrder(OrderCommand):
    """Run the rule set again on an order not yet accepted: holds that no longer apply are released, new
    ones applied; an order that now passes is accepted. ``reason`` says what changed."""


@attrs.frozen(kw_only=True)
class CancelOrder(OrderCommand):
    pass


@attrs.frozen(kw_only=True)
class CancelLines(OrderCommand):
    lines: dict[LineId, int] = attrs.field(converter=_unit_map, hash=False)


@attrs.frozen(kw_only=True)
class ChangeLineQuantity(OrderCommand):
    line_id: LineId = attrs.field(converter=_line_id)
    quantity: int


@attrs.frozen(kw_only=True)
class ChangeShippingAddress(OrderCommand):
    address: Address


@attrs.frozen(kw_only=True)
class AllocateLines(OrderCommand):
    """Allocate units; ``lines=None`` allocates every open and backordered unit."""

    lines: dict[LineId, int] | None = attrs.field(default=None, converter=_optional_unit_map, hash=False)


@attrs.frozen(kw_only=True)
class BackorderLines(OrderCommand):
    lines: dict[LineId, int] = attrs.field(converter=_unit_map, hash=False)


@attrs.frozen(kw_only=True)
class ReleaseToFulfilment(OrderCommand):
    """Release allocated units to fulfilment; ``lines=None`` releases every allocated unit."""

    lines: dict[LineId, int] | None = attrs.field(default=None, converter=_optional_unit_map, hash=False)


@attrs.frozen(kw_only=True)
class RecordShipment(OrderCommand):
    """Record units leaving in a shipment; ``lines=None`` ships every unit not yet shipped."""

    shipment_id: str
    lines: dict[LineId, int] | None = attrs.field(default=None, converter=_optional_unit_map, hash=False)
    carrier: str = ""
    tracking_number: str = ""
    #: the node the shipment left from, when known: its reservations for these units are consumed
    node_id: str = ""


@attrs.frozen(kw_only=True)
class RecordDelivery(OrderCommand):
    """Record delivery; ``lines=None`` delivers every shipped unit."""

    lines: dict[LineId, int] | None = attrs.field(default=None, converter=_optional_unit_map, hash=False)
    shipment_id: str = ""


@attrs.frozen(kw_only=True)
class RecordReturn(OrderCommand):
    lines: dict[LineId, int] = attrs.field(converter=_unit_map, hash=False)
    return_id: str = ""


@attrs.frozen(kw_only=True)
class SourceOrder(OrderCommand):
    """Source every open and backordered unit: choose nodes with ``strategy`` (the application's default
    when empty) under ``policy`` (the application's policy for the order when None), reserve the stock
    and record the plan with its explanation."""

    strategy: str = attrs.field(default="", validator=_strategy)
    policy: SourcingPolicy | None = None


@attrs.frozen(kw_only=True)
class ResourceOrder(OrderCommand):
    """Take back allocated units not yet released (at ``node_id`` only, when given), release their
    reservations and source them again: after a node went offline, a cancellation, or new stock."""

    node_id: str | None = None
    strategy: str = attrs.field(default="", validator=_strategy)
    policy: SourcingPolicy | None = None


@attrs.frozen(kw_only=True)
class ReportShortPick(OrderCommand):
    """``node_id`` could not pick these units: their reservations are released and, with ``resource``,
    they are sourced again from other nodes."""

    node_id: str
    lines: dict[LineId, int] = attrs.field(converter=_unit_map, hash=False)
    resource: bool = attrs.field(default=True, validator=_bool)


@attrs.frozen(kw_only=True)
class SourceWave(Command):
    """Source a wave of orders together against the same stock (see :func:`ordercore.sourcing.source_wave`):
    no order ships fewer units than it would one by one in ``fairness`` order, and the wave costs as little
    as the search finds. ``priorities`` rank orders under :attr:`Fairness.PRIORITY` (default 0). Orders
    with nothing to source, or that cannot be sourced now (held, say), are left out."""

    order_ids: tuple[OrderId, ...] = attrs.field(converter=_order_ids)
    fairness: Fairness = Fairness.FIRST_COME
    priorities: dict[OrderId, int] = attrs.field(factory=dict, converter=_priorities, hash=False)
    strategy: str = attrs.field(default="", validator=_strategy)
    joint: bool = attrs.field(default=True, validator=_bool)


# -- inventory ------------------------------------------------------------------------------------------------
def _sku(value: Sku | str) -> Sku:
    return value if isinstance(value, Sku) else Sku(value)


@attrs.frozen(kw_only=True)
class SetNodeOnline(Command):
    """Switch a fulfilment node online or offline for every worker of the store (see
    :mod:`ordercore.inventory.status`). Sourcing leaves an offline node out; the units it already holds
    stay there until sourced again (``OrderCore.set_node_online`` does that)."""

    node_id: str
    online: bool = attrs.field(validator=_bool)


@attrs.frozen(kw_only=True)
class StockCommand(Command):
    """A command on the stock of one SKU at one node."""

    node_id: str
    sku: Sku = attrs.field(converter=_sku)


@attrs.frozen(kw_only=True)
class ReceiveStock(StockCommand):
    """Units arrived at the node (against the expected supply ``supply_ref``, when given). The first
    receipt opens the node's position for the SKU."""

    quantity: int
    supply_ref: str | None = None
    backorderable: bool | None = attrs.field(default=None, validator=_optional_bool)


@attrs.frozen(kw_only=True)
class CountStock(StockCommand):
    """A stock count: the node holds ``on_hand`` units."""

    on_hand: int


@attrs.frozen(kw_only=True)
class SetSafetyStock(StockCommand):
    quantity: int


@attrs.frozen(kw_only=True)
class ExpectSupply(StockCommand):
    """A purchase order or transfer is on its way: it counts towards what can be promised from its date."""

    supply: Supply


@attrs.frozen(kw_only=True)
class CancelSupply(StockCommand):
    ref: str


@attrs.frozen(kw_only=True)
class ReserveStock(StockCommand):
    """Hold units for ``reference`` (a cart, say) under ``key``: a soft reservation that lapses at
    ``expires_at``, or a hard one without it. Retrying with the same key is harmless."""

    key: str
    quantity: int
    reference: str
    expires_at: datetime | None = None


@attrs.frozen(kw_only=True)
class ReleaseReservation(StockCommand):
    key: str
    quantity: int | None = None
