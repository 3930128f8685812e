"""Inventory command handlers: load the stock position, call it, commit. The position checks everything."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from ordercore.errors import InvalidValue, ReservationConflict, StockNotFound
from ordercore.inventory import ReservationKind, StockPosition, check_node_id
from ordercore.order import Order
from ordercore.ports import UnitOfWork
from ordercore.service import commands as c
from ordercore.service.handlers import CommandResult, Handler, Services
from ordercore.values import OrderId

__all__ = ["INVENTORY_HANDLERS"]

S = TypeVar("S", bound=c.StockCommand)


def _load(
    cmd: c.StockCommand, uow: UnitOfWork, svc: Services, *, create: bool, at: datetime
) -> StockPosition:
    if svc.network is not None:
        svc.network.get(cmd.node_id)  # UnknownNode for a node outside the network
    position = uow.inventory.get(cmd.node_id, cmd.sku)
    if position is not None:
        return position
    if not create:
        raise StockNotFound(cmd.node_id, cmd.sku)
    backorderable = bool(getattr(cmd, "backorderable", False))
    return StockPosition.open(cmd.node_id, cmd.sku, at=at, backorderable=backorderable, reason=cmd.reason)


def _on_stock(
    change: Callable[[StockPosition, S, datetime], object],
    *,
    create: bool = False,
    guard: Callable[[StockPosition, S, UnitOfWork], None] | None = None,
) -> Callable[[S, UnitOfWork, Services], CommandResult]:
    """The handler that loads the command's position (opened when ``create``), lets ``guard`` refuse the
    command with what else the unit holds, applies ``change``, and commits what it recorded."""

    def handle(cmd: S, uow: UnitOfWork, svc: Services) -> CommandResult:
        at = svc.clock.now()
        position = _load(cmd, uow, svc, create=create, at=at)
        if guard is not None:
            guard(position, cmd, uow)
        change(position, cmd, at)
        if position.new_entries():
            uow.inventory.save(position)
            uow.commit()
        return CommandResult(f"{position.node_id}/{position.sku}", position.version, ())

    handle.__name__ = getattr(change, "__name__", "handle")
    return handle


def _receive(p: StockPosition, cmd: c.ReceiveStock, at: datetime) -> object:
    p.receive(cmd.quantity, at=at, reason=cmd.reason, supply_ref=cmd.supply_ref)
    return None


def _count(p: StockPosition, cmd: c.CountStock, at: datetime) -> object:
    p.adjust(cmd.on_hand, at=at, reason=cmd.reason or "stock count")
    return None


def _safety(p: StockPosition, cmd: c.SetSafetyStock, at: datetime) -> object:
    p.set_safety_stock(cmd.quantity, at=at, reason=cmd.reason)
    return None


def _expect(p: StockPosition, cmd: c.ExpectSupply, at: datetime) -> object:
    p.expect(cmd.supply, at=at, reason=cmd.reason)
    return None


def _cancel_supply(p: StockPosition, cmd: c.CancelSupply, at: datetime) -> object:
    p.cancel_supply(cmd.ref, at=at, reason=cmd.reason or "cancelled")
    return None


def _reserve(p: StockPosition, cmd: c.ReserveStock, at: datetime) -> object:
    return p.reserve(
        cmd.key,
        cmd.quantity,
        reference=cmd.reference,
        at=at,
        hard=cmd.expires_at is None,
        expires_at=cmd.expires_at,
        reason=cmd.reason,
    )


def _release(p: StockPosition, cmd: c.ReleaseReservation, at: datetime) -> object:
    return p.release(cmd.key, cmd.quantity, at=at, reason=cmd.reason or "released")


def _not_allocated(p: StockPosition, cmd: c.ReleaseReservation, uow: UnitOfWork) -> None:
    """Refuse to release an order's hard reservation while the order still allocates it: the order would
    keep an allocation its stock no longer backs, and the units would be sourced to another order too.
    Cancel the order's lines, or re-source it, instead (both release what they no longer need). A cart's,
    a quote's, or a hard reservation of your own is released as asked."""
    held = p.reservations.get(cmd.key) if isinstance(cmd.key, str) else None
    if held is None or held.kind is not ReservationKind.HARD:
        return
    order = _order_of(held.reference, uow)
    if order is not None and any(a.key == held.key for a in order.allocations):
        raise ReservationConflict(
            f"reservation {held.key!r} at {p.node_id} holds {held.quantity} units allocated to"
            f" order {order.id}; cancel its lines or re-source it to release them",
            key=held.key,
        )


def _order_of(reference: str, uow: UnitOfWork) -> Order | None:
    """The stored order ``reference`` names, if it is an order's id."""
    try:
        order_id = OrderId(reference)
    except InvalidValue:  # a cart's or a quote's reference: no order
        return None
    return uow.orders.find(order_id)


def set_node_online(cmd: c.SetNodeOnline, uow: UnitOfWork, svc: Services) -> CommandResult:
    """Stage the node's new state and commit it when it changes anything; the result carries the node id
    and the version of the node states after the command."""
    if svc.network is not None:
        svc.network.get(cmd.node_id)  # UnknownNode for a node outside the network
    check_node_id(cmd.node_id)
    version = uow.nodes.current().version
    if uow.nodes.set_online(cmd.node_id, cmd.online, actor=cmd.actor, at=svc.clock.now(), reason=cmd.reason):
        uow.commit()
        version += 1
    return CommandResult(cmd.node_id, version, ())


#: Handlers of the inventory commands, by command type.
INVENTORY_HANDLERS: dict[type[c.Command], Handler] = {
    c.ReceiveStock: _on_stock(_receive, create=True),
    c.CountStock: _on_stock(_count, create=True),
    c.SetSafetyStock: _on_stock(_safety, create=True),
    c.ExpectSupply: _on_stock(_expect, create=True),
    c.CancelSupply: _on_stock(_cancel_supply),
    c.ReserveStock: _on_stock(_reserve),
    c.ReleaseReservation: _on_stock(_release, guard=_not_allocated),
    c.SetNodeOnline: set_node_online,
}
