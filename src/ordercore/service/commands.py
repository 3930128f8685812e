"""Commands: what callers ask the application to do. Plain frozen values; handlers carry them out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import attrs

from ordercore.errors import InvalidValue
from ordercore.lifecycle import Trigger
from ordercore.lines import Adjustment, NewLine, TaxLine, adjustments, new_lines, tax_lines
from ordercore.order import UnitsByLine
from ordercore.values import Actor, Address, Channel, CustomerRef, LineId, OrderId

__all__ = [
    "AcceptOrder",
    "AllocateLines",
    "BackorderLines",
    "CancelLines",
    "CancelOrder",
    "ChangeLineQuantity",
    "ChangeShippingAddress",
    "Command",
    "CompleteOrder",
    "FireTrigger",
    "HoldOrder",
    "OrderCommand",
    "PlaceOrder",
    "RecordDelivery",
    "RecordReturn",
    "RecordShipment",
    "RejectOrder",
    "ReleaseHold",
    "ReleaseToFulfilment",
]

_API = Actor.system("api")


# converters: commands accept identifiers as objects or as their string form
def _order_id(value: OrderId | str) -> OrderId:
    return OrderId.parse(value)


def _optional_order_id(value: OrderId | str | None) -> OrderId | None:
    return None if value is None else OrderId.parse(value)


def _line_id(value: LineId | str) -> LineId:
    return LineId.parse(value)


def _unit_map(value: UnitsByLine) -> dict[LineId, int]:
    """Units by line: keys may be line ids or their string form; they are kept as line ids."""
    if not isinstance(value, Mapping):
        raise InvalidValue("must map line ids to quantities", field="lines", value=value)
    return {LineId.parse(k): v for k, v in value.items()}


def _optional_unit_map(value: UnitsByLine | None) -> dict[LineId, int] | None:
    return None if value is None else _unit_map(value)


@attrs.frozen(kw_only=True)
class Command:
    """Base of every command: who asks, and why."""

    actor: Actor = _API
    reason: str = ""


@attrs.frozen(kw_only=True)
class PlaceOrder(Command):
    """Take an order from a channel. With ``external_ref``, a retry with the same payload returns the same
    order; the same reference with a different payload is refused (DuplicateOrder)."""

    channel: Channel
    customer: CustomerRef
    currency: str
    shipping_address: Address
    lines: tuple[NewLine, ...] = attrs.field(converter=new_lines)
    order_id: OrderId | None = attrs.field(default=None, converter=_optional_order_id)
    external_ref: str | None = None
    billing_address: Address | None = None
    discounts: tuple[Adjustment, ...] = attrs.field(default=(), converter=adjustments)
    shipping_charges: tuple[Adjustment, ...] = attrs.field(default=(), converter=adjustments)
    shipping_taxes: tuple[TaxLine, ...] = attrs.field(default=(), converter=tax_lines)
    service_level: str = "standard"
    requested_delivery_date: date | None = None
    attributes: dict[str, str] = attrs.field(factory=dict, hash=False)
    draft: bool = False


@attrs.frozen(kw_only=True)
class OrderCommand(Command):
    """A command on one existing order. ``expected_version`` makes it fail with ConcurrencyConflict if the
    order changed since the caller read it."""

    order_id: OrderId = attrs.field(converter=_order_id)
    expected_version: int | None = None


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


@attrs.frozen(kw_only=True)
class RecordDelivery(OrderCommand):
    """Record delivery; ``lines=None`` delivers every shipped unit."""

    lines: dict[LineId, int] | None = attrs.field(default=None, converter=_optional_unit_map, hash=False)
    shipment_id: str = ""


@attrs.frozen(kw_only=True)
class RecordReturn(OrderCommand):
    lines: dict[LineId, int] = attrs.field(converter=_unit_map, hash=False)
    return_id: str = ""
