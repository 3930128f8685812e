"""What every store adapter's repositories share: staging changes inside a unit of work.

A unit of work hands out orders and stock levels that the caller may change; nothing reaches the store
before ``commit``. These bases keep the staged objects, and a store fills in how to read what is stored
(``_load``...) and how to write at commit. The in-memory, SQLite and PostgreSQL stores all build on them;
so can an integrator's own store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from types import TracebackType
from typing import Self, TypeVar

import cattrs

from ordercore.errors import DuplicateOrder, InvalidValue, OrderCoreError, OrderNotFound, StoreUnavailable
from ordercore.inventory import StockLevel
from ordercore.order import Order
from ordercore.ports import OutboxRecord
from ordercore.serialization import from_json
from ordercore.values import Channel, OrderId, Sku

__all__ = ["StagedOrders", "StagedOutbox", "StagedStock", "StagedUnitOfWork", "decode_stored"]

T = TypeVar("T")


class StagedOrders(ABC):
    """An order repository's staging: orders read in this unit are kept (later reads return the same
    object), added and saved orders wait for the commit."""

    def __init__(self) -> None:
        self.staged: dict[OrderId, Order] = {}
        self.new: set[OrderId] = set()

    # -- what a store provides ------------------------------------------------------------------------------
    @abstractmethod
    def _load(self, order_id: OrderId) -> Order | None:
        """The stored order, as an object of its own (a copy), or None."""

    @abstractmethod
    def _stored_id(self, channel: Channel, external_ref: str) -> OrderId | None:
        """The id of the stored order with this channel and external reference, if any."""

    def _exists(self, order_id: OrderId) -> bool:
        return self._load(order_id) is not None

    # -- the repository ------------------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        if not isinstance(order, Order):
            raise InvalidValue("must be an Order", field="order", value=order)
        if order.id in self.staged or self._exists(order.id):
            raise DuplicateOrder(f"order {order.id} already exists", existing_order_id=order.id)
        if order.external_ref is not None:
            existing = self.find_by_external_ref(order.channel, order.external_ref)
            if existing is not None:
                raise DuplicateOrder(
                    f"{order.channel} already sent {order.external_ref!r}", existing_order_id=existing.id
                )
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
        order = self._load(order_id)
        if order is not None:
            self.staged[order_id] = order
        return order

    def find_by_external_ref(self, channel: Channel, external_ref: str) -> Order | None:
        for order in self.staged.values():
            if order.channel == channel and order.external_ref == external_ref:
                return order
        order_id = self._stored_id(channel, external_ref)
        return None if order_id is None else self.find(order_id)

    def save(self, order: Order) -> None:
        if not isinstance(order, Order):
            raise InvalidValue("must be an Order", field="order", value=order)
        self.staged[order.id] = order

    def changed(self) -> list[Order]:
        """Orders to write at commit (new ones, and those with new events), in id order so that
        concurrent commits touch rows in the same order."""
        return sorted(
            (o for o in self.staged.values() if o.id in self.new or o.new_events()), key=lambda o: o.id.value
        )


class StagedStock(ABC):
    """An inventory repository's staging: saved levels shadow the stored ones until commit."""

    def __init__(self) -> None:
        self.staged: dict[tuple[str, Sku], StockLevel] = {}

    @abstractmethod
    def _load(self, node_id: str, sku: Sku) -> StockLevel | None:
        """The stored level, or None."""

    @abstractmethod
    def _load_for_sku(self, sku: Sku) -> list[StockLevel]:
        """Every stored level of ``sku``."""

    def get(self, node_id: str, sku: Sku) -> StockLevel | None:
        key = (node_id, sku)
        if key in self.staged:
            return self.staged[key]
        return self._load(node_id, sku)

    def for_sku(self, sku: Sku) -> list[StockLevel]:
        levels = {(level.node_id, level.sku): level for level in self._load_for_sku(sku)}
        levels.update({k: v for k, v in self.staged.items() if k[1] == sku})
        return [levels[k] for k in sorted(levels, key=lambda k: k[0])]

    def save(self, level: StockLevel) -> None:
        if not isinstance(level, StockLevel):
            raise InvalidValue("must be a StockLevel", field="level", value=level)
        self.staged[(level.node_id, level.sku)] = level

    def changed(self) -> list[StockLevel]:
        """Levels to write at commit, in key order."""
        return [self.staged[k] for k in sorted(self.staged, key=lambda k: (k[0], k[1].value))]


class StagedOutbox(ABC):
    """An outbox's staging: ids marked published are applied at commit."""

    def __init__(self) -> None:
        self.published: list[str] = []

    @abstractmethod
    def pending(self, limit: int = 100) -> list[OutboxRecord]:
        """Events not yet published, in commit order."""

    def mark_published(self, event_ids: Sequence[str]) -> None:
        self.published.extend(event_ids)

    def changed(self) -> list[str]:
        """Distinct ids to mark at commit, in the order given."""
        return list(dict.fromkeys(self.published))


class StagedUnitOfWork(ABC):
    """A unit of work over staged repositories: nothing is written before :meth:`commit`, which writes
    every staged change at once (through :meth:`_write`) or nothing; leaving the ``with`` block without
    committing drops the staged changes."""

    orders: StagedOrders
    inventory: StagedStock
    outbox: StagedOutbox

    def __init__(self) -> None:
        self._reset()

    @abstractmethod
    def _repositories(self) -> tuple[StagedOrders, StagedStock, StagedOutbox]:
        """Fresh, empty repositories for this unit."""

    @abstractmethod
    def _write(
        self,
        orders: Sequence[Order],
        new: AbstractSet[OrderId],
        levels: Sequence[StockLevel],
        published: Sequence[str],
    ) -> None:
        """Store ``orders`` (those in ``new`` are inserted) with their new events in the outbox, the stock
        ``levels``, and the ``published`` marks: all of it, or raise and store nothing."""

    def _release(self) -> None:
        """Give back what the unit holds (a connection, say) when its ``with`` block ends."""
        return None  # nothing, unless a store holds something

    def _reset(self) -> None:
        self.orders, self.inventory, self.outbox = self._repositories()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.rollback()
        finally:
            self._release()

    def commit(self) -> None:
        changed = self.orders.changed()
        levels = self.inventory.changed()
        published = self.outbox.changed()
        if changed or levels or published:
            self._write(changed, self.orders.new, levels, published)
        for order in changed:
            order.persisted_version = order.version
        self._reset()

    def rollback(self) -> None:
        if self.orders.staged or self.inventory.staged or self.outbox.published:
            self._reset()


def decode_stored(body: str | bytes, cls: type[T], converter: cattrs.Converter, what: str) -> T:
    """A stored JSON body as ``cls``: a row that cannot be read is a store failure, not bad input."""
    try:
        return from_json(body, cls, converter=converter)
    except OrderCoreError as e:
        raise StoreUnavailable(f"{what} cannot be read: {e}") from e
