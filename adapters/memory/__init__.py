"""In-memory store: complete, thread-safe adapters for every storage port.

It is the default store (``memory://``) for tests and quick starts, not a fake: units of work are isolated
(a repository hands out copies), commits are atomic and checked for concurrent changes, and events go to
an outbox in the same commit as the state.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import date, datetime

import attrs

from ordercore.errors import (
    ConcurrencyConflict,
    DuplicateOrder,
    InvalidValue,
    StoreUnavailable,
    UnknownStore,
)
from ordercore.events import OrderEvent
from ordercore.inventory import LedgerEntry, NodeDay, NodeStates, NodeStatus, StockPosition
from ordercore.inventory.ledger import RESERVATION_KINDS
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle, State
from ordercore.order import Order
from ordercore.ports import (
    BackorderedLine,
    HeldOrder,
    IdempotencyRecord,
    OrderAge,
    OrderDigest,
    OutboxRecord,
)
from ordercore.storage import (
    StagedCapacity,
    StagedIdempotency,
    StagedNodes,
    StagedOrders,
    StagedOutbox,
    StagedStock,
    StagedUnitOfWork,
    backorder_rows,
    check_limit,
    check_list_ids,
    check_purge,
    check_recent_orders_query,
    hold_rows,
    key_taken,
    newest_first,
    node_states_changed,
    order_digest,
    status_since,
)
from ordercore.values import Channel, CustomerId, OrderId, Sku, check_aware

__all__ = ["MemoryStore", "MemoryUnitOfWork", "open_store"]


@attrs.define
class _OutboxEntry:
    position: int
    event: OrderEvent
    published: bool = False


@attrs.frozen
class _OrderReport:
    """What the read models keep of one committed order."""

    age: OrderAge
    holds: tuple[HeldOrder, ...]
    backorders: tuple[tuple[Sku, BackorderedLine], ...]
    digest: OrderDigest | None

    @classmethod
    def of(cls, order: Order, earlier: _OrderReport | None = None) -> _OrderReport:
        """The report of ``order``; with ``earlier``, its rows but the order's age are those (they did
        not change)."""
        age = OrderAge(order.id, order.status, status_since(order))
        if earlier is not None:  # built directly: attrs.evolve would look up every field by name
            return cls(age, earlier.holds, earlier.backorders, earlier.digest)
        return cls(age, tuple(hold_rows(order)), tuple(backorder_rows(order)), order_digest(order))


class MemoryStore:
    """Committed state, shared by the units of work it hands out."""

    def __init__(self, lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> None:
        self.lifecycle = lifecycle
        self.lock = threading.RLock()
        self.orders: dict[OrderId, Order] = {}
        self.external_refs: dict[tuple[Channel, str], OrderId] = {}
        #: the read models, rewritten with each committed order
        self.reports: dict[OrderId, _OrderReport] = {}
        #: the digests of the reports, by customer (the recent orders of each)
        self.digests: dict[CustomerId, dict[OrderId, OrderDigest]] = {}
        self.stock: dict[tuple[str, Sku], StockPosition] = {}
        #: the same positions by SKU and by node, so that reading a SKU's or a node's costs what they hold,
        #: not what the whole store holds
        self.stock_by_sku: dict[Sku, dict[str, StockPosition]] = {}
        self.stock_by_node: dict[str, dict[Sku, StockPosition]] = {}
        self.ledger: dict[tuple[str, Sku], list[LedgerEntry]] = {}
        #: every soft reservation the positions hold, as (expiry, node id, SKU, key), sorted: the lapsed
        #: ones by a moment are a prefix, found without reading every reservation (see :func:`_index_expiries`)
        self.expiries: list[tuple[datetime, str, str, str]] = []
        self.capacity: dict[tuple[str, date], NodeDay] = {}
        self.outbox: list[_OutboxEntry] = []
        self.outbox_index: dict[str, _OutboxEntry] = {}
        self.outbox_position = 0
        self.idempotency: dict[str, IdempotencyRecord] = {}
        self.node_states = NodeStates()
        self.closed = False

    def unit_of_work(self) -> MemoryUnitOfWork:
        if self.closed:
            raise StoreUnavailable("the store memory:// is closed")
        return MemoryUnitOfWork(self)

    def locked(self) -> threading.RLock:
        """The lock to read the committed state under; StoreUnavailable once the store is closed."""
        if self.closed:
            raise StoreUnavailable("the store memory:// is closed")
        return self.lock

    def close(self) -> None:
        with self.lock:  # a commit under way finishes first; none starts afterwards
            self.closed = True


def _index_digest(store: MemoryStore, earlier: _OrderReport | None, report: _OrderReport) -> None:
    """Replace the digest of ``earlier`` by that of ``report`` in the store's digests by customer."""
    if earlier is not None and earlier.digest is not None:
        mine = store.digests.get(earlier.digest.customer_id)
        if mine is not None:
            mine.pop(earlier.digest.order_id, None)
            if not mine:
                del store.digests[earlier.digest.customer_id]
    if report.digest is not None:
        store.digests.setdefault(report.digest.customer_id, {})[report.digest.order_id] = report.digest


def _index_expiries(store: MemoryStore, stored: StockPosition | None, position: StockPosition) -> None:
    """Bring ``store.expiries`` from the soft reservations ``stored`` held to those ``position`` holds: only
    the keys its new ledger entries touched can differ (a reservation changes only through an entry naming
    it), so this costs what the commit changed, not what the position holds."""
    node_id, sku = position.node_id, position.sku.value
    before = {} if stored is None else stored.reservations
    after = position.reservations
    expiries = store.expiries
    for key in {e.key for e in position.new_entries() if e.kind in RESERVATION_KINDS and e.key}:
        old, now = before.get(key), after.get(key)
        was = None if old is None else old.expires_at
        will = None if now is None else now.expires_at
        if was == will:
            continue
        if was is not None:
            i = bisect.bisect_left(expiries, (was, node_id, sku, key))
            if i < len(expiries) and expiries[i] == (was, node_id, sku, key):
                del expiries[i]
        if will is not None:
            bisect.insort(expiries, (will, node_id, sku, key))


def open_store(url: str, *, lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> MemoryStore:
    """Entry point for ``memory://`` URLs: a new, empty store. The URL names nothing more: a host, path or
    parameters after ``memory://`` would be ignored, so they are refused (``InvalidValue`` on ``url``)."""
    scheme, sep, rest = url.partition("://") if isinstance(url, str) else ("", "", "")
    if not sep or scheme.split("+", 1)[0].lower() != "memory":
        raise UnknownStore(f"store URL {url!r} is not a memory URL (expected 'memory://')")
    if rest:
        raise InvalidValue(
            "a memory store takes no host, path or parameters (expected 'memory://')", field="url", value=url
        )
    return MemoryStore(lifecycle)


class MemoryOrderRepository(StagedOrders):
    """Orders of one unit: loaded orders are copies of the committed ones; changes wait for commit."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    def _load(self, order_id: OrderId) -> Order | None:
        with self._store.locked():
            committed = self._store.orders.get(order_id)
        return None if committed is None else committed.clone()

    def _stored_id(self, channel: Channel, external_ref: str) -> OrderId | None:
        with self._store.locked():
            return self._store.external_refs.get((channel, external_ref))

    def _exists(self, order_id: OrderId) -> bool:
        with self._store.locked():
            return order_id in self._store.orders

    def list_ids(
        self, *, status: State | None = None, after: OrderId | None = None, limit: int = 100
    ) -> list[OrderId]:
        limit = check_list_ids(status, after, limit)
        with self._store.locked():
            ids = [
                oid
                for oid, o in self._store.orders.items()
                if (status is None or o.status == status) and (after is None or oid.value > after.value)
            ]
        return sorted(ids, key=lambda oid: oid.value)[:limit]

    def _orders_by_status(self, status: State, older_than: datetime | None, limit: int) -> list[OrderAge]:
        with self._store.locked():
            ages = [
                r.age
                for r in self._store.reports.values()
                if r.age.status.name == status.name and (older_than is None or r.age.since < older_than)
            ]
        return sorted(ages, key=lambda a: (a.since, a.order_id.value))[:limit]

    def placed_since(self, customer_id: CustomerId, since: datetime) -> list[OrderDigest]:
        """The customer's committed orders placed at or after ``since`` and neither rejected nor
        cancelled, newest first (see ordercore.ports.RecentOrders)."""
        check_recent_orders_query(customer_id, since)
        with self._store.locked():
            found = [d for d in self._store.digests.get(customer_id, {}).values() if d.placed_at >= since]
        return newest_first(found)

    def _held_orders(self, code: str | None, limit: int) -> list[HeldOrder]:
        with self._store.locked():
            holds = [
                h for r in self._store.reports.values() for h in r.holds if code is None or h.code == code
            ]
        return sorted(holds, key=lambda h: (h.placed_at, h.order_id.value, h.code))[:limit]

    def _backorders(self, sku: Sku | None) -> list[tuple[Sku, BackorderedLine]]:
        with self._store.locked():
            rows = [
                row
                for r in self._store.reports.values()
                for row in r.backorders
                if sku is None or row[0] == sku
            ]
        return sorted(
            rows,
            key=lambda row: (row[0].value, row[1].placed_at, row[1].order_id.value, row[1].line_id.value),
        )


class MemoryInventoryRepository(StagedStock):
    """Stock positions of one unit: loaded positions are copies of the committed ones; changes wait for
    commit."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    def _load(self, node_id: str, sku: Sku) -> StockPosition | None:
        with self._store.locked():
            committed = self._store.stock.get((node_id, sku))
        return None if committed is None else committed.clone()

    def _load_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        return [p.clone() for p in self._shared_for_skus(skus)]

    def _shared_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        # the committed positions themselves: a commit replaces them with new objects, never changes them
        by_sku = self._store.stock_by_sku
        with self._store.locked():
            return [p for sku in dict.fromkeys(skus) for p in by_sku.get(sku, {}).values()]

    def _load_for_node(self, node_id: str) -> list[StockPosition]:
        with self._store.locked():
            committed = list(self._store.stock_by_node.get(node_id, {}).values())
        return [p.clone() for p in committed]

    def _load_ledger(self, node_id: str, sku: Sku) -> list[LedgerEntry]:
        with self._store.locked():
            return list(self._store.ledger.get((node_id, sku), ()))


class MemoryCapacityRepository(StagedCapacity):
    """Node days of one unit: loaded days are copies of the committed ones; changes wait for commit."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    def _load(self, node_id: str, day: date) -> NodeDay | None:
        with self._store.locked():
            committed = self._store.capacity.get((node_id, day))
        return None if committed is None else committed.clone()

    def _load_for_day(self, day: date, node_ids: Sequence[str]) -> list[NodeDay]:
        with self._store.locked():
            committed = [self._store.capacity.get((node_id, day)) for node_id in node_ids]
        return [d.clone() for d in committed if d is not None]


class MemoryOutbox(StagedOutbox):
    """Pending events in commit order; ids marked published are applied at commit."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    def pending(self, limit: int = 100) -> list[OutboxRecord]:
        with self._store.locked():
            return [OutboxRecord(e.position, e.event) for e in self._store.outbox if not e.published][
                : check_limit(limit)
            ]


class MemoryIdempotency(StagedIdempotency):
    """Idempotency keys of one unit: added records wait for commit."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    def _load(self, key: str) -> IdempotencyRecord | None:
        with self._store.locked():
            return self._store.idempotency.get(key)


class MemoryNodes(StagedNodes):
    """Node states of one unit: read from the store once, changes wait for commit."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    def _load(self) -> NodeStates:
        with self._store.locked():
            return self._store.node_states


class MemoryUnitOfWork(StagedUnitOfWork):
    """Stages changes; a commit checks versions and applies everything under the store's lock."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        super().__init__()

    def purge(self, *, keys_before: datetime | None, days_before: date | None) -> tuple[int, int]:
        """Delete idempotency keys recorded before ``keys_before`` and capacity rows of days before
        ``days_before``, at once (see :class:`ordercore.ports.Housekeeping`)."""
        check_purge(keys_before, days_before)
        store = self._store
        with store.lock:
            if store.closed:
                raise StoreUnavailable("the store memory:// is closed")
            keys = [
                k
                for k, r in store.idempotency.items()
                if keys_before is not None and r.created_at < keys_before
            ]
            for k in keys:
                del store.idempotency[k]
            days = [d for d in store.capacity if days_before is not None and d[1] < days_before]
            for d in days:
                del store.capacity[d]
        return len(keys), len(days)

    def lapsed_positions(self, at: datetime, limit: int) -> list[tuple[str, Sku]]:
        """The positions holding a soft reservation lapsed by ``at`` (see
        :class:`ordercore.ports.LapsedReservations`)."""
        check_aware(at, "at")
        store = self._store
        with store.lock:
            if store.closed:
                raise StoreUnavailable("the store memory:// is closed")
            end = bisect.bisect_right(store.expiries, at, key=lambda entry: entry[0])
            lapsed = {(node_id, sku) for _, node_id, sku, _ in store.expiries[:end]}
        return [(node_id, Sku(sku)) for node_id, sku in sorted(lapsed)[: check_limit(limit)]]

    def _repositories(
        self,
    ) -> tuple[
        MemoryOrderRepository,
        MemoryInventoryRepository,
        MemoryCapacityRepository,
        MemoryOutbox,
        MemoryIdempotency,
        MemoryNodes,
    ]:
        return (
            MemoryOrderRepository(self._store),
            MemoryInventoryRepository(self._store),
            MemoryCapacityRepository(self._store),
            MemoryOutbox(self._store),
            MemoryIdempotency(self._store),
            MemoryNodes(self._store),
        )

    def _write(
        self,
        changed: Sequence[Order],
        new: AbstractSet[OrderId],
        positions: Sequence[StockPosition],
        days: Sequence[NodeDay],
        published: Sequence[str],
        keys: Sequence[IdempotencyRecord],
        node_version: int | None,
        node_statuses: Sequence[NodeStatus],
    ) -> None:
        store = self._store
        with store.lock:
            if store.closed:  # a unit opened before close() writes nothing afterwards
                raise StoreUnavailable("the store memory:// is closed")
            # check everything first: a commit applies all of its changes or none
            if node_version is not None and store.node_states.version != node_version:
                raise node_states_changed(node_version, store.node_states.version)
            for record in keys:
                if record.key in store.idempotency:
                    raise key_taken(record.key)
            for order in changed:
                current = store.orders.get(order.id)
                if order.id in new:
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
            for position in positions:
                stored = store.stock.get((position.node_id, position.sku))
                stored_version = 0 if stored is None else stored.version
                if stored_version != position.persisted_version:
                    raise ConcurrencyConflict(
                        f"stock {position.node_id}/{position.sku}",
                        position.persisted_version,
                        None if stored is None else stored.version,
                    )
            for node_day in days:
                stored_day = store.capacity.get((node_day.node_id, node_day.day))
                stored_version = 0 if stored_day is None else stored_day.version
                if stored_version != node_day.persisted_version:
                    raise ConcurrencyConflict(
                        f"capacity {node_day.node_id}/{node_day.day}",
                        node_day.persisted_version,
                        None if stored_day is None else stored_day.version,
                    )
            for event_id in published:
                if event_id not in store.outbox_index:
                    raise InvalidValue("is not in the outbox", field="event_id", value=event_id)
            # then apply
            events: list[OrderEvent] = []
            for order in changed:
                new_events = order.new_events()
                events.extend(new_events)
                earlier = store.reports.get(order.id)
                rewrite = earlier is None or self.orders.read_models_changed(order)
                order.persisted_version = order.version
                store.orders[order.id] = order.clone()
                report = store.reports[order.id] = _OrderReport.of(order, None if rewrite else earlier)
                if rewrite:
                    _index_digest(store, earlier, report)
                if order.external_ref is not None:
                    store.external_refs[(order.channel, order.external_ref)] = order.id
            for ev in events:
                store.outbox_position += 1
                entry = _OutboxEntry(store.outbox_position, ev)
                store.outbox.append(entry)
                store.outbox_index[ev.event_id] = entry
            for position in positions:
                key = (position.node_id, position.sku)
                _index_expiries(store, store.stock.get(key), position)
                store.ledger.setdefault(key, []).extend(position.new_entries())
                committed = position.clone()
                committed.mark_persisted()
                store.stock[key] = committed
                store.stock_by_sku.setdefault(position.sku, {})[position.node_id] = committed
                store.stock_by_node.setdefault(position.node_id, {})[position.sku] = committed
            for node_day in days:
                committed_day = node_day.clone()
                committed_day.mark_persisted()
                store.capacity[(node_day.node_id, node_day.day)] = committed_day
            for record in keys:
                store.idempotency[record.key] = record
            if node_statuses:
                assert node_version is not None
                store.node_states = NodeStates.of(
                    node_version + 1, [*store.node_states.statuses, *node_statuses]
                )
            for event_id in published:
                store.outbox_index[event_id].published = True
            if published:
                store.outbox = [e for e in store.outbox if not e.published]
                for event_id in published:
                    store.outbox_index.pop(event_id, None)
