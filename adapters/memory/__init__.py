"""In-memory store: complete, thread-safe adapters for every storage port.

It is the default store (``memory://``) for tests and quick starts, not a fake: units of work are isolated
(a repository hands out copies), commits are atomic and checked for concurrent changes, and events go to
an outbox in the same commit as the state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import attrs

from ordercore.errors import (
    ConcurrencyConflict,
    DuplicateOrder,
    InvalidValue,
    OrderNotFound,
    StoreUnavailable,
)
from ordercore.events import OrderEvent
from ordercore.inventory import StockLevel
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle, State
from ordercore.order import Order
from ordercore.ports import OutboxRecord
from ordercore.values import Channel, OrderId, Sku

__all__ = ["MemoryStore", "MemoryUnitOfWork", "open_store"]


@attrs.define
class _OutboxEntry:
    position: int
    event: OrderEvent
    published: bool = False


class MemoryStore:
    """Committed state, shared by the units of work it hands out."""

    def __init__(self, lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> None:
        self.lifecycle = lifecycle
        self.lock = threading.RLock()
        self.orders: dict[OrderId, Order] = {}
        self.external_refs: dict[tuple[Channel, str], OrderId] = {}
        self.stock: dict[tuple[str, Sku], StockLevel] = {}
        self.outbox: list[_OutboxEntry] = []
        self.outbox_index: dict[str, _OutboxEntry] = {}
        self.outbox_position = 0
        self.closed = False

    def unit_of_work(self) -> MemoryUnitOfWork:
        if self.closed:
            raise StoreUnavailable("the store memory:// is closed")
        return MemoryUnitOfWork(self)

    def close(self) -> None:
        self.closed = True


def open_store(url: str, *, lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> MemoryStore:
    """Entry point for ``memory://`` URLs: a new, empty store."""
    return MemoryStore(lifecycle)


class MemoryOrderRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.staged: dict[OrderId, Order] = {}
        self.new: set[OrderId] = set()

    def add(self, order: Order) -> None:
        if not isinstance(order, Order):
            raise InvalidValue("must be an Order", field="order", value=order)
        if order.id in self.staged or order.id in self._store.orders:
            raise DuplicateOrder(f"order {order.id} already exists", existing_order_id=order.id)
        if order.external_ref is not None and self.find_by_external_ref(order.channel, order.external_ref):
            raise DuplicateOrder(f"{order.channel} already sent {order.external_ref!r}")
        self.staged[order.id] = order
        self.new.add(order.id)

    def get(self, order_id: OrderId) -> Order:
        order = self.find(order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def find(self, order_id: OrderId) -> Order | None:
        staged = self.staged.get(order_id)
        if staged is not None:
            return staged
        with self._store.lock:
            committed = self._store.orders.get(order_id)
        if committed is None:
            return None
        copy = committed.clone()
        self.staged[order_id] = copy
        return copy

    def find_by_external_ref(self, channel: Channel, external_ref: str) -> Order | None:
        for order in self.staged.values():
            if order.channel == channel and order.external_ref == external_ref:
                return order
        with self._store.lock:
            order_id = self._store.external_refs.get((channel, external_ref))
        return None if order_id is None else self.find(order_id)

    def save(self, order: Order) -> None:
        if not isinstance(order, Order):
            raise InvalidValue("must be an Order", field="order", value=order)
        self.staged[order.id] = order

    def list_ids(
        self, *, status: State | None = None, after: OrderId | None = None, limit: int = 100
    ) -> list[OrderId]:
        with self._store.lock:
            ids = [
                oid
                for oid, o in self._store.orders.items()
                if (status is None or o.status == status) and (after is None or oid.value > after.value)
            ]
        return sorted(ids, key=lambda oid: oid.value)[:limit]


class MemoryInventoryRepository:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.staged: dict[tuple[str, Sku], StockLevel] = {}

    def get(self, node_id: str, sku: Sku) -> StockLevel | None:
        key = (node_id, sku)
        if key in self.staged:
            return self.staged[key]
        with self._store.lock:
            return self._store.stock.get(key)

    def for_sku(self, sku: Sku) -> list[StockLevel]:
        with self._store.lock:
            levels = {k: v for k, v in self._store.stock.items() if k[1] == sku}
        levels.update({k: v for k, v in self.staged.items() if k[1] == sku})
        return [levels[k] for k in sorted(levels, key=lambda k: k[0])]

    def save(self, level: StockLevel) -> None:
        if not isinstance(level, StockLevel):
            raise InvalidValue("must be a StockLevel", field="level", value=level)
        self.staged[(level.node_id, level.sku)] = level


class MemoryOutbox:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.published: list[str] = []

    def pending(self, limit: int = 100) -> list[OutboxRecord]:
        with self._store.lock:
            return [OutboxRecord(e.position, e.event) for e in self._store.outbox if not e.published][:limit]

    def mark_published(self, event_ids: Sequence[str]) -> None:
        self.published.extend(event_ids)


class MemoryUnitOfWork:
    """Stages changes; :meth:`commit` checks versions and applies everything under the store's lock."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._reset()

    def _reset(self) -> None:
        self.orders = MemoryOrderRepository(self._store)
        self.inventory = MemoryInventoryRepository(self._store)
        self.outbox = MemoryOutbox(self._store)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.rollback()

    def commit(self) -> None:
        store = self._store
        orders = self.orders
        changed = [o for o in orders.staged.values() if o.id in orders.new or o.new_events()]
        with store.lock:
            # check everything first: a commit applies all of its changes or none
            for order in changed:
                current = store.orders.get(order.id)
                if order.id in orders.new:
                    if current is not None:
                        raise DuplicateOrder(f"order {order.id} already exists", existing_order_id=order.id)
                    ref = order.external_ref
                    if ref is not None and (order.channel, ref) in store.external_refs:
                        raise DuplicateOrder(
                            f"{order.channel} already sent {ref!r}",
                            existing_order_id=store.external_refs[(order.channel, ref)],
                        )
                elif current is None or current.version != order.persisted_version:
                    raise ConcurrencyConflict(
                        order.id, order.persisted_version, None if current is None else current.version
                    )
            for level in self.inventory.staged.values():
                stored = store.stock.get((level.node_id, level.sku))
                stored_version = 0 if stored is None else stored.version
                if stored_version != level.version - 1:
                    raise ConcurrencyConflict(
                        f"stock {level.node_id}/{level.sku}", level.version - 1, stored_version
                    )
            for event_id in self.outbox.published:
                if event_id not in store.outbox_index:
                    raise InvalidValue("is not in the outbox", field="event_id", value=event_id)
            # then apply
            events: list[OrderEvent] = []
            for order in changed:
                new_events = order.new_events()
                events.extend(new_events)
                order.persisted_version = order.version
                store.orders[order.id] = order.clone()
                if order.external_ref is not None:
                    store.external_refs[(order.channel, order.external_ref)] = order.id
            for ev in events:
                store.outbox_position += 1
                entry = _OutboxEntry(store.outbox_position, ev)
                store.outbox.append(entry)
                store.outbox_index[ev.event_id] = entry
            for level in self.inventory.staged.values():
                store.stock[(level.node_id, level.sku)] = level
            for event_id in self.outbox.published:
                store.outbox_index[event_id].published = True
            if self.outbox.published:
                store.outbox = [e for e in store.outbox if not e.published]
                for event_id in self.outbox.published:
                    store.outbox_index.pop(event_id, None)
        self._reset()

    def rollback(self) -> None:
        if self.orders.staged or self.inventory.staged or self.outbox.published:
            self._reset()
