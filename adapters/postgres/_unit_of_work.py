"""Units of work on PostgreSQL: changes are staged in memory and written in one transaction at commit."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import cattrs
import psycopg
from psycopg.types.json import Jsonb

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
    Stale,
    VersionedCopies,
    check_limit,
    check_list_ids,
    check_purge,
    check_recent_orders_query,
    decode_node_day,
    decode_positions,
    decode_stored,
    keep_committed,
    key_taken,
    node_states_at,
    node_states_changed,
    positions_at,
    status_since,
)
from ordercore.values import Channel, CustomerId, LineId, OrderId, Sku, check_aware
from ordercore_adapters.postgres._schema import (
    INSERT_LEDGER,
    ROW_CHECK_FAILED,
    insert_rows,
    ledger_rows,
    read_model_statements,
    reservation_statements,
)
from ordercore_adapters.postgres._unstorable import refused

if TYPE_CHECKING:
    from ordercore_adapters.postgres._store import PostgresStore

__all__ = [
    "PostgresCapacityRepository",
    "PostgresIdempotency",
    "PostgresInventoryRepository",
    "PostgresOrderRepository",
    "PostgresOutbox",
    "PostgresUnitOfWork",
]

T = TypeVar("T")
Connection = psycopg.Connection[Any]


class PostgresOrderRepository(StagedOrders):
    """Orders of one unit: loaded orders are decoded from JSON, hence copies; changes wait for commit."""

    refuses_duplicates_at_commit = True  # the INSERT's conflict says so (see _duplicate)

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, order_id: OrderId) -> Order | None:
        # the body is read only when the row is not at the version of the copy the store keeps
        query = (
            "SELECT version, CASE WHEN version = %s THEN NULL ELSE body::text END FROM orders WHERE id = %s"
        )
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
                "SELECT id FROM orders WHERE channel = %s AND external_ref = %s",
                (channel.value, external_ref),
            ).fetchone()
        return None if row is None else OrderId(row[0])

    def _exists(self, order_id: OrderId) -> bool:
        with self._uow.db() as conn:
            return (
                conn.execute("SELECT 1 FROM orders WHERE id = %s", (order_id.value,)).fetchone() is not None
            )

    def list_ids(
        self, *, status: State | None = None, after: OrderId | None = None, limit: int = 100
    ) -> list[OrderId]:
        limit = check_list_ids(status, after, limit)
        sql = "SELECT id FROM orders WHERE true"
        params: list[Any] = []
        if status is not None:
            sql += " AND status = %s"
            params.append(status.name)
        if after is not None:
            sql += " AND id > %s"
            params.append(after.value)
        sql += " ORDER BY id LIMIT %s"
        params.append(limit)
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [OrderId(r[0]) for r in rows]

    # -- read models: indexed columns and tables written with each order ---------------------------------
    def _orders_by_status(self, status: State, older_than: datetime | None, limit: int) -> list[OrderAge]:
        sql = "SELECT id, status_since FROM orders WHERE status = %s"
        params: list[Any] = [status.name]
        if older_than is not None:
            sql += " AND status_since < %s"
            params.append(older_than)
        sql += " ORDER BY status_since, id LIMIT %s"
        params.append(limit)
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [OrderAge(OrderId(i), status, since) for i, since in rows]

    def placed_since(self, customer_id: CustomerId, since: datetime) -> list[OrderDigest]:
        """The customer's committed orders placed at or after ``since`` and neither rejected nor
        cancelled, newest first (see ordercore.ports.RecentOrders), from ``order_digests``."""
        check_recent_orders_query(customer_id, since)
        with self._uow.db() as conn:
            rows = conn.execute(
                "SELECT order_id, placed_at, items::text, total, currency FROM order_digests"
                " WHERE customer_id = %s AND placed_at >= %s ORDER BY placed_at DESC, order_id DESC",
                (customer_id.value, since),
            ).fetchall()
        digests = []
        for order_id, placed_at, items, total, currency in rows:
            try:
                pairs = frozenset((str(sku), int(units)) for sku, units in json.loads(items))
                amount = Money(total, currency)
            except (OrderCoreError, ValueError, TypeError) as e:
                raise StoreUnavailable(
                    f"{self._uow.url}: digest of order {order_id} cannot be read: {e}"
                ) from e
            digests.append(OrderDigest(OrderId(order_id), customer_id, placed_at, pairs, amount))
        return digests

    def _held_orders(self, code: str | None, limit: int) -> list[HeldOrder]:
        sql = "SELECT order_id, code, message, placed_at FROM order_holds"
        params: list[Any] = []
        if code is not None:
            sql += " WHERE code = %s"
            params.append(code)
        sql += " ORDER BY placed_at, order_id, code LIMIT %s"
        params.append(limit)
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [HeldOrder(OrderId(i), c, m, at) for i, c, m, at in rows]

    def _backorders(self, sku: Sku | None) -> list[tuple[Sku, BackorderedLine]]:
        sql = "SELECT sku, order_id, line_id, quantity, placed_at FROM order_backorders"
        params: list[Any] = []
        if sku is not None:
            sql += " WHERE sku = %s"
            params.append(sku.value)
        sql += " ORDER BY sku, placed_at, order_id, line_id"
        with self._uow.db() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [(Sku(s), BackorderedLine(OrderId(i), LineId(li), q, at)) for s, i, li, q, at in rows]


class PostgresInventoryRepository(StagedStock):
    """Stock positions of one unit: loaded positions are decoded from JSON, hence copies; changes wait
    for commit."""

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, node_id: str, sku: Sku) -> StockPosition | None:
        found = self._load_where(
            "SELECT node_id, sku, version FROM stock WHERE node_id = %s AND sku = %s", (node_id, sku.value)
        )
        return found[0] if found else None

    def _load_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        return self._of_skus(skus, shared=False)

    def _shared_for_skus(self, skus: Sequence[Sku]) -> list[StockPosition]:
        return self._of_skus(skus, shared=True)

    def _of_skus(self, skus: Sequence[Sku], *, shared: bool) -> list[StockPosition]:
        # the node states' version comes with them (a row without a node), in the same snapshot: a
        # unit sourcing from these positions reads the states next, without a round trip of its own
        return self._load_where(
            "SELECT node_id, sku, version FROM stock WHERE sku = ANY(%s)"
            " UNION ALL SELECT NULL, NULL, version FROM node_states_version",
            ([s.value for s in skus],),
            shared=shared,
        )

    def _load_for_node(self, node_id: str) -> list[StockPosition]:
        return self._load_where("SELECT node_id, sku, version FROM stock WHERE node_id = %s", (node_id,))

    def _load_where(
        self, versions: str, params: tuple[Any, ...], *, shared: bool = False
    ) -> list[StockPosition]:
        """The positions whose versions the query ``versions`` lists: one statement for the versions; for
        those that changed since the store last read or wrote them, one for the ledger entries a kept copy
        lacks and one for the bodies of the rest, each travelling as JSON only then (see
        :func:`ordercore.storage.positions_at`; with ``shared``, the store's current copies themselves,
        to be read only). A row without a node is the node states' version."""
        with self._uow.db() as conn:
            rows: list[Stale] = []
            for node_id, sku, version in conn.execute(versions, params).fetchall():
                if node_id is None:
                    self._uow.node_version_seen = version
                else:
                    rows.append((node_id, sku, version))
            return positions_at(
                self._uow.stock_cache,
                rows,
                lambda behind: self._entries(conn, behind),
                lambda keys: self._whole(conn, keys),
                shared=shared,
            )

    def _entries(self, conn: Connection, behind: list[Behind]) -> list[LedgerEntry]:
        """The ledger entries each kept copy lacks (after its version, up to its row's), in order."""
        nodes, skus, kept, stored = (list(column) for column in zip(*behind, strict=True))
        rows = conn.execute(
            "SELECT l.node_id, l.sku, l.sequence, l.body::text"
            " FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[]) AS b (node_id, sku, kept, stored)"
            ' JOIN stock_ledger l ON l.node_id = b.node_id COLLATE "C" AND l.sku = b.sku COLLATE "C"'
            " AND l.sequence > b.kept AND l.sequence <= b.stored"
            " ORDER BY l.node_id, l.sku, l.sequence",
            (nodes, skus, kept, stored),
        ).fetchall()
        return [
            self._uow.decode(body, LedgerEntry, f"stock {node_id}/{sku} entry {seq}")
            for node_id, sku, seq, body in rows
        ]

    def _whole(self, conn: Connection, keys: list[tuple[str, str]]) -> list[StockPosition]:
        """Positions read whole: each body with its reservations' rows, in one statement (one snapshot)."""
        nodes, skus = [k[0] for k in keys], [k[1] for k in keys]
        rows = conn.execute(
            "SELECT s.node_id, s.sku, s.body::text, r.key, r.body::text FROM stock s"
            " LEFT JOIN stock_reservations r ON r.node_id = s.node_id AND r.sku = s.sku"
            " WHERE (s.node_id, s.sku) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
            (nodes, skus),
        ).fetchall()
        return decode_positions(rows, self._uow.stock_cache, self._uow.converter, self._uow.url)

    def _load_ledger(self, node_id: str, sku: Sku) -> list[LedgerEntry]:
        with self._uow.db() as conn:
            rows = conn.execute(
                "SELECT sequence, body::text FROM stock_ledger WHERE node_id = %s AND sku = %s ORDER BY sequence",
                (node_id, sku.value),
            ).fetchall()
        return [
            self._uow.decode(body, LedgerEntry, f"stock {node_id}/{sku} entry {seq}") for seq, body in rows
        ]


# -- node days <-> node_capacity rows: (day, node_id, version, taken) ----------------------------------------
_NODE_DAY_COLUMNS = "day, node_id, version, taken"


def _node_day_row(node_day: NodeDay) -> tuple[date, str, int, Jsonb]:
    """The row of ``node_day``: ``taken`` as a JSON object."""
    return node_day.day, node_day.node_id, node_day.version, Jsonb(dict(node_day.taken))


def _node_day(row: Sequence[Any], where: str) -> NodeDay:
    """The node day a row of :data:`_NODE_DAY_COLUMNS` holds (``taken`` read back as a dict), at its
    stored version."""
    day, node_id, version, taken = row
    return decode_node_day(node_id, day, version, taken, what=f"{where}: capacity {node_id}/{day}")


class PostgresCapacityRepository(StagedCapacity):
    """Node days of one unit: loaded days are read from their rows, hence copies; changes wait for
    commit."""

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, node_id: str, day: date) -> NodeDay | None:
        with self._uow.db() as conn:
            row = conn.execute(
                f"SELECT {_NODE_DAY_COLUMNS} FROM node_capacity WHERE day = %s AND node_id = %s",
                (day, node_id),
            ).fetchone()
        return None if row is None else _node_day(row, self._uow.url)

    def _load_for_day(self, day: date, node_ids: Sequence[str]) -> list[NodeDay]:
        with self._uow.db() as conn:
            rows = conn.execute(
                f"SELECT {_NODE_DAY_COLUMNS} FROM node_capacity WHERE day = %s AND node_id = ANY(%s)",
                (day, list(node_ids)),
            ).fetchall()
        return [_node_day(row, self._uow.url) for row in rows]


class PostgresOutbox(StagedOutbox):
    """Pending events in position order; ids marked published are applied at commit."""

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def pending(self, limit: int = 100) -> list[OutboxRecord]:
        with self._uow.db() as conn:
            rows = conn.execute(
                "SELECT position, event_id, body::text FROM outbox ORDER BY position LIMIT %s",
                (check_limit(limit),),
            ).fetchall()
        return [
            OutboxRecord(position, self._uow.decode(body, OrderEvent, f"outbox event {event_id}"))
            for position, event_id, body in rows
        ]


class PostgresIdempotency(StagedIdempotency):
    """Idempotency keys of one unit: added records wait for commit."""

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self, key: str) -> IdempotencyRecord | None:
        with self._uow.db() as conn:
            row = conn.execute(
                "SELECT order_id, fingerprint, created_at FROM idempotency_keys WHERE key = %s", (key,)
            ).fetchone()
        if row is None:
            return None
        order_id, fingerprint, created_at = row
        try:
            return IdempotencyRecord(key, OrderId(order_id), fingerprint, created_at)
        except OrderCoreError as e:
            raise StoreUnavailable(f"{self._uow.url}: idempotency key {key!r} cannot be read: {e}") from e


class PostgresNodes(StagedNodes):
    """Node states of one unit: the version is read (or taken from the unit's last read of stock
    versions), and the rows only when the store keeps no copy of that version; changes wait for commit."""

    def __init__(self, uow: PostgresUnitOfWork) -> None:
        super().__init__()
        self._uow = uow

    def _load(self) -> NodeStates:
        with self._uow.db() as conn:
            version = self._uow.node_version_seen
            if version is None:
                row = conn.execute("SELECT version FROM node_states_version").fetchone()
                version = 0 if row is None else row[0]
            return node_states_at(
                self._uow.node_states_cache,
                version,
                lambda: conn.execute(_NODE_STATES_JOINED).fetchall(),
                self._uow.url,
                _same,
            )


# the version with the rows, in one statement (one snapshot): one row per node, or one without
_NODE_STATES_JOINED = (
    "SELECT v.version, s.node_id, s.online, s.changed_at, s.actor_kind, s.actor_id, s.reason"
    " FROM node_states_version v LEFT JOIN node_states s ON true"
)


def _same(value: Any) -> Any:
    return value


class PostgresUnitOfWork(StagedUnitOfWork):
    """Stages changes; a commit checks versions and writes everything in one transaction."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn: Connection | None = None
        #: the node states' version read with the stock versions of this unit, if any
        self.node_version_seen: int | None = None
        super().__init__()

    @property
    def node_states_cache(self) -> VersionedCopies[str, NodeStates]:
        """The node states the store last read or wrote, by version."""
        return self._store.node_states_cache

    def _repositories(
        self,
    ) -> tuple[
        PostgresOrderRepository,
        PostgresInventoryRepository,
        PostgresCapacityRepository,
        PostgresOutbox,
        PostgresIdempotency,
        PostgresNodes,
    ]:
        self.node_version_seen = None
        return (
            PostgresOrderRepository(self),
            PostgresInventoryRepository(self),
            PostgresCapacityRepository(self),
            PostgresOutbox(self),
            PostgresIdempotency(self),
            PostgresNodes(self),
        )

    @property
    def url(self) -> str:
        """The store's URL (its password masked), for messages."""
        return self._store.url

    @property
    def orders_cache(self) -> VersionedCopies[OrderId, Order]:
        """The store's decoded orders, by id and version."""
        return self._store.orders_cache

    @property
    def stock_cache(self) -> VersionedCopies[tuple[str, str], StockPosition]:
        """The store's decoded stock positions, by (node id, SKU) and version."""
        return self._store.stock_cache

    def _release(self) -> None:
        self.close()

    def close(self) -> None:
        """Close this unit's connection, if it opened one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._store.release(conn)

    @contextmanager
    def db(self, *, writes: bool = False) -> Iterator[Connection]:
        """This unit's connection, opened on first use; driver errors become StoreUnavailable (see
        :func:`unavailable`; ``writes``: the block commits), and a connection left broken by one is
        dropped so that the next use reconnects. A value PostgreSQL cannot store (text with a NUL or an
        unpaired surrogate; with ``writes``, a number beyond its column) is InvalidValue instead: nothing
        was written, and the connection stays in use."""
        self._store.check_open()
        if self._conn is None or self._conn.closed:
            self.close()
            self._conn = self._store.connect()
        conn = self._conn
        try:
            yield conn
        except UnicodeEncodeError as e:  # text UTF-8 cannot write: refused before anything was sent
            raise refused(e) from e
        except psycopg.Error as e:
            broken = conn.broken
            if broken:
                self.close()
            refusal = None if broken else refused(e, writes=writes)
            if refusal is not None:
                raise refusal from e
            raise unavailable(self._store.url, e, broken=broken, writes=writes) from e

    def purge(self, *, keys_before: datetime | None, days_before: date | None) -> tuple[int, int]:
        """Delete idempotency keys recorded before ``keys_before`` and capacity rows of days before
        ``days_before``, in one transaction of their own (see :class:`ordercore.ports.Housekeeping`)."""
        check_purge(keys_before, days_before)
        with self.db(writes=True) as conn, conn.transaction():
            keys = days = 0
            if keys_before is not None:
                keys = conn.execute(
                    "DELETE FROM idempotency_keys WHERE created_at < %s", (keys_before,)
                ).rowcount
            if days_before is not None:
                days = conn.execute("DELETE FROM node_capacity WHERE day < %s", (days_before,)).rowcount
        return keys, days

    def lapsed_positions(self, at: datetime, limit: int) -> list[tuple[str, Sku]]:
        """The positions holding a soft reservation lapsed by ``at`` (see
        :class:`ordercore.ports.LapsedReservations`): found through the index of ``expires_at``, so that
        a sweep reads the lapsed reservations only, however many others are open."""
        check_aware(at, "at")
        with self.db() as conn:
            rows = conn.execute(
                "SELECT DISTINCT node_id, sku FROM stock_reservations"
                " WHERE expires_at IS NOT NULL AND expires_at <= %s ORDER BY node_id, sku LIMIT %s",
                (at, check_limit(limit)),
            ).fetchall()
        return [(node_id, Sku(sku)) for node_id, sku in rows]

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
        r"""One transaction in one round trip: every statement of the commit, its values bound client-side
        (as psycopg's ``ClientCursor.mogrify`` binds them; see :meth:`_Commit._literal`), goes to the server
        as one text, which PostgreSQL runs as a
        single implicit transaction (the connection is in autocommit). The statements run prepared (see
        :class:`PreparedStatements`): the text ``EXECUTE``\ s them, after the ``PREPARE`` of those the
        connection has not prepared yet. Each write whose row count matters
        (an idempotency key, a new order, a version-checked order, position or node day, a published mark)
        is followed in the same statement by ``ordercore_check_rows``, which fails the whole transaction
        when the write touched no row; the number of that check says which write it was, and its
        ``failure`` tells why (by reading the row now). Statements come in key order, so concurrent
        commits take their row locks in the same order."""
        with self.db(writes=True) as conn:
            commit = _Commit(psycopg.ClientCursor(conn), self._store.statements)
            try:
                if node_version is not None:
                    self._check_node_states(conn, commit, node_version, node_statuses)
                for record in keys:
                    self._write_key(commit, record)
                for order in changed:
                    self._write_order(conn, commit, order, new=order.id in new)
                for position in positions:
                    self._write_position(conn, commit, position)
                for node_day in days:
                    self._write_node_day(conn, commit, node_day)
                for event_id in published:
                    self._mark_published(commit, event_id)
                converter, stored_json = self._store.converter, self._store.json
                for position in positions:
                    for statement in reservation_statements(position, stored_json.reservation):
                        commit.add(*statement)
                    rows = ledger_rows(position, converter, stored_json.entry)
                    if rows:
                        commit.add(*insert_rows(INSERT_LEDGER, rows))
                try:
                    try:
                        conn.execute(commit.text(conn), prepare=False)
                    except psycopg.errors.InvalidSqlStatementName:
                        # a statement this store prepared on the connection is gone (someone ran
                        # DEALLOCATE on it): the transaction failed before writing anything; ask the server
                        # what it has
                        self._forget_prepared(conn)
                        conn.execute(commit.text(conn), prepare=False)
                except psycopg.errors.UniqueViolation as e:  # an order's new channel + reference is taken
                    taken = next((o for o in changed if o.id not in new and o.external_ref is not None), None)
                    if taken is None:
                        raise
                    raise DuplicateOrder(f"{taken.channel} already sent {taken.external_ref!r}") from e
                except psycopg.Error as e:
                    failure = commit.failure(e)
                    if failure is None:
                        # not one of the writes the text runs after its PREPAREs: what ran is not known
                        self._forget_prepared(conn)
                        raise
                    raise failure() from None
            except (UnicodeEncodeError, psycopg.DataError) as e:
                # a value PostgreSQL cannot store, refused by psycopg or the server: the transaction (if it
                # began) was rolled back, and what the text's PREPAREs did is not known
                refusal = None if conn.broken else refused(e, commit.statements, writes=True)
                if refusal is None:
                    raise
                self._forget_prepared(conn)
                raise refusal from e
        # what was just committed is what the next unit will read: keep it, so that it is not decoded
        keep_committed(
            self.orders_cache, self.stock_cache, self.node_states_cache, changed, positions, self.nodes
        )

    def _forget_prepared(self, conn: Connection) -> None:
        if self._store.statements is not None:
            self._store.statements.forget(conn)

    # -- writing: the statements of a commit ------------------------------------------------------------
    def _check_node_states(
        self, conn: Connection, commit: _Commit, expected: int, statuses: Sequence[NodeStatus]
    ) -> None:
        """The node states must still be at ``expected`` when this transaction commits: every commit that
        read them holds the states' advisory lock shared, one changing them holds it alone, so a change
        waits for the commits that checked the old version, and they for it."""
        lock = "pg_advisory_xact_lock" if statuses else "pg_advisory_xact_lock_shared"
        commit.add(f"SELECT {lock}(hashtext(%s))", (f"ordercore node states {self._store.schema}",))

        def changed() -> OrderCoreError:
            row = conn.execute("SELECT version FROM node_states_version").fetchone()
            return node_states_changed(expected, None if row is None else row[0])

        if not statuses:
            commit.add_expected("SELECT 1 FROM node_states_version WHERE version = %s", (expected,), changed)
            return
        commit.add_checked(
            "UPDATE node_states_version SET version = %s WHERE version = %s",
            (expected + 1, expected),
            changed,
        )
        query, params = insert_rows(
            "INSERT INTO node_states (node_id, online, changed_at, actor_kind, actor_id, reason)",
            [(s.node_id, s.online, s.changed_at, s.actor.kind, s.actor.id, s.reason) for s in statuses],
        )
        commit.add(
            query + " ON CONFLICT (node_id) DO UPDATE SET online = excluded.online,"
            " changed_at = excluded.changed_at, actor_kind = excluded.actor_kind,"
            " actor_id = excluded.actor_id, reason = excluded.reason",
            params,
        )

    @staticmethod
    def _write_key(commit: _Commit, record: IdempotencyRecord) -> None:
        # a concurrent transaction inserting the same key makes this one wait for its outcome
        commit.add_checked(
            "INSERT INTO idempotency_keys (key, order_id, fingerprint, created_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (record.key, record.order_id.value, record.fingerprint, record.created_at),
            lambda: key_taken(record.key),
        )

    def _write_order(self, conn: Connection, commit: _Commit, order: Order, *, new: bool) -> None:
        columns = (
            order.channel.value,
            order.external_ref,
            order.status.name,
            status_since(order),
            order.version,
        )
        body = self._store.json.order(order)
        if new:
            # DO NOTHING covers both unique keys (id, channel + reference) without aborting the transaction
            commit.add_checked(
                "INSERT INTO orders (id, channel, external_ref, status, status_since, version, body)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
                (order.id.value, *columns, body),
                lambda: self._duplicate(conn, order),
            )
        else:

            def conflict() -> OrderCoreError:
                row = conn.execute("SELECT version FROM orders WHERE id = %s", (order.id.value,)).fetchone()
                return ConcurrencyConflict(order.id, order.persisted_version, None if row is None else row[0])

            commit.add_checked(
                "UPDATE orders SET channel = %s, external_ref = %s, status = %s, status_since = %s,"
                " version = %s, body = %s::jsonb WHERE id = %s AND version = %s",
                (*columns, body, order.id.value, order.persisted_version),
                conflict,
            )
        if self.orders.read_models_changed(order):
            for query, params in read_model_statements(order, new=new):
                commit.add(query, params)
        events = [
            (ev.event_id, order.id.value, type(ev).__name__, self._store.json.event(ev))
            for ev in order.new_events()
        ]
        if events:
            commit.add(*insert_rows(INSERT_OUTBOX, events))

    @staticmethod
    def _duplicate(conn: Connection, order: Order) -> DuplicateOrder:
        if conn.execute("SELECT 1 FROM orders WHERE id = %s", (order.id.value,)).fetchone() is not None:
            return DuplicateOrder(f"order {order.id} already exists", existing_order_id=order.id)
        row = conn.execute(
            "SELECT id FROM orders WHERE channel = %s AND external_ref = %s",
            (order.channel.value, order.external_ref),
        ).fetchone()
        return DuplicateOrder(
            f"{order.channel} already sent {order.external_ref!r}",
            existing_order_id=None if row is None else OrderId(row[0]),
        )

    def _write_position(self, conn: Connection, commit: _Commit, position: StockPosition) -> None:
        key = (position.node_id, position.sku.value)
        expected = position.persisted_version
        body = self._store.json.position_row(position)

        def conflict() -> OrderCoreError:
            row = conn.execute("SELECT version FROM stock WHERE node_id = %s AND sku = %s", key).fetchone()
            return ConcurrencyConflict(
                f"stock {position.node_id}/{position.sku}", expected, None if row is None else row[0]
            )

        if expected == 0:
            commit.add_checked(
                "INSERT INTO stock (node_id, sku, version, body) VALUES (%s, %s, %s, %s::jsonb)"
                " ON CONFLICT DO NOTHING",
                (*key, position.version, body),
                conflict,
            )
        else:
            commit.add_checked(
                "UPDATE stock SET version = %s, body = %s::jsonb WHERE node_id = %s AND sku = %s AND version = %s",
                (position.version, body, *key, expected),
                conflict,
            )

    @staticmethod
    def _write_node_day(conn: Connection, commit: _Commit, node_day: NodeDay) -> None:
        day, node_id, version, taken = _node_day_row(node_day)
        expected = node_day.persisted_version

        def conflict() -> OrderCoreError:
            row = conn.execute(
                "SELECT version FROM node_capacity WHERE day = %s AND node_id = %s", (day, node_id)
            ).fetchone()
            return ConcurrencyConflict(f"capacity {node_id}/{day}", expected, None if row is None else row[0])

        if expected == 0:
            commit.add_checked(
                f"INSERT INTO node_capacity ({_NODE_DAY_COLUMNS}) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (day, node_id, version, taken),
                conflict,
            )
        else:
            commit.add_checked(
                "UPDATE node_capacity SET version = %s, taken = %s WHERE day = %s AND node_id = %s"
                " AND version = %s",
                (version, taken, day, node_id, expected),
                conflict,
            )

    @staticmethod
    def _mark_published(commit: _Commit, event_id: str) -> None:
        commit.add_checked(
            "DELETE FROM outbox WHERE event_id = %s",
            (event_id,),
            lambda: InvalidValue("is not in the outbox", field="event_id", value=event_id),
        )


#: SQLSTATEs after which the server has rolled the whole transaction back: class 40 (serialization
#: failure, deadlock detected), a lock not granted (55P03) and a cancelled statement (57014, as a
#: statement timeout cancels it)
_ROLLED_BACK = ("40", "55P03", "57014")


def unavailable(url: str, error: psycopg.Error, *, broken: bool, writes: bool) -> StoreUnavailable:
    """The StoreUnavailable a driver error becomes. A connection that broke while a commit was on its way
    leaves the outcome unknown (the server may have applied it before the reply was lost); one that
    broke on a read wrote nothing, and a new connection may well work (retryable). A transaction the
    server rolled back (:data:`_ROLLED_BACK`) wrote nothing either, and may pass on another attempt."""
    message = f"{url}: {type(error).__name__}: {error}"
    if broken:
        return StoreUnavailable(message, retryable=not writes, outcome_unknown=writes)
    state = error.sqlstate or ""
    return StoreUnavailable(message, retryable=state.startswith(_ROLLED_BACK))


INSERT_OUTBOX = "INSERT INTO outbox (event_id, order_id, type, body)"


class PreparedStatements:
    """The statements a store's commits run prepared: a name per statement text (at most ``limit``
    texts; statements beyond them, or with more than :data:`_MAX_PREPARED_PARAMS` values, run
    unprepared), and which names each connection has prepared (``PREPARE`` lasts for the session, and a
    failed transaction does not undo it). A commit runs as one text of ``EXECUTE`` statements, preceded
    by the ``PREPARE`` of those its connection lacks: the server parses and plans each statement once per
    connection instead of at every commit."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._names: dict[str, tuple[str, str, str]] = {}
        self._on: weakref.WeakKeyDictionary[Connection, set[str]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def entry(self, query: str, n_params: int) -> tuple[str, str, str] | None:
        """``(name, statement with $1..$n, its EXECUTE with %s placeholders)`` for ``query`` (``%s``
        placeholders), or None when it runs unprepared."""
        entry = self._names.get(query)
        if entry is not None:
            return entry
        if n_params > _MAX_PREPARED_PARAMS or "%%" in query or "%(" in query:
            return None
        pieces = query.split("%s")
        body = pieces[0] + "".join(f"${i}{piece}" for i, piece in enumerate(pieces[1:], start=1))
        with self._lock:
            if len(self._names) >= self._limit:
                return self._names.get(query)
            name = f"ordercore_{len(self._names)}"
            execute = f"EXECUTE {name}" + (f" ({', '.join(['%s'] * n_params)})" if n_params else "")
            return self._names.setdefault(query, (name, body, execute))

    def prepared_on(self, conn: Connection) -> set[str]:
        """The names ``conn`` has prepared (asked of the server after :meth:`forget`, or for a connection
        not seen before)."""
        have = self._on.get(conn)
        if have is None:
            rows = conn.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'ordercore\\_%'")
            have = self._on[conn] = {row[0] for row in rows.fetchall()}
        return have

    def forget(self, conn: Connection) -> None:
        """What ``conn`` has prepared is no longer known (its commit failed somewhere in its text)."""
        self._on.pop(conn, None)


#: statements with more values than this run unprepared (a bulk insert of many rows: its text is one of a
#: kind, not worth a prepared statement of its own)
_MAX_PREPARED_PARAMS = 200


class _Commit:
    """The statements of one commit, bound client-side into one text, and what each checked write's
    failure means."""

    def __init__(self, cursor: psycopg.ClientCursor[Any], prepared: PreparedStatements | None = None) -> None:
        self._mogrify = cursor.mogrify
        self._parts: list[str] = []
        #: each statement added, with its values (to say which value the server or psycopg refused)
        self.statements: list[tuple[str, Sequence[Any]]] = []
        self._failures: list[Callable[[], OrderCoreError]] = []
        self._prepared = prepared
        self._needs: dict[str, str] = {}
        info = cursor.connection.info
        # plain quoting is exact only where backslashes are ordinary characters in '...' and the text goes
        # as UTF-8, as the session reports (the defaults); elsewhere psycopg binds every value
        self._plain = (
            info.parameter_status("standard_conforming_strings") == "on" and info.encoding == "utf-8"
        )

    def _bound(self, query: str, params: Sequence[Any]) -> str:
        self.statements.append((query, params))
        prepared = self._prepared
        entry = None if prepared is None else prepared.entry(query, len(params))
        if entry is None:
            return self._mogrify(query, params)
        name, body, execute = entry
        self._needs[name] = body
        if not self._plain or not params:
            return self._mogrify(execute, params)
        return f"EXECUTE {name} ({', '.join([self._literal(value) for value in params])})"

    def _literal(self, value: Any) -> str:
        """``value`` as a literal of the commit's text, as psycopg writes it: text, whole numbers, booleans,
        NULL, aware times (whole-minute offsets) and finite decimals written here (the bulk of every commit:
        its JSON bodies), anything else by psycopg itself."""
        kind = type(value)
        if kind is str:
            text: str = value
            if "\x00" not in text:  # text holds no NUL: psycopg refuses it
                return "'" + text.replace("'", "''") + "'"
        elif kind is int:
            return str(value) if value >= 0 else f" {value}"  # a space, as psycopg puts: never "--"
        elif value is None:
            return "NULL"
        elif kind is bool:
            return "true" if value else "false"
        elif kind is datetime:
            offset = value.utcoffset()
            if offset is not None and not offset.seconds % 60 and not offset.microseconds:
                return f"'{value}'::timestamptz"  # as psycopg writes it: ISO 8601, a space for the T
        elif kind is Decimal and value.is_finite():
            return str(value) if not value.is_signed() else f" {value}"
        return self._mogrify("%s", (value,))

    def add(self, query: str, params: Sequence[Any]) -> None:
        self._parts.append(self._bound(query, params))

    def add_checked(self, query: str, params: Sequence[Any], failure: Callable[[], OrderCoreError]) -> None:
        """``query`` (an INSERT, UPDATE or DELETE) must touch exactly one row, or the commit fails with
        what ``failure`` returns."""
        number = len(self._failures)
        self._failures.append(failure)
        self._parts.append(
            self._bound(
                f"WITH written AS ({query} RETURNING 1)"
                " SELECT ordercore_check_rows((SELECT count(*) FROM written), 1, %s)",
                (*params, number),
            )
        )

    def add_expected(self, query: str, params: Sequence[Any], failure: Callable[[], OrderCoreError]) -> None:
        """``query`` (a SELECT) must find exactly one row, or the commit fails with what ``failure``
        returns."""
        number = len(self._failures)
        self._failures.append(failure)
        self._parts.append(
            self._bound(
                f"SELECT ordercore_check_rows((SELECT count(*) FROM ({query}) AS found), 1, %s)",
                (*params, number),
            )
        )

    def text(self, conn: Connection) -> str:
        """The commit's text for ``conn``: first the ``PREPARE`` of each statement it has not prepared yet
        (so that they run before anything can fail), then the statements."""
        prepared = self._prepared
        if prepared is None or not self._needs:
            return ";\n".join(self._parts)
        have = prepared.prepared_on(conn)
        first = [f"PREPARE {name} AS {body}" for name, body in self._needs.items() if name not in have]
        have.update(self._needs)
        return ";\n".join([*first, *self._parts])

    def failure(self, error: psycopg.Error) -> Callable[[], OrderCoreError] | None:
        """What a failed check of this commit means; None when ``error`` is no failed check of ours."""
        if error.sqlstate != ROW_CHECK_FAILED:
            return None
        detail = error.diag.message_detail or ""
        if not detail.isdigit() or int(detail) >= len(self._failures):
            return None
        return self._failures[int(detail)]
