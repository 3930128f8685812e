"""Command handlers: load the order, call the domain, commit. No business rules live here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import attrs

from ordercore.errors import ConcurrencyConflict, DuplicateOrder
from ordercore.events import OrderCreated, OrderEvent
from ordercore.lifecycle import Lifecycle
from ordercore.lines import OrderLine
from ordercore.order import Order
from ordercore.ports import (
    Clock,
    CrmGateway,
    ErpGateway,
    IdGenerator,
    Notifier,
    PaymentGateway,
    TaxCalculator,
    TmsGateway,
    UnitOfWork,
    WmsGateway,
)
from ordercore.service import commands as c
from ordercore.values import LineId

__all__ = ["COMMAND_HANDLERS", "CommandResult", "Handler", "Services"]


@attrs.frozen
class Services:
    """What handlers may use besides the unit of work. Integration ports are optional."""

    clock: Clock
    ids: IdGenerator
    lifecycle: Lifecycle
    payment: PaymentGateway | None = None
    erp: ErpGateway | None = None
    wms: WmsGateway | None = None
    tms: TmsGateway | None = None
    crm: CrmGateway | None = None
    tax: TaxCalculator | None = None
    notifier: Notifier | None = None


@attrs.frozen
class CommandResult:
    """The order a command touched, its version afterwards and the events the command recorded."""

    order_id: Any
    version: int
    events: tuple[OrderEvent, ...]

    @property
    def changed(self) -> bool:
        return bool(self.events)


C = TypeVar("C", bound=c.Command)
Handler = Callable[[Any, UnitOfWork, Services], CommandResult]


def place_order(cmd: c.PlaceOrder, uow: UnitOfWork, svc: Services) -> CommandResult:
    if cmd.external_ref is not None:
        existing = uow.orders.find_by_external_ref(cmd.channel, cmd.external_ref)
        if existing is not None:
            if _same_order(existing, cmd):
                return CommandResult(existing.id, existing.version, ())
            raise DuplicateOrder(
                f"{cmd.channel} already sent {cmd.external_ref!r} as order {existing.id} with other content",
                existing_order_id=existing.id,
            )
    at = svc.clock.now()
    order = Order.create(
        order_id=cmd.order_id or svc.ids.new_order_id(),
        channel=cmd.channel,
        customer=cmd.customer,
        currency=cmd.currency,
        shipping_address=cmd.shipping_address,
        lines=cmd.lines,
        actor=cmd.actor,
        at=at,
        billing_address=cmd.billing_address,
        external_ref=cmd.external_ref,
        discounts=cmd.discounts,
        shipping_charges=cmd.shipping_charges,
        shipping_taxes=cmd.shipping_taxes,
        service_level=cmd.service_level,
        requested_delivery_date=cmd.requested_delivery_date,
        attributes=cmd.attributes,
        lifecycle=svc.lifecycle,
        reason=cmd.reason,
    )
    if not cmd.draft:
        order.place(actor=cmd.actor, at=at, reason=cmd.reason)
    events = tuple(order.new_events())
    uow.orders.add(order)
    uow.commit()
    return CommandResult(order.id, order.version, events)


def _same_order(order: Order, cmd: c.PlaceOrder) -> bool:
    """Whether ``cmd`` asks for exactly the order that was created (a retry of the same request)."""
    created = order.history[0]
    assert isinstance(created, OrderCreated)
    lines = tuple(OrderLine.from_new(n, n.line_id or LineId(str(i + 1))) for i, n in enumerate(cmd.lines))
    return (
        created.customer == cmd.customer
        and created.currency == cmd.currency
        and created.shipping_address == cmd.shipping_address
        and created.billing_address == cmd.billing_address
        and created.lines == lines
        and created.discounts == cmd.discounts
        and created.shipping_charges == cmd.shipping_charges
        and created.shipping_taxes == cmd.shipping_taxes
        and created.service_level == cmd.service_level
        and created.requested_delivery_date == cmd.requested_delivery_date
        and created.attributes == cmd.attributes
        and (cmd.order_id is None or cmd.order_id == order.id)
    )


def _on_order(
    change: Callable[[Order, C, datetime], object],
) -> Callable[[C, UnitOfWork, Services], CommandResult]:
    """A handler that loads the order, applies ``change`` and commits if anything happened."""

    def handle(cmd: C, uow: UnitOfWork, svc: Services) -> CommandResult:
        assert isinstance(cmd, c.OrderCommand)
        order = uow.orders.get(cmd.order_id)
        if cmd.expected_version is not None and cmd.expected_version != order.version:
            raise ConcurrencyConflict(order.id, cmd.expected_version, order.version)
        before = order.version
        change(order, cmd, svc.clock.now())
        events = tuple(order.history[before:])
        if events:
            uow.orders.save(order)
            uow.commit()
        return CommandResult(order.id, order.version, events)

    handle.__name__ = getattr(change, "__name__", "handle")
    return handle


def _accept(o: Order, cmd: c.AcceptOrder, at: datetime) -> object:
    return o.accept(actor=cmd.actor, at=at, reason=cmd.reason)


def _reject(o: Order, cmd: c.RejectOrder, at: datetime) -> object:
    return o.reject(actor=cmd.actor, at=at, reason=cmd.reason, code=cmd.code)


def _complete(o: Order, cmd: c.CompleteOrder, at: datetime) -> object:
    return o.complete(actor=cmd.actor, at=at, reason=cmd.reason)


def _fire(o: Order, cmd: c.FireTrigger, at: datetime) -> object:
    return o.fire(cmd.trigger, actor=cmd.actor, at=at, reason=cmd.reason, code=cmd.code)


def _hold(o: Order, cmd: c.HoldOrder, at: datetime) -> object:
    return o.hold(cmd.code, actor=cmd.actor, at=at, message=cmd.message or cmd.reason)


def _release_hold(o: Order, cmd: c.ReleaseHold, at: datetime) -> object:
    return o.release_hold(cmd.code, actor=cmd.actor, at=at, comment=cmd.comment or cmd.reason)


def _cancel(o: Order, cmd: c.CancelOrder, at: datetime) -> object:
    return o.cancel(actor=cmd.actor, at=at, reason=cmd.reason)


def _cancel_lines(o: Order, cmd: c.CancelLines, at: datetime) -> object:
    return o.cancel_lines(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _change_quantity(o: Order, cmd: c.ChangeLineQuantity, at: datetime) -> object:
    return o.change_line_quantity(cmd.line_id, cmd.quantity, actor=cmd.actor, at=at, reason=cmd.reason)


def _change_address(o: Order, cmd: c.ChangeShippingAddress, at: datetime) -> object:
    return o.change_shipping_address(cmd.address, actor=cmd.actor, at=at, reason=cmd.reason)


def _allocate(o: Order, cmd: c.AllocateLines, at: datetime) -> object:
    return o.allocate(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _backorder(o: Order, cmd: c.BackorderLines, at: datetime) -> object:
    return o.backorder(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _release(o: Order, cmd: c.ReleaseToFulfilment, at: datetime) -> object:
    return o.release(cmd.lines, actor=cmd.actor, at=at, reason=cmd.reason)


def _ship(o: Order, cmd: c.RecordShipment, at: datetime) -> object:
    return o.ship(
        cmd.lines,
        shipment_id=cmd.shipment_id,
        actor=cmd.actor,
        at=at,
        carrier=cmd.carrier,
        tracking_number=cmd.tracking_number,
        reason=cmd.reason,
    )


def _deliver(o: Order, cmd: c.RecordDelivery, at: datetime) -> object:
    return o.deliver(cmd.lines, actor=cmd.actor, at=at, shipment_id=cmd.shipment_id, reason=cmd.reason)


def _return(o: Order, cmd: c.RecordReturn, at: datetime) -> object:
    return o.record_return(cmd.lines, actor=cmd.actor, at=at, return_id=cmd.return_id, reason=cmd.reason)


#: The built-in command handlers, by command type.
COMMAND_HANDLERS: dict[type[c.Command], Handler] = {
    c.PlaceOrder: place_order,
    c.AcceptOrder: _on_order(_accept),
    c.RejectOrder: _on_order(_reject),
    c.CompleteOrder: _on_order(_complete),
    c.FireTrigger: _on_order(_fire),
    c.HoldOrder: _on_order(_hold),
    c.ReleaseHold: _on_order(_release_hold),
    c.CancelOrder: _on_order(_cancel),
    c.CancelLines: _on_order(_cancel_lines),
    c.ChangeLineQuantity: _on_order(_change_quantity),
    c.ChangeShippingAddress: _on_order(_change_address),
    c.AllocateLines: _on_order(_allocate),
    c.BackorderLines: _on_order(_backorder),
    c.ReleaseToFulfilment: _on_order(_release),
    c.RecordShipment: _on_order(_ship),
    c.RecordDelivery: _on_order(_deliver),
    c.RecordReturn: _on_order(_return),
}
