"""Units of work on SQLite: changes are staged in memory and written in one transaction at commit."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager, suppress
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import cattrs

from ordercore.errors import (
    ConcurrencyConflict,
    DuplicateOrder,
    InvalidValue,
    OrderCoreError,
    StoreUnavailable,
)
from ordercore.events import OrderEvent
from ordercore.inventory import LedgerEntry, NodeDay, NodeStates, NodeStatus, StockPosition
from ordercore.lifecycle import State
from ordercore.money import Money
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
    Behind,
    StagedCapacity,
    StagedIdempotency,
    StagedNodes,
    StagedOrders,
    StagedOutbox,
    StagedStock,
    StagedUnitOfWork,
    VersionedCopies,
    check_limit,
    check_list_ids,
    check_purge,
    check_recent_orders_query,
    decode_node_day,
    decode_positions,
    decode_stored,
    find_in_document,
    keep_committed,
    key_taken,
    node_states_at,
    node_states_changed,
    positions_at,
    reservation_changes,
    status_since,
)
from ordercore.values import Channel, CustomerId, LineId, OrderId, Sku, check_aware
from ordercore_adapters.sqlite._schema import (
    DELETE_RESERVATION,
    INSERT_LEDGER,
    UPSERT_RESERVATION,
    bound_time,
    expiry_of,
    ledger_rows,
    read_time,
    stored_time,
    write_read_models,
)

if TYPE_CHECKING:
    from ordercore_adapters.sqlite._store import Connection, SqliteStore

__all__ = [
    "SqliteCapacityRepository",
    "SqliteIdempotency",
    "SqliteInventoryRepository",
    "SqliteOrderRepository",
    "SqliteOutbox",
    "SqliteUnitOfWork",
]

T = TypeVar("T")


#: SQLITE_BUSY and SQLITE_LOCKED: the primary result codes (the low byte of an extended one) of a lock
#: not granted
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def unavailable(where: str, error: sqlite3.Error) -> StoreUnavailable:
    """The StoreUnavailable a driver error becomes: retryable when it is a lock not granted in time or a
    table locked by another connection of the process (another attempt may well get it). Errors the sqlite3
    module raises itself (a closed connection, say) carry no result code: never retryable."""
    code = getattr(error, "sqlite_errorcode", None) or 0
    busy = (code & 0xFF) in _BUSY  # the primary code of an extended one
    return StoreUnavailable(f"{where}: {type(error).__name__}: {error}", retryable=busy)


def unstorable(error: UnicodeEncodeError, field: str = "text") -> InvalidValue:
    """The InvalidValue a text SQLite cannot encode as UTF-8 becomes (one holding an unpaired surrogate):
    when the text is a JSON body, named by the path of the string in it that holds the character, else
    ``field``."""
    text = error.object if isinstance(error.object, str) else ""
    value: object = text
    with suppress(ValueError, RecursionError):
        found = find_in_document(json.loads(text), _unencodable)
        if found is not None:
            field, value = found[0] or field, found[1]
    return InvalidValue(
        "holds a character that cannot be stored (an unpaired surrogate)", field=field, value=value
    )


def _unencodable(value: object) -> bool:
    """Whether ``value`` is a string UTF-8 cannot encode."""
    if type(value) is not str:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class SqliteOrderRepository(StagedOrders):
    """Orders of one unit: loaded orders are decoded from JSON, hence copies; changes wait for commit."""

    refuses_duplicates_at_commit = True  # the INSERT's conflict says so (see _duplicate)

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, order_id: OrderId) -> Order | None:
        # the body is read only when the row is not at the version of the copy the store keeps
        query = "SELECT version, CASE WHEN version = ? THEN NULL ELSE body END FROM orders WHERE id = ?"
        with self._uow.db() as conn:
            kept, body = self._uow.orders_cache.read_through(
                order_id, lambda v: conn.execute(query, (v, order_id.value)).fetchone()
            )
        if kept is not None:
            return kept
        if body is None:
            return None
        order = self._uow.decode(body, Order, f"order {order_id}")
        self._uow.orders_cache.put(order_id, order.version, order.clone())
        return order

    def _stored_id(self, channel: Channel, external_ref: str) -> OrderId | None:
        with self._uow.db() as conn:
            row = conn.execute(
                "SELECT id FROM orders WHERE channel = ? AND external_ref = ?", (channel.value, external_ref)
            ).fetchone()
        return None if row is None else OrderId(row[0])

    def _exists(self, order_id: OrderId) -> bool:
        with self._uow.db() as conn:
            return conn.execute("SELECT 1 FROM orders WHERE id = ?", (order_id.value,)).fetchone() is not None

    def list_ids(
        self, *, status: State | None = None, after: OrderId | None = None, limit: int = 100
    ) -> list[OrderId]:
        limit = check_list_ids(status, after, limit)
        sql = "SELECT id FROM orders WHERE 1 = 1"
        params: list[Any] = []
        if status is not None:
            sql += " AND status = ?"
            params.append(status.name)
        if after is not None:
            sql += " AND id > ?"
            params.append(after.value)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [OrderId(r[0]) for r in rows]

    # -- read models: indexed columns and tables written with each order ---------------------------------
    def _orders_by_status(self, status: State, older_than: datetime | None, limit: int) -> list[OrderAge]:
        sql = "SELECT id, status_since FROM orders WHERE status = ?"
        params: list[Any] = [status.name]
        if older_than is not None:
            sql += " AND status_since < ?"
            params.append(bound_time(older_than))
        sql += " ORDER BY status_since, id LIMIT ?"
        params.append(limit)
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [OrderAge(OrderId(i), status, self._uow.time(since, f"order {i}")) for i, since in rows]

    def placed_since(self, customer_id: CustomerId, since: datetime) -> list[OrderDigest]:
        """The customer's committed orders placed at or after ``since`` and neither rejected nor
        cancelled, newest first (see ordercore.ports.RecentOrders), from ``order_digests``."""
        check_recent_orders_query(customer_id, since)
        with self._uow.db() as conn:
            rows = conn.execute(
                "SELECT order_id, placed_at, items, total, currency FROM order_digests"
                " WHERE customer_id = ? AND placed_at >= ? ORDER BY placed_at DESC, order_id DESC",
                (customer_id.value, bound_time(since)),
            ).fetchall()
        digests = []
        for order_id, placed_at, items, total, currency in rows:
            where = f"digest of order {order_id}"
            try:
                pairs = frozenset((str(sku), int(units)) for sku, units in json.loads(items))
                amount = Money.of(total, currency)
            except (OrderCoreError, ValueError, TypeError) as e:
                raise StoreUnavailable(f"{self._uow.url}: {where} cannot be read: {e}") from e
            digests.append(
                OrderDigest(OrderId(order_id), customer_id, self._uow.time(placed_at, where), pairs, amount)
            )
        return digests

    def _held_orders(self, code: str | None, limit: int) -> list[HeldOrder]:
        sql = "SELECT order_id, code, message, placed_at FROM order_holds"
        params: list[Any] = []
        if code is not None:
            sql += " WHERE code = ?"
            params.append(code)
        sql += " ORDER BY placed_at, order_id, code LIMIT ?"
        params.append(limit)
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            HeldOrder(OrderId(i), c, m, self._uow.time(at, f"hold {c} of order {i}")) for i, c, m, at in rows
        ]

    def _backorders(self, sku: Sku | None) -> list[tuple[Sku, BackorderedLine]]:
        sql = "SELECT sku, order_id, line_id, quantity, placed_at FROM order_backorders"
        params: list[Any] = []
        if sku is not None:
            sql += " WHERE sku = ?"
            params.append(sku.value)
        sql += " ORDER BY sku, placed_at, order_id, line_id"
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            (Sku(s), BackorderedLine(OrderId(i), LineId(li), q, self._uow.time(at, f"order {i}")))
            for s, i, li, q, at in rows
        ]


class SqliteInventoryRepository(StagedStock):
    """Stock positions of one unit: loaded positions are decoded from JSON, hence copies; changes wait
    for commit."""

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, node_id: str, sku: Sku) -> StockPosition | None:
        found = self._load_where("node_id = ? AND sku = ?", (node_id, sku.value))
        return found[0] if found else None

    def _load_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        return self._of_skus(skus, shared=False)

    def _shared_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        return self._of_skus(skus, shared=True)

    def _of_skus(self, skus: Sequence[Sku], *, shared: bool) -> list[StockPosition]:
        # one statement for the versions whatever the number of SKUs (they travel as one JSON array)
        return self._load_where(
            "sku IN (SELECT value FROM json_each(?))", (json.dumps([s.value for s in skus]),), shared=shared
        )

    def _load_for_node(self, node_id: str) -> list[StockPosition]:
        return self._load_where("node_id = ?", (node_id,))

    def _load_where(
        self, where: str, params: tuple[Any, ...], *, shared: bool = False
    ) -> list[StockPosition]:
        """The positions ``where`` picks: one statement for their versions; for those that changed since
        the store last read or wrote them, one for the ledger entries a kept copy lacks and one for the
        bodies of the rest (see :func:`ordercore.storage.positions_at`; with ``shared``, the store's
        current copies themselves, to be read only)."""
        with self._uow.db() as conn:
            versions = conn.execute(
                f"SELECT node_id, sku, version FROM stock WHERE {where}", params
            ).fetchall()
            return positions_at(
                self._uow.stock_cache,
                versions,
                lambda behind: self._entries(conn, behind),
                lambda keys: self._whole(conn, keys),
                shared=shared,
            )

    def _entries(self, conn: sqlite3.Connection, behind: list[Behind]) -> list[LedgerEntry]:
        """The ledger entries each kept copy lacks (after its version, up to its row's), in order."""
        rows = conn.execute(
            "SELECT l.node_id, l.sku, l.sequence, l.body FROM json_each(?) b JOIN stock_ledger l"
            " ON l.node_id = json_extract(b.value, '$[0]') AND l.sku = json_extract(b.value, '$[1]')"
            " AND l.sequence > json_extract(b.value, '$[2]') AND l.sequence <= json_extract(b.value, '$[3]')"
            " ORDER BY l.node_id, l.sku, l.sequence",
            (json.dumps(behind),),
        ).fetchall()
        return [
            self._uow.decode(body, LedgerEntry, f"stock {node_id}/{sku} entry {seq}")
            for node_id, sku, seq, body in rows
        ]

    def _whole(self, conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> list[StockPosition]:
        """Positions read whole: each body with its reservations' rows, in one statement (one snapshot)."""
        rows = conn.execute(
            "SELECT s.node_id, s.sku, s.body, r.key, r.body FROM stock s"
            " LEFT JOIN stock_reservations r ON r.node_id = s.node_id AND r.sku = s.sku"
            " WHERE (s.node_id, s.sku) IN"
            " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
            (json.dumps(keys),),
        ).fetchall()
        return decode_positions(rows, self._uow.stock_cache, self._uow.converter, self._uow.url)

    def _load_ledger(self, node_id: str, sku: Sku) -> list[LedgerEntry]:
        with self._uow.db() as conn:
            rows = conn.execute(
                "SELECT sequence, body FROM stock_ledger WHERE node_id = ? AND sku = ? ORDER BY sequence",
                (node_id, sku.value),
            ).fetchall()
        return [
            self._uow.decode(body, LedgerEntry, f"stock {node_id}/{sku} entry {seq}") for seq, body in rows
        ]


# -- node days <-> node_capacity rows: (day, node_id, version, taken) ----------------------------------------
_NODE_DAY_COLUMNS = "day, node_id, version, taken"


def _node_day_row(node_day: NodeDay) -> tuple[str, str, int, str]:
    """The row of ``node_day``: the day as ISO text, ``taken`` as a JSON object with sorted keys."""
    taken = json.dumps(node_day.taken, sort_keys=True)
    return node_day.day.isoformat(), node_day.node_id, node_day.version, taken


def _node_day(row: Sequence[Any], where: str) -> NodeDay:
    """The node day a row of :data:`_NODE_DAY_COLUMNS` holds, at its stored version."""
    day, node_id, version, taken = row
    return decode_node_day(node_id, day, version, taken, what=f"{where}: capacity {node_id}/{day}")


class SqliteCapacityRepository(StagedCapacity):
    """Node days of one unit: loaded days are read from their rows, hence copies; changes wait for
    commit."""

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, node_id: str, day: date) -> NodeDay | None:
        with self._uow.db() as conn:
            row = conn.execute(
                f"SELECT {_NODE_DAY_COLUMNS} FROM node_capacity WHERE day = ? AND node_id = ?",
                (day.isoformat(), node_id),
            ).fetchone()
        return None if row is None else _node_day(row, self._uow.url)

    def _load_for_day(self, day: date, node_ids: Sequence[str]) -> list[NodeDay]:
        # one statement whatever the number of nodes: they travel as one JSON array
        with self._uow.db() as conn:
            rows = conn.execute(
                f"SELECT {_NODE_DAY_COLUMNS} FROM node_capacity"
                " WHERE day = ? AND node_id IN (SELECT value FROM json_each(?))",
                (day.isoformat(), json.dumps(list(node_ids))),
            ).fetchall()
        return [_node_day(row, self._uow.url) for row in rows]


class SqliteOutbox(StagedOutbox):
    """Pending events in commit order; ids marked published are applied at commit."""

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def pending(self, limit: int = 100) -> list[OutboxRecord]:
        with self._uow.db() as conn:
            rows = conn.execute(
                "SELECT position, event_id, body FROM outbox ORDER BY position LIMIT ?",
                (check_limit(limit),),
            ).fetchall()
        return [
            OutboxRecord(position, self._uow.decode(body, OrderEvent, f"outbox event {event_id}"))
            for position, event_id, body in rows
        ]


class SqliteIdempotency(StagedIdempotency):
    """Idempotency keys of one unit: added records wait for commit."""

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, key: str) -> IdempotencyRecord | None:
        with self._uow.db() as conn:
            row = conn.execute(
                "SELECT order_id, fingerprint, created_at FROM idempotency_keys WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        order_id, fingerprint, created_at = row
        try:
            return IdempotencyRecord(key, OrderId(order_id), fingerprint, datetime.fromisoformat(created_at))
        except (OrderCoreError, ValueError) as e:
            raise StoreUnavailable(f"{self._uow.url}: idempotency key {key!r} cannot be read: {e}") from e


class SqliteNodes(StagedNodes):
    """Node states of one unit: the version is read, and the rows only when the store keeps no copy of that
    version; changes wait for commit."""

    def __init__(self, uow: SqliteUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self) -> NodeStates:
        with self._uow.db() as conn:
            row = conn.execute("SELECT version FROM node_states_version").fetchone()
            return node_states_at(
                self._uow.node_states_cache,
                0 if row is None else row[0],
                lambda: conn.execute(_NODE_STATES_JOINED).fetchall(),
                self._uow.url,
                datetime.fromisoformat,
            )


# the version with the rows, in one statement (one snapshot): one row per node, or one without
_NODE_STATES_JOINED = (
    "SELECT v.version, s.node_id, s.online, s.changed_at, s.actor_kind, s.actor_id, s.reason"
    " FROM node_states_version v LEFT JOIN node_states s ON 1"
)


class SqliteUnitOfWork(StagedUnitOfWork):
    """Stages changes; a commit checks versions and writes everything in one transaction."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._conn: Connection | None = None
        super().__init__()

    def _repositories(
        self,
    ) -> tuple[
        SqliteOrderRepository,
        SqliteInventoryRepository,
        SqliteCapacityRepository,
        SqliteOutbox,
        SqliteIdempotency,
        SqliteNodes,
    ]:
        return (
            SqliteOrderRepository(self),
            SqliteInventoryRepository(self),
            SqliteCapacityRepository(self),
            SqliteOutbox(self),
            SqliteIdempotency(self),
            SqliteNodes(self),
        )

    @property
    def url(self) -> str:
        """The store's URL, for messages."""
        return self._store.url

    @property
    def orders_cache(self) -> VersionedCopies[OrderId, Order]:
        """The store's decoded orders, by id and version."""
        return self._store.orders_cache

    @property
    def stock_cache(self) -> VersionedCopies[tuple[str, str], StockPosition]:
        """The store's decoded stock positions, by (node id, SKU) and version."""
        return self._store.stock_cache

    @property
    def node_states_cache(self) -> VersionedCopies[str, NodeStates]:
        """The node states the store last read or wrote, by version."""
        return self._store.node_states_cache

    def _release(self) -> None:
        self.close()

    def close(self) -> None:
        """Give back this unit's connection (a file database's goes back to the store's pool, with no
        transaction left open)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._store.release(conn)

    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """This unit's connection, opened on first use, held under its lock; driver errors become
        StoreUnavailable. Nothing of a failed write stays (its transaction is rolled back), and a write
        lock not granted within the busy timeout, or a table locked by another connection of the process,
        may well be granted on another attempt: that StoreUnavailable is retryable. A text SQLite cannot
        encode (an unpaired surrogate) is InvalidValue, whatever the domain let through."""
        self._store.check_open()
        if self._conn is None:
            self._conn = self._store.connect()
        with self._conn.lock:
            try:
                yield self._conn.raw
            except sqlite3.Error as e:
                raise unavailable(self._store.url, e) from e
            except UnicodeEncodeError as e:
                raise unstorable(e) from e

    def purge(self, *, keys_before: datetime | None, days_before: date | None) -> tuple[int, int]:
        """Delete idempotency keys recorded before ``keys_before`` and capacity rows of days before
        ``days_before``, in one transaction of their own (see :class:`ordercore.ports.Housekeeping`)."""
        check_purge(keys_before, days_before)
        keys: list[tuple[str]] = []
        with self.db() as conn:
            try:
                # in the try: an interrupt (Ctrl-C) just after BEGIN returns still rolls it back
                self._store.check_file()  # a file removed or replaced since: write nothing to it
                conn.execute("BEGIN IMMEDIATE")
                if keys_before is not None:
                    # times are kept as ISO text with their offsets: compare them as times, not as text
                    for key, created_at in conn.execute("SELECT key, created_at FROM idempotency_keys"):
                        if self.time(created_at, f"idempotency key {key!r}") < keys_before:
                            keys.append((key,))
                    conn.executemany("DELETE FROM idempotency_keys WHERE key = ?", keys)
                days = 0
                if days_before is not None:
                    days = conn.execute(
                        "DELETE FROM node_capacity WHERE day < ?", (days_before.isoformat(),)
                    ).rowcount
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):  # the first error is the one worth reporting
                        conn.execute("ROLLBACK")
                raise
        return len(keys), days

    def lapsed_positions(self, at: datetime, limit: int) -> list[tuple[str, Sku]]:
        """The positions holding a soft reservation lapsed by ``at`` (see
        :class:`ordercore.ports.LapsedReservations`): found through the index of ``expires_at``, which
        holds UTC text with microseconds, so that comparing it as text compares the moments exactly and
        a sweep reads the lapsed reservations only, however many others are open."""
        check_aware(at, "at")
        with self.db() as conn:
            rows = conn.execute(
                "SELECT DISTINCT node_id, sku FROM stock_reservations"
                " WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY node_id, sku LIMIT ?",
                (bound_time(at), check_limit(limit)),
            ).fetchall()
        return [(node_id, Sku(sku)) for node_id, sku in rows]

    def time(self, text: str, what: str) -> datetime:
        """A stored time (ISO 8601 text with its offset); one that cannot be read, or that has no offset
        to compare it by, is a store failure."""
        return read_time(text, f"{self._store.url}: {what}")

    @property
    def converter(self) -> cattrs.Converter:
        """The store's converter, which decodes what it reads."""
        return self._store.converter

    def decode(self, body: str, cls: type[T], what: str) -> T:
        """A stored JSON body as ``cls``; an unreadable row is a store failure, not bad input."""
        return decode_stored(body, cls, self._store.converter, f"{self._store.url}: {what}")

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
        with self.db() as conn:
            try:
                # the write lock: no other commit runs until this one ends; taken in the try, so that an
                # interrupt (Ctrl-C) just after BEGIN returns still rolls it back
                self._store.check_file()  # a file removed or replaced since: write nothing to it
                conn.execute("BEGIN IMMEDIATE")
                if node_version is not None:
                    self._check_node_states(conn, node_version)
                    if node_statuses:
                        self._write_node_states(conn, node_version, node_statuses)
                for record in keys:
                    self._write_key(conn, record)
                for order in changed:
                    self._write_order(conn, order, new=order.id in new)
                for position in positions:
                    self._write_position(conn, position)
                for node_day in days:
                    self._write_node_day(conn, node_day)
                for event_id in published:
                    self._mark_published(conn, event_id)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):  # the first error is the one worth reporting
                        conn.execute("ROLLBACK")
                raise
        # what was just committed is what the next unit will read: keep it, so that it is not decoded
        keep_committed(
            self.orders_cache, self.stock_cache, self.node_states_cache, changed, positions, self.nodes
        )

    # -- writing, inside the commit's transaction -------------------------------------------------------
    @staticmethod
    def _check_node_states(conn: sqlite3.Connection, expected: int) -> None:
        row = conn.execute("SELECT version FROM node_states_version").fetchone()
        stored = 0 if row is None else row[0]
        if stored != expected:
            raise node_states_changed(expected, stored)

    @staticmethod
    def _write_node_states(conn: sqlite3.Connection, version: int, statuses: Sequence[NodeStatus]) -> None:
        conn.executemany(
            "INSERT INTO node_states (node_id, online, changed_at, actor_kind, actor_id, reason)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id) DO UPDATE SET online = excluded.online,"
            " changed_at = excluded.changed_at, actor_kind = excluded.actor_kind,"
            " actor_id = excluded.actor_id, reason = excluded.reason",
            [
                (s.node_id, int(s.online), s.changed_at.isoformat(), s.actor.kind, s.actor.id, s.reason)
                for s in statuses
            ],
        )
        conn.execute("UPDATE node_states_version SET version = ?", (version + 1,))

    @staticmethod
    def _write_key(conn: sqlite3.Connection, record: IdempotencyRecord) -> None:
        cursor = conn.execute(
            "INSERT INTO idempotency_keys (key, order_id, fingerprint, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (record.key, record.order_id.value, record.fingerprint, record.created_at.isoformat()),
        )
        if cursor.rowcount != 1:
            raise key_taken(record.key)

    def _write_order(self, conn: sqlite3.Connection, order: Order, *, new: bool) -> None:
        since = stored_time(status_since(order), "status_since")
        columns = (order.channel.value, order.external_ref, order.status.name, since, order.version)
        body = self._store.json.order(order)
        try:
            if new:
                conn.execute(
                    "INSERT INTO orders (id, channel, external_ref, status, status_since, version, body)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (order.id.value, *columns, body),
                )
            else:
                cursor = conn.execute(
                    "UPDATE orders SET channel = ?, external_ref = ?, status = ?, status_since = ?, version = ?,"
                    " body = ? WHERE id = ? AND version = ?",
                    (*columns, body, order.id.value, order.persisted_version),
                )
                if cursor.rowcount != 1:
                    row = conn.execute(
                        "SELECT version FROM orders WHERE id = ?", (order.id.value,)
                    ).fetchone()
                    raise ConcurrencyConflict(
                        order.id, order.persisted_version, None if row is None else row[0]
                    )
        except sqlite3.IntegrityError as e:
            raise self._duplicate(conn, order) from e
        if self.orders.read_models_changed(order):
            write_read_models(conn, order, new=new)
        conn.executemany(
            "INSERT INTO outbox (event_id, order_id, type, body) VALUES (?, ?, ?, ?)",
            [
                (ev.event_id, order.id.value, type(ev).__name__, self._store.json.event(ev))
                for ev in order.new_events()
            ],
        )

    @staticmethod
    def _duplicate(conn: sqlite3.Connection, order: Order) -> DuplicateOrder:
        if conn.execute("SELECT 1 FROM orders WHERE id = ?", (order.id.value,)).fetchone() is not None:
            return DuplicateOrder(f"order {order.id} already exists", existing_order_id=order.id)
        row = conn.execute(
            "SELECT id FROM orders WHERE channel = ? AND external_ref = ?",
            (order.channel.value, order.external_ref),
        ).fetchone()
        return DuplicateOrder(
            f"{order.channel} already sent {order.external_ref!r}",
            existing_order_id=None if row is None else OrderId(row[0]),
        )

    def _write_position(self, conn: sqlite3.Connection, position: StockPosition) -> None:
        # the write itself checks the version: an UPDATE of the version read, or an INSERT that finds the
        # key free; only when it fails is the row read, to say what it holds now
        key = (position.node_id, position.sku.value)
        expected = position.persisted_version
        stored_json = self._store.json
        body = stored_json.position_row(position)
        if expected == 0:
            try:
                conn.execute(
                    "INSERT INTO stock (node_id, sku, version, body) VALUES (?, ?, ?, ?)",
                    (*key, position.version, body),
                )
                written = True
            except sqlite3.IntegrityError:
                written = False
        else:
            written = (
                conn.execute(
                    "UPDATE stock SET version = ?, body = ? WHERE node_id = ? AND sku = ? AND version = ?",
                    (position.version, body, *key, expected),
                ).rowcount
                == 1
            )
        if not written:
            row = conn.execute("SELECT version FROM stock WHERE node_id = ? AND sku = ?", key).fetchone()
            raise ConcurrencyConflict(
                f"stock {position.node_id}/{position.sku}", expected, None if row is None else row[0]
            )
        written_reservations, gone = reservation_changes(position)
        if written_reservations:
            conn.executemany(
                UPSERT_RESERVATION,
                [(*key, r.key, stored_json.reservation(r), expiry_of(r)) for r in written_reservations],
            )
        if gone:
            conn.executemany(DELETE_RESERVATION, [(*key, k) for k in gone])
        conn.executemany(INSERT_LEDGER, ledger_rows(position, self._store.converter, stored_json.entry))

    @staticmethod
    def _write_node_day(conn: sqlite3.Connection, node_day: NodeDay) -> None:
        day, node_id, version, taken = _node_day_row(node_day)
        expected = node_day.persisted_version
        if expected == 0:
            try:
                conn.execute(
                    f"INSERT INTO node_capacity ({_NODE_DAY_COLUMNS}) VALUES (?, ?, ?, ?)",
                    (day, node_id, version, taken),
                )
                written = True
            except sqlite3.IntegrityError:
                written = False
        else:
            written = (
                conn.execute(
                    "UPDATE node_capacity SET version = ?, taken = ? WHERE day = ? AND node_id = ?"
                    " AND version = ?",
                    (version, taken, day, node_id, expected),
                ).rowcount
                == 1
            )
        if not written:
            row = conn.execute(
                "SELECT version FROM node_capacity WHERE day = ? AND node_id = ?", (day, node_id)
            ).fetchone()
            raise ConcurrencyConflict(f"capacity {node_id}/{day}", expected, None if row is None else row[0])

    @staticmethod
    def _mark_published(conn: sqlite3.Connection, event_id: str) -> None:
        cursor = conn.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
        if cursor.rowcount != 1:
            raise InvalidValue("is not in the outbox", field="event_id", value=event_id)
