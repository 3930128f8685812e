"""The SQLite schema: tables for orders, stock positions, their ledger, node capacity and the outbox,
versioned by ``PRAGMA user_version``.

Whole aggregates are stored as JSON (``body``); the other columns exist to index, filter and check versions.
The stock ledger is append-only: triggers refuse to change or delete its rows.

Versions: 1 had orders, the outbox and stock levels; 2 stores stock positions (the JSON of
``StockPosition``) next to their ledger (``stock_ledger``). Migrating a version 1 database upgrades it in one
transaction: each stock level becomes a position whose ledger opens with what the level held (see
:func:`ordercore.storage.upgrade_stock_level`). 3 adds ``node_capacity``: the shipments each node has taken
on per dispatch day (a :class:`~ordercore.inventory.NodeDay`), one row per node and day, kept when empty so
that its version only grows. 4 adds ``idempotency_keys``: a request's idempotency key, the order it placed
and the fingerprint of its payload, written in the order's transaction (the key is the primary key, so two
transactions with one key cannot both commit). 5 adds the read models, written with each order in its
transaction: ``orders.status_since`` (when the order entered its status), ``order_holds`` (its active holds)
and ``order_backorders`` (its lines with backordered units, with the SKU and when the order was placed);
upgrading fills them from every stored order, decoded as the store decodes it. 6 adds ``order_digests``,
the read model of a customer's recent orders (``RecentOrders``): one row per order placed and neither
rejected nor cancelled, with its customer, when it was placed, its items (a JSON array of [SKU, live
units] pairs) and its grand total, indexed by customer and time; upgrading fills it from every stored
order likewise. 7 adds the node states every worker shares (see :mod:`ordercore.inventory.status`):
``node_states``, one row per node ever switched online or offline (who, when, why), and
``node_states_version``, one row whose version grows with every change and which a commit that read the
states checks. 8 adds ``stock_reservations``: each open reservation of a position in a row of its own (its
JSON), so that a position's body holds none and writing it costs the same however many orders hold its
units; upgrading moves the reservations each body holds into rows. 9: an event leaves the outbox once
published (its order's history keeps it), so that the table holds only what is still to be sent;
upgrading deletes the rows earlier versions kept marked published. 10 adds
``stock_reservations.expires_at``, a soft reservation's expiry (NULL for a hard one), indexed over the soft
ones: housekeeping finds the lapsed carts without reading every open reservation; upgrading fills it from
each row's JSON. 11 drops what version 9 left without use: the outbox's ``published`` column (every row
still there is pending) and its index ``outbox_pending``; pending events are read in ``position`` order, the
table's own key. Where SQLite is older than 3.35 (no ``DROP COLUMN``), the column stays, never read nor
written, with its default. Times in the read models and in ``expires_at`` are UTC ISO 8601 text with
microseconds, so that they sort as text.

A new (empty) database is created at :data:`SCHEMA_VERSION` when opened. An older one is refused
(``StoreUnavailable``) unless it is opened to migrate (``migrate=True``, or ``ordercore migrate``), which
applies every pending step in one transaction. A file that is not ordercore's (a negative
``user_version``, or version 0 with tables ordercore never creates) is refused, unchanged; so is one at version 0 that holds
ordercore's own tables (its version stamp was lost: the version its tables are at cannot be told).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import cattrs

from ordercore.errors import InvalidValue, StoreUnavailable
from ordercore.inventory import LedgerEntry, Reservation, StockPosition
from ordercore.order import Order
from ordercore.serialization import make_converter, to_json
from ordercore.storage import (
    backorder_rows,
    decode_stored,
    hold_rows,
    order_digest,
    status_since,
    upgrade_stock_level,
)
from ordercore_adapters._sql import OWN_TABLES, check_unversioned

__all__ = [
    "DELETE_RESERVATION",
    "INSERT_LEDGER",
    "OWN_TABLES",
    "SCHEMA_VERSION",
    "STEP_DESCRIPTIONS",
    "UPSERT_RESERVATION",
    "Migration",
    "bound_time",
    "digest_items",
    "expiry_of",
    "read_time",
    "ensure_schema",
    "ledger_rows",
    "stored_time",
    "write_read_models",
]

SCHEMA_VERSION = 11

# what the step to each version does, one line each (shown by ``ordercore migrate``)
STEP_DESCRIPTIONS: dict[int, str] = {
    1: "orders, the outbox and stock levels",
    2: "stock ledger: stock levels become positions with an append-only ledger",
    3: "node capacity: the shipments each node takes on per dispatch day",
    4: "idempotency keys: a request's key, the order it placed and its payload's fingerprint",
    5: "read models: orders.status_since, order_holds and order_backorders, filled from every order",
    6: "recent orders: order_digests, each customer's placed orders, filled from every order",
    7: "node states: which nodes are offline, who switched them and why, shared by every worker",
    8: "stock reservations: each open reservation in a row of its own, moved out of its position's body",
    9: "outbox: an event leaves it once published, as on memory://; the events kept published are deleted",
    10: "lapsed carts: stock_reservations.expires_at, indexed, filled from each soft reservation",
    11: "outbox: the published column and its index go; every row left is pending, read in position order",
}


class Migration(NamedTuple):
    """What opening a database found and did: its version, the version it is brought to, the steps
    (version, description) that take it there, and whether they were applied (not on a dry run)."""

    found: int
    target: int
    steps: tuple[tuple[int, str], ...]
    applied: bool


def pending_steps(found: int) -> tuple[tuple[int, str], ...]:
    """The steps, with their descriptions, from version ``found`` to :data:`SCHEMA_VERSION`."""
    return tuple((v, STEP_DESCRIPTIONS[v]) for v in range(found + 1, SCHEMA_VERSION + 1))


def older_schema(where: str, found: int) -> StoreUnavailable:
    """The error for a database at an older version, opened without ``migrate``."""
    return StoreUnavailable(
        f"{where} has schema version {found}, older than version {SCHEMA_VERSION} that this adapter expects;"
        f" run `ordercore migrate --store {where}` to migrate it"
    )


# bodies are declared TEXT: a declared type of JSON would give the column NUMERIC affinity
_VERSION_1 = (
    """
    CREATE TABLE IF NOT EXISTS orders (
        id           TEXT    PRIMARY KEY,
        channel      TEXT    NOT NULL,
        external_ref TEXT,
        status       TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        body         TEXT    NOT NULL,
        UNIQUE (channel, external_ref)
    )
    """,
    "CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, id)",
    """
    CREATE TABLE IF NOT EXISTS outbox (
        position  INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id  TEXT    NOT NULL UNIQUE,
        order_id  TEXT    NOT NULL REFERENCES orders (id),
        type      TEXT    NOT NULL,
        body      TEXT    NOT NULL,
        published INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (published, position)",
    """
    CREATE TABLE IF NOT EXISTS stock (
        node_id TEXT    NOT NULL,
        sku     TEXT    NOT NULL,
        version INTEGER NOT NULL,
        body    TEXT    NOT NULL,
        PRIMARY KEY (node_id, sku)
    )
    """,
    "CREATE INDEX IF NOT EXISTS stock_by_sku ON stock (sku, node_id)",
)

_VERSION_2 = (
    """
    CREATE TABLE IF NOT EXISTS stock_ledger (
        node_id  TEXT    NOT NULL,
        sku      TEXT    NOT NULL,
        sequence INTEGER NOT NULL,
        kind     TEXT    NOT NULL,
        quantity INTEGER NOT NULL,
        at       TEXT    NOT NULL,
        key      TEXT    NOT NULL DEFAULT '',
        body     TEXT    NOT NULL,
        PRIMARY KEY (node_id, sku, sequence),
        FOREIGN KEY (node_id, sku) REFERENCES stock (node_id, sku)
    )
    """,
    """
    CREATE TRIGGER IF NOT EXISTS stock_ledger_no_update BEFORE UPDATE ON stock_ledger
    BEGIN SELECT RAISE(ABORT, 'the stock ledger is append-only'); END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS stock_ledger_no_delete BEFORE DELETE ON stock_ledger
    BEGIN SELECT RAISE(ABORT, 'the stock ledger is append-only'); END
    """,
)

_VERSION_3 = (
    # day: ISO date text; taken: a JSON object, key -> shipments
    """
    CREATE TABLE IF NOT EXISTS node_capacity (
        day     TEXT    NOT NULL,
        node_id TEXT    NOT NULL,
        version INTEGER NOT NULL,
        taken   TEXT    NOT NULL,
        PRIMARY KEY (day, node_id)
    )
    """,
)

_VERSION_4 = (
    # written before the order it names in the same transaction, hence the deferred reference;
    # created_at: ISO 8601 text with its offset
    """
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        key         TEXT    PRIMARY KEY,
        order_id    TEXT    NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
        fingerprint TEXT    NOT NULL,
        created_at  TEXT    NOT NULL
    )
    """,
)

# (the orders table gains ``status_since TEXT NOT NULL DEFAULT ''`` first, unless it has it)
_VERSION_5 = (
    "CREATE INDEX IF NOT EXISTS orders_by_status_since ON orders (status, status_since, id)",
    """
    CREATE TABLE IF NOT EXISTS order_holds (
        order_id  TEXT NOT NULL REFERENCES orders (id),
        code      TEXT NOT NULL,
        message   TEXT NOT NULL,
        placed_at TEXT NOT NULL,
        PRIMARY KEY (order_id, code)
    )
    """,
    "CREATE INDEX IF NOT EXISTS order_holds_by_code ON order_holds (code, placed_at, order_id)",
    "CREATE INDEX IF NOT EXISTS order_holds_by_age ON order_holds (placed_at, order_id, code)",
    """
    CREATE TABLE IF NOT EXISTS order_backorders (
        order_id  TEXT    NOT NULL REFERENCES orders (id),
        line_id   TEXT    NOT NULL,
        sku       TEXT    NOT NULL,
        quantity  INTEGER NOT NULL,
        placed_at TEXT    NOT NULL,
        PRIMARY KEY (order_id, line_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS order_backorders_by_sku ON order_backorders (sku, placed_at, order_id, line_id)",
)

# total: the grand total's amount as decimal text, with its currency
_VERSION_6 = (
    """
    CREATE TABLE IF NOT EXISTS order_digests (
        order_id    TEXT PRIMARY KEY REFERENCES orders (id),
        customer_id TEXT NOT NULL,
        placed_at   TEXT NOT NULL,
        items       TEXT NOT NULL,
        total       TEXT NOT NULL,
        currency    TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS order_digests_by_customer ON order_digests (customer_id, placed_at, order_id)",
)


_VERSION_7 = (
    """
    CREATE TABLE IF NOT EXISTS node_states (
        node_id    TEXT    PRIMARY KEY,
        online     INTEGER NOT NULL,
        changed_at TEXT    NOT NULL,
        actor_kind TEXT    NOT NULL,
        actor_id   TEXT    NOT NULL,
        reason     TEXT    NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS node_states_version (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        version   INTEGER NOT NULL
    )
    """,
    "INSERT OR IGNORE INTO node_states_version (singleton, version) VALUES (1, 0)",
)


_VERSION_8 = (
    """
    CREATE TABLE IF NOT EXISTS stock_reservations (
        node_id TEXT NOT NULL,
        sku     TEXT NOT NULL,
        key     TEXT NOT NULL,
        body    TEXT NOT NULL,
        PRIMARY KEY (node_id, sku, key),
        FOREIGN KEY (node_id, sku) REFERENCES stock (node_id, sku)
    )
    """,
    # every reservation a position's body holds becomes a row, and the body keeps none
    """
    INSERT INTO stock_reservations (node_id, sku, key, body)
    SELECT s.node_id, s.sku, r.key, r.value FROM stock s, json_each(s.body, '$.reservations') r
    """,
    """
    UPDATE stock SET body = json_set(body, '$.reservations', json('{}'))
    WHERE EXISTS (SELECT 1 FROM json_each(body, '$.reservations'))
    """,
)


_VERSION_10 = (
    "CREATE INDEX IF NOT EXISTS stock_reservations_lapse ON stock_reservations (expires_at)"
    " WHERE expires_at IS NOT NULL",
)

#: how a position's reservation rows are written: inserted, or replaced when the key holds one already;
#: the parameters are (node id, SKU, key, JSON body, expiry as :func:`stored_time` or None)
UPSERT_RESERVATION = (
    "INSERT INTO stock_reservations (node_id, sku, key, body, expires_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (node_id, sku, key) DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at"
)
DELETE_RESERVATION = "DELETE FROM stock_reservations WHERE node_id = ? AND sku = ? AND key = ?"


def stored_time(at: datetime, field: str = "time") -> str:
    """``at`` as the read models store it: UTC ISO 8601 with microseconds, which sorts as text. A time whose
    UTC instant is before year 1 or after year 9999 (year 1 at +01:00, say) has no such text: InvalidValue
    naming ``field``."""
    try:
        return at.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:
        raise InvalidValue(
            "cannot be stored: in UTC it is before year 1 or after year 9999", field=field, value=at
        ) from None


#: the texts a query bound beyond the UTC range compares as: just before and just after every text
#: :func:`stored_time` gives (year 0, and the midnight that ends year 9999), never stored nor read back
_BEFORE_EVERY_TIME = "0000-12-31T23:59:59.999999+00:00"
_AFTER_EVERY_TIME = "9999-12-31T24:00:00.000000+00:00"


def bound_time(at: datetime) -> str:
    """``at`` as a query compares it with times written by :func:`stored_time`. A bound whose UTC instant
    is before year 1 or after year 9999 is before or after every stored time: it is clamped to a text just
    beyond them, so that the query answers as memory:// does."""
    try:
        return at.astimezone(UTC).isoformat(timespec="microseconds")
    except OverflowError:  # a positive offset pushes an early time below year 1, a negative one above 9999
        offset = at.utcoffset()
        return _BEFORE_EVERY_TIME if offset is not None and offset > timedelta(0) else _AFTER_EVERY_TIME


def read_time(text: str, what: str) -> datetime:
    """A stored time (ISO 8601 text with its offset); one that cannot be read, or that has no offset to
    compare it by, is a store failure (``what`` names the row)."""
    try:
        at = datetime.fromisoformat(text)
    except (TypeError, ValueError) as e:
        raise StoreUnavailable(f"{what} has no readable time: {e}") from e
    if at.utcoffset() is None:
        raise StoreUnavailable(f"{what} has a time without an offset: {text!r}")
    return at


def expiry_of(reservation: Reservation) -> str | None:
    """A reservation's ``expires_at`` column: its expiry as :func:`stored_time` (None for a hard one)."""
    return None if reservation.expires_at is None else stored_time(reservation.expires_at, "expires_at")


def digest_items(items: AbstractSet[tuple[str, int]]) -> str:
    """A digest's items as stored: a JSON array of [SKU, units] pairs, sorted."""
    return json.dumps(sorted(items))


def write_digest(conn: sqlite3.Connection, order: Order) -> None:
    """Insert the ``order_digests`` row of ``order``, if it has one (see ordercore.storage.order_digest)."""
    digest = order_digest(order)
    if digest is not None:
        conn.execute(
            "INSERT INTO order_digests (order_id, customer_id, placed_at, items, total, currency)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                digest.order_id.value,
                digest.customer_id.value,
                stored_time(digest.placed_at, "placed_at"),
                digest_items(digest.items),
                str(digest.total.amount),
                digest.total.currency,
            ),
        )


def write_read_models(
    conn: sqlite3.Connection, order: Order, *, new: bool = False, digest: bool = True
) -> None:
    """Rewrite the read model tables of ``order`` (whose row, with its ``status_since``, is written): its
    holds, backorders and (unless not ``digest``, for a database before version 6) digest. Runs in the
    transaction that writes the order."""
    if not new:
        conn.execute("DELETE FROM order_holds WHERE order_id = ?", (order.id.value,))
        conn.execute("DELETE FROM order_backorders WHERE order_id = ?", (order.id.value,))
        if digest:
            conn.execute("DELETE FROM order_digests WHERE order_id = ?", (order.id.value,))
    if digest:
        write_digest(conn, order)
    conn.executemany(
        "INSERT INTO order_holds (order_id, code, message, placed_at) VALUES (?, ?, ?, ?)",
        [
            (h.order_id.value, h.code, h.message, stored_time(h.placed_at, "holds.placed_at"))
            for h in hold_rows(order)
        ],
    )
    conn.executemany(
        "INSERT INTO order_backorders (order_id, line_id, sku, quantity, placed_at) VALUES (?, ?, ?, ?, ?)",
        [
            (b.order_id.value, b.line_id.value, sku.value, b.quantity, stored_time(b.placed_at, "placed_at"))
            for sku, b in backorder_rows(order)
        ],
    )


INSERT_LEDGER = (
    "INSERT INTO stock_ledger (node_id, sku, sequence, kind, quantity, at, key, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def ledger_rows(
    position: StockPosition, converter: cattrs.Converter, text: Callable[[LedgerEntry], str] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of ``position``'s new ledger entries, for :data:`INSERT_LEDGER`; ``text`` writes an entry's
    body (``to_json`` by default)."""
    if text is None:
        text = functools.partial(to_json, converter=converter)
    return [
        (
            e.node_id,
            e.sku.value,
            e.sequence,
            e.kind.value,
            e.quantity,
            e.at.isoformat(),
            e.key,
            text(e),
        )
        for e in position.new_entries()
    ]


Step = Callable[[sqlite3.Connection, str, cattrs.Converter], None]


def _create(statements: tuple[str, ...]) -> Step:
    def step(conn: sqlite3.Connection, where: str, converter: cattrs.Converter) -> None:
        for statement in statements:
            conn.execute(statement)

    return step


def _stock_positions(conn: sqlite3.Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 2: the ledger table, and every stock level converted into a position with its ledger."""
    _create(_VERSION_2)(conn, where, converter)
    rows = conn.execute("SELECT node_id, sku, body FROM stock ORDER BY node_id, sku").fetchall()
    if not rows:
        return
    at = datetime.now(UTC)
    for node_id, sku, body in rows:
        position = upgrade_stock_level(body, at=at, what=f"{where}: stock {node_id}/{sku}")
        conn.execute(
            "UPDATE stock SET version = ?, body = ? WHERE node_id = ? AND sku = ?",
            (position.version, to_json(position, converter=converter), node_id, sku),
        )
        conn.executemany(INSERT_LEDGER, ledger_rows(position, converter))


def _read_models(conn: sqlite3.Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 5: the read models, filled from every stored order."""
    if "status_since" not in _columns(conn, "orders"):
        conn.execute("ALTER TABLE orders ADD COLUMN status_since TEXT NOT NULL DEFAULT ''")
    _create(_VERSION_5)(conn, where, converter)
    for order_id, body in conn.execute("SELECT id, body FROM orders ORDER BY id").fetchall():
        order = decode_stored(body, Order, converter, f"{where}: order {order_id}")
        since = stored_time(status_since(order), "status_since")
        conn.execute("UPDATE orders SET status_since = ? WHERE id = ?", (since, order.id.value))
        write_read_models(conn, order, digest=False)  # digests come with version 6


def _recent_orders(conn: sqlite3.Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 6: the digests of recent orders, filled from every stored order."""
    _create(_VERSION_6)(conn, where, converter)
    conn.execute("DELETE FROM order_digests")  # rebuilt whole, whatever a database marked older holds
    for order_id, body in conn.execute("SELECT id, body FROM orders ORDER BY id").fetchall():
        write_digest(conn, decode_stored(body, Order, converter, f"{where}: order {order_id}"))


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}


def _published_deleted(conn: sqlite3.Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 9: the events earlier versions kept marked published leave the outbox."""
    if "published" in _columns(conn, "outbox"):  # a database made by version 11 on has no such column
        conn.execute("DELETE FROM outbox WHERE published = 1")


def _outbox_unmarked(conn: sqlite3.Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 11: the ``published`` column and its index go (the column stays where SQLite cannot drop
    one, before 3.35: nothing reads or writes it, and inserts give it its default)."""
    conn.execute("DROP INDEX IF EXISTS outbox_pending")
    if "published" in _columns(conn, "outbox") and sqlite3.sqlite_version_info >= (3, 35, 0):
        conn.execute("ALTER TABLE outbox DROP COLUMN published")


def _lapse_index(conn: sqlite3.Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 10: the expiry column and its index, filled from every reservation that has an expiry.
    One whose expiry cannot be read as a moment (no offset, say) is a store failure: nothing changes."""
    if "expires_at" not in _columns(conn, "stock_reservations"):
        conn.execute("ALTER TABLE stock_reservations ADD COLUMN expires_at TEXT")
    _create(_VERSION_10)(conn, where, converter)
    rows = conn.execute(
        "SELECT node_id, sku, key, json_extract(body, '$.expires_at') FROM stock_reservations"
        " WHERE json_extract(body, '$.expires_at') IS NOT NULL"
    ).fetchall()
    filled = [
        (
            stored_time(read_time(text, f"{where}: reservation {key!r} of {node_id}/{sku}"), "expires_at"),
            node_id,
            sku,
            key,
        )
        for node_id, sku, key, text in rows
    ]
    conn.executemany(
        "UPDATE stock_reservations SET expires_at = ? WHERE node_id = ? AND sku = ? AND key = ?", filled
    )


# the step that brings a database to each version, from the one before
_STEPS: dict[int, Step] = {
    1: _create(_VERSION_1),
    2: _stock_positions,
    3: _create(_VERSION_3),
    4: _create(_VERSION_4),
    5: _read_models,
    6: _recent_orders,
    7: _create(_VERSION_7),
    8: _create(_VERSION_8),
    9: _published_deleted,
    10: _lapse_index,
    11: _outbox_unmarked,
}


def _check_unversioned(conn: sqlite3.Connection, where: str) -> None:
    """Refuse (``StoreUnavailable``) a database at version 0 that holds any table or view."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    names = (name for (name,) in rows if not name.startswith("sqlite_"))  # SQLite's own (sqlite_sequence)
    check_unversioned(where, names, stamp="version stamp (user_version)")


def ensure_schema(
    conn: sqlite3.Connection,
    where: str,
    converter: cattrs.Converter | None = None,
    *,
    migrate: bool = False,
    dry_run: bool = False,
) -> Migration:
    """Create a new database at :data:`SCHEMA_VERSION`; refuse an older one (``StoreUnavailable``) unless
    ``migrate``, which upgrades it in one transaction; refuse a newer one, and one that is not ordercore's (a
    negative version, or version 0 with tables of its own). With ``dry_run`` (and ``migrate``)
    only work out the steps: the transaction is rolled back. ``converter`` decodes stored orders when an
    upgrade needs them (the store's own, for a store with its own lifecycle; by default one for the default
    lifecycle)."""
    try:
        conn.execute("BEGIN IMMEDIATE")  # in the try: an interrupt just after it still rolls it back
        (found,) = conn.execute("PRAGMA user_version").fetchone()
        if found < 0:
            raise StoreUnavailable(
                f"{where} is not an ordercore database: its schema version (user_version) is {found}"
            )
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{where} has schema version {found}; this adapter knows version {SCHEMA_VERSION} at most"
            )
        if found == 0:
            _check_unversioned(conn, where)
        if 0 < found < SCHEMA_VERSION and not migrate:
            raise older_schema(where, found)
        steps = pending_steps(found)
        if not dry_run:
            decoder = converter or make_converter()
            for version, _ in steps:
                try:
                    _STEPS[version](conn, where, decoder)
                except InvalidValue as e:  # a stored value the new schema cannot hold: the store's failure
                    raise StoreUnavailable(f"{where}: cannot migrate to version {version}: {e}") from e
            if found < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("ROLLBACK" if dry_run else "COMMIT")
        return Migration(found, SCHEMA_VERSION, steps, applied=not dry_run)
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
