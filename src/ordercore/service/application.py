"""The application object: what a developer builds with :func:`ordercore.bootstrap` and talks to."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Self

from ordercore.events import OrderEvent
from ordercore.lifecycle import Lifecycle, State
from ordercore.order import Order
from ordercore.ports import Clock, Store
from ordercore.service.commands import Command
from ordercore.service.handlers import CommandResult, Services
from ordercore.service.messagebus import EventHandler, HandlerFailure, MessageBus
from ordercore.values import OrderId

__all__ = ["OrderCore"]


class OrderCore:
    """Commands in (:meth:`handle`), orders and their history out. Close it (or use ``with``) when done."""

    def __init__(self, store: Store, bus: MessageBus) -> None:
        self.store = store
        self.bus = bus

    @property
    def services(self) -> Services:
        return self.bus.services

    @property
    def lifecycle(self) -> Lifecycle:
        return self.bus.services.lifecycle

    @property
    def clock(self) -> Clock:
        return self.bus.services.clock

    def handle(self, command: Command) -> CommandResult:
        """Carry out a command; see :class:`~ordercore.service.messagebus.MessageBus` for what follows."""
        return self.bus.handle(command)

    def get_order(self, order_id: OrderId | str) -> Order:
        """The order as last committed (OrderNotFound if there is none)."""
        with self.store.unit_of_work() as uow:
            return uow.orders.get(OrderId.parse(order_id))

    def history(self, order_id: OrderId | str) -> list[OrderEvent]:
        return list(self.get_order(order_id).history)

    def list_orders(
        self, *, status: State | None = None, after: OrderId | None = None, limit: int = 100
    ) -> list[OrderId]:
        with self.store.unit_of_work() as uow:
            return uow.orders.list_ids(status=status, after=after, limit=limit)

    def subscribe(self, event_type: type[OrderEvent], handler: EventHandler) -> None:
        self.bus.subscribe(event_type, handler)

    def relay_outbox(self) -> int:
        return self.bus.relay_outbox()

    @property
    def failures(self) -> Sequence[HandlerFailure]:
        return tuple(self.bus.failures)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
