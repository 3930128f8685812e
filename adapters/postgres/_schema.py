"""The PostgreSQL schema: tables for orders, stock positions, their ledger, node capacity and the outbox,
versioned by ``schema_version``.

Whole aggregates are stored as JSONB (``body``); the other columns exist to index, filter and check
versions. Identifiers use the "C" collation so that ordering and paging by id match the other stores
(code point order) whatever the database's locale. The stock ledger is append-only: a trigger refuses to
change or delete its rows.

Versions: 1 had orders, the outbox and stock levels; 2 stores stock positions (the JSON of
``StockPosition``) next to their ledger (``stock_ledger``). Migrating a version 1 schema upgrades it in one
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
order likewise. 7 adds ``ordercore_check_rows``, the function a commit calls after each write whose row count
it checks (a version-checked ``UPDATE``, an ``INSERT ... ON CONFLICT DO NOTHING``): it raises
:data:`ROW_CHECK_FAILED` with the number of the failed check as its detail, so that a commit sent to the
server as one text (see ``_unit_of_work``) fails as a whole, writes nothing, and says which write found
its row changed or taken; and the node states every worker shares (see
:mod:`ordercore.inventory.status`): ``node_states``, one row per node ever switched online or offline
(who, when, why), and ``node_states_version``, one row whose version grows with every change and which a
commit that read the states checks, under a transaction-scoped advisory lock (shared by such commits,
exclusive for one changing the states) so that the states cannot change between the check and the
commit. 8 adds ``stock_reservations``: each open reservation of a position in a row of its own (its
JSON), so that a position's body holds none and writing it costs the same however many orders hold its
units; upgrading moves the reservations each body holds into rows. 9: an event leaves the outbox once
published (its order's history keeps it), so that the table holds only what is still to be sent;
upgrading deletes the rows earlier versions kept marked published. 10 adds
``stock_reservations.expires_at``, a soft reservation's expiry (NULL for a hard one), indexed over the soft
ones: housekeeping finds the lapsed carts without reading every open reservation; upgrading fills it from
each row's JSON. 11 drops what version 9 left without use: the outbox's ``published`` column (every row
still there is pending) and its partial index ``outbox_pending``; pending events are read in ``position``
order, the table's primary key. 12 (PostgreSQL only: the SQLite store has no step 12) compresses the
bodies that outgrow a page's share, orders' (which hold their whole history) and events', with lz4
instead of the default pglz, where the server has it (PostgreSQL 14 and later built with lz4): the same
bodies, written for a fraction of the processor time; values stored before stay as they are, readable,
and a server without lz4 keeps its default.

A new (empty) schema is created at :data:`SCHEMA_VERSION` when opened. An older one is refused
(``StoreUnavailable``) unless it is opened to migrate (``migrate=True``, or ``ordercore migrate``), which
applies every pending step in one transaction.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import cattrs
import psycopg
from psycopg import sql

from ordercore.errors import StoreUnavailable
from ordercore.inventory import LedgerEntry, StockPosition
from ordercore.inventory.ledger import Reservation
from ordercore.order import Order
from ordercore.serialization import make_converter, to_json
from ordercore.storage import (
    backorder_rows,
    decode_stored,
    hold_rows,
    order_digest,
    reservation_changes,
    status_since,
    upgrade_stock_level,
)
from ordercore_adapters._sql import check_unversioned

__all__ = [
    "DEFAULT_SCHEMA",
    "INSERT_LEDGER",
    "SCHEMA_VERSION",
    "STEP_DESCRIPTIONS",
    "ROW_CHECK_FAILED",
    "Migration",
    "Statement",
    "digest_statements",
    "ensure_schema",
    "insert_rows",
    "ledger_rows",
    "read_model_statements",
    "reservation_statements",
    "write_read_models",
]

SCHEMA_VERSION = 12
#: the SQLSTATE ``ordercore_check_rows`` raises (a class of its own, outside those PostgreSQL uses)
ROW_CHECK_FAILED = "OC409"
DEFAULT_SCHEMA = "ordercore"

# what the step to each version does, one line each (shown by ``ordercore migrate``)
STEP_DESCRIPTIONS: dict[int, str] = {
    1: "orders, the outbox and stock levels",
    2: "stock ledger: stock levels become positions with an append-only ledger",
    3: "node capacity: the shipments each node takes on per dispatch day",
    4: "idempotency keys: a request's key, the order it placed and its payload's fingerprint",
    5: "read models: orders.status_since, order_holds and order_backorders, filled from every order",
    6: "recent orders: order_digests, each customer's placed orders, filled from every order",
    7: "row checks and node states: ordercore_check_rows, and which nodes are offline, shared by every worker",
    8: "stock reservations: each open reservation in a row of its own, moved out of its position's body",
    9: "outbox: an event leaves it once published, as on memory://; the events kept published are deleted",
    10: "lapsed carts: stock_reservations.expires_at, indexed, filled from each soft reservation",
    11: "outbox: the published column and its index go; every row left is pending, read in position order",
    12: "lz4 compression for order and event bodies, where the server has it (else its default stays)",
}


class Migration(NamedTuple):
    """What opening a schema found and did: its version, the version it is brought to, the steps
    (version, description) that take it there, and whether they were applied (not on a dry run)."""

    found: int
    target: int
    steps: tuple[tuple[int, str], ...]
    applied: bool


def pending_steps(found: int) -> tuple[tuple[int, str], ...]:
    """The steps, with their descriptions, from version ``found`` to :data:`SCHEMA_VERSION`."""
    return tuple((v, STEP_DESCRIPTIONS[v]) for v in range(found + 1, SCHEMA_VERSION + 1))


def older_schema(where: str, found: int) -> StoreUnavailable:
    """The error for a schema at an older version, opened without ``migrate``."""
    return StoreUnavailable(
        f"{where} has schema version {found}, older than version {SCHEMA_VERSION} that this adapter expects;"
        f" run `ordercore migrate --store {where}` to migrate it"
    )


_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
        version   INTEGER NOT NULL
    )
"""

_VERSION_1 = (
    """
    CREATE TABLE IF NOT EXISTS orders (
        id           TEXT COLLATE "C" PRIMARY KEY,
        channel      TEXT    NOT NULL,
        external_ref TEXT,
        status       TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        body         JSONB   NOT NULL,
        CONSTRAINT orders_channel_external_ref_key UNIQUE (channel, external_ref)
    )
    """,
    "CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status, id)",
    """
    CREATE TABLE IF NOT EXISTS outbox (
        position  BIGSERIAL PRIMARY KEY,
        event_id  TEXT    NOT NULL UNIQUE,
        order_id  TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
        type      TEXT    NOT NULL,
        body      JSONB   NOT NULL,
        published BOOLEAN NOT NULL DEFAULT false
    )
    """,
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (position) WHERE NOT published",
    """
    CREATE TABLE IF NOT EXISTS stock (
        node_id TEXT COLLATE "C" NOT NULL,
        sku     TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        body    JSONB   NOT NULL,
        PRIMARY KEY (node_id, sku)
    )
    """,
    "CREATE INDEX IF NOT EXISTS stock_by_sku ON stock (sku, node_id)",
)


_VERSION_2 = (
    """
    CREATE TABLE IF NOT EXISTS stock_ledger (
        node_id  TEXT COLLATE "C" NOT NULL,
        sku      TEXT COLLATE "C" NOT NULL,
        sequence INTEGER     NOT NULL,
        kind     TEXT        NOT NULL,
        quantity INTEGER     NOT NULL,
        at       TIMESTAMPTZ NOT NULL,
        key      TEXT        NOT NULL DEFAULT '',
        body     JSONB       NOT NULL,
        PRIMARY KEY (node_id, sku, sequence),
        FOREIGN KEY (node_id, sku) REFERENCES stock (node_id, sku)
    )
    """,
    """
    CREATE OR REPLACE FUNCTION stock_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the stock ledger is append-only';
    END
    $$
    """,
    """
    CREATE TRIGGER stock_ledger_append_only BEFORE UPDATE OR DELETE ON stock_ledger
    FOR EACH ROW EXECUTE FUNCTION stock_ledger_append_only()
    """,
)

_VERSION_3 = (
    # taken: a JSON object, key -> shipments
    """
    CREATE TABLE IF NOT EXISTS node_capacity (
        day     DATE    NOT NULL,
        node_id TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        taken   JSONB   NOT NULL,
        PRIMARY KEY (day, node_id)
    )
    """,
)

_VERSION_4 = (
    # written before the order it names in the same transaction, hence the deferred reference
    """
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        key         TEXT COLLATE "C" PRIMARY KEY,
        order_id    TEXT COLLATE "C" NOT NULL REFERENCES orders (id) DEFERRABLE INITIALLY DEFERRED,
        fingerprint TEXT        NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL
    )
    """,
)
_VERSION_5 = (
    "ALTER TABLE orders ADD COLUMN IF NOT EXISTS status_since TIMESTAMPTZ",
    """
    CREATE TABLE IF NOT EXISTS order_holds (
        order_id  TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
        code      TEXT COLLATE "C" NOT NULL,
        message   TEXT        NOT NULL,
        placed_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (order_id, code)
    )
    """,
    "CREATE INDEX IF NOT EXISTS order_holds_by_code ON order_holds (code, placed_at, order_id)",
    "CREATE INDEX IF NOT EXISTS order_holds_by_age ON order_holds (placed_at, order_id, code)",
    """
    CREATE TABLE IF NOT EXISTS order_backorders (
        order_id  TEXT COLLATE "C" NOT NULL REFERENCES orders (id),
        line_id   TEXT COLLATE "C" NOT NULL,
        sku       TEXT COLLATE "C" NOT NULL,
        quantity  INTEGER     NOT NULL,
        placed_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (order_id, line_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS order_backorders_by_sku ON order_backorders (sku, placed_at, order_id, line_id)",
)

# after the backfill, which fills status_since for every stored order
_VERSION_5_AFTER = (
    "ALTER TABLE orders ALTER COLUMN status_since SET NOT NULL",
    "CREATE INDEX IF NOT EXISTS orders_by_status_since ON orders (status, status_since, id)",
)

_VERSION_6 = (
    """
    CREATE TABLE IF NOT EXISTS order_digests (
        order_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES orders (id),
        customer_id TEXT COLLATE "C" NOT NULL,
        placed_at   TIMESTAMPTZ NOT NULL,
        items       JSONB       NOT NULL,
        total       NUMERIC     NOT NULL,
        currency    TEXT        NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS order_digests_by_customer ON order_digests (customer_id, placed_at, order_id)",
)

_VERSION_7 = (
    f"""
    CREATE OR REPLACE FUNCTION ordercore_check_rows(touched bigint, expected bigint, check_no integer)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        IF touched IS DISTINCT FROM expected THEN
            RAISE EXCEPTION 'ordercore: checked write % touched % row(s), expected %', check_no, touched, expected
                USING ERRCODE = '{ROW_CHECK_FAILED}', DETAIL = check_no::text;
        END IF;
    END
    $$
    """,
    """
    CREATE TABLE IF NOT EXISTS node_states (
        node_id    TEXT COLLATE "C" PRIMARY KEY,
        online     BOOLEAN     NOT NULL,
        changed_at TIMESTAMPTZ NOT NULL,
        actor_kind TEXT        NOT NULL,
        actor_id   TEXT        NOT NULL,
        reason     TEXT        NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS node_states_version (
        singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
        version   INTEGER NOT NULL
    )
    """,
    "INSERT INTO node_states_version (singleton, version) VALUES (true, 0) ON CONFLICT DO NOTHING",
)

_VERSION_8 = (
    """
    CREATE TABLE IF NOT EXISTS stock_reservations (
        node_id TEXT COLLATE "C" NOT NULL,
        sku     TEXT COLLATE "C" NOT NULL,
        key     TEXT COLLATE "C" NOT NULL,
        body    JSONB NOT NULL,
        PRIMARY KEY (node_id, sku, key),
        FOREIGN KEY (node_id, sku) REFERENCES stock (node_id, sku)
    )
    """,
    # every reservation a position's body holds becomes a row, and the body keeps none
    """
    INSERT INTO stock_reservations (node_id, sku, key, body)
    SELECT s.node_id, s.sku, r.key, r.value FROM stock s, jsonb_each(s.body -> 'reservations') r
    """,
    """
    UPDATE stock SET body = jsonb_set(body, '{reservations}', '{}'::jsonb)
    WHERE body -> 'reservations' <> '{}'::jsonb
    """,
)

_VERSION_11 = ("DROP INDEX IF EXISTS outbox_pending", "ALTER TABLE outbox DROP COLUMN IF EXISTS published")

_VERSION_10 = (
    "ALTER TABLE stock_reservations ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ",
    # every expiry carries its offset (checked first), so the session's time zone does not enter the cast
    """
    UPDATE stock_reservations SET expires_at = (body ->> 'expires_at')::timestamptz
    WHERE body ->> 'expires_at' IS NOT NULL
    """,
    "CREATE INDEX IF NOT EXISTS stock_reservations_lapse ON stock_reservations (expires_at)"
    " WHERE expires_at IS NOT NULL",
)

#: the start of an ``INSERT`` of ledger rows (see :func:`insert_rows` and :func:`ledger_rows`)
INSERT_LEDGER = "INSERT INTO stock_ledger (node_id, sku, sequence, kind, quantity, at, key, body)"


def ledger_rows(
    position: StockPosition, converter: cattrs.Converter, text: Callable[[LedgerEntry], str] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of ``position``'s new ledger entries, for :data:`INSERT_LEDGER` and :func:`insert_rows`; ``text`` writes an entry's
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
            e.at,
            e.key,
            text(e),
        )
        for e in position.new_entries()
    ]


Connection = psycopg.Connection[Any]
Step = Callable[[Connection, str, cattrs.Converter], None]


Statement = tuple[str, tuple[Any, ...]]


def insert_rows(head: str, rows: Sequence[Sequence[Any]]) -> Statement:
    """One ``INSERT`` of every row of ``rows`` (all of one width): ``head`` is the statement up to
    ``VALUES``; the rows travel as its parameters."""
    width = len(rows[0])
    group = "(" + ", ".join(["%s"] * width) + ")"
    return f"{head} VALUES " + ", ".join([group] * len(rows)), tuple(v for row in rows for v in row)


def reservation_statements(position: StockPosition, text: Callable[[Reservation], str]) -> list[Statement]:
    """The statements that bring ``position``'s reservation rows to what it holds (see
    :func:`ordercore.storage.reservation_changes`): one ``INSERT`` of the reservations written (replacing
    those whose key has a row), one ``DELETE`` of the keys gone; ``text`` writes a reservation's JSON."""
    written, gone = reservation_changes(position)
    node_id, sku = position.node_id, position.sku.value
    statements: list[Statement] = []
    if written:
        query, params = insert_rows(
            "INSERT INTO stock_reservations (node_id, sku, key, body, expires_at)",
            [(node_id, sku, r.key, text(r), r.expires_at) for r in written],
        )
        statements.append(
            (
                query + " ON CONFLICT (node_id, sku, key)"
                " DO UPDATE SET body = excluded.body, expires_at = excluded.expires_at",
                params,
            )
        )
    if gone:
        statements.append(
            (
                "DELETE FROM stock_reservations WHERE node_id = %s AND sku = %s AND key = ANY(%s)",
                (node_id, sku, gone),
            )
        )
    return statements


def read_model_statements(order: Order, *, new: bool = False, digest: bool = True) -> list[Statement]:
    """The statements that rewrite the read model tables of ``order`` (whose row, with its
    ``status_since``, is written in the same transaction): its holds, backorders and (unless not
    ``digest``, for a schema before version 6) digest."""
    oid = order.id.value
    statements: list[Statement] = []
    if not new:
        statements.append(("DELETE FROM order_holds WHERE order_id = %s", (oid,)))
        statements.append(("DELETE FROM order_backorders WHERE order_id = %s", (oid,)))
        if digest:
            statements.append(("DELETE FROM order_digests WHERE order_id = %s", (oid,)))
    if digest:
        statements.extend(digest_statements(order))
    holds = [(h.order_id.value, h.code, h.message, h.placed_at) for h in hold_rows(order)]
    if holds:
        statements.append(insert_rows("INSERT INTO order_holds (order_id, code, message, placed_at)", holds))
    backorders = [
        (b.order_id.value, b.line_id.value, sku.value, b.quantity, b.placed_at)
        for sku, b in backorder_rows(order)
    ]
    if backorders:
        statements.append(
            insert_rows(
                "INSERT INTO order_backorders (order_id, line_id, sku, quantity, placed_at)", backorders
            )
        )
    return statements


def digest_statements(order: Order) -> list[Statement]:
    """The ``INSERT`` of the ``order_digests`` row of ``order``, if it has one (see
    ordercore.storage.order_digest)."""
    digest = order_digest(order)
    if digest is None:
        return []
    return [
        (
            "INSERT INTO order_digests (order_id, customer_id, placed_at, items, total, currency)"
            " VALUES (%s, %s, %s, %s::jsonb, %s, %s)",
            (
                digest.order_id.value,
                digest.customer_id.value,
                digest.placed_at,
                json.dumps(sorted(digest.items)),
                digest.total.amount,
                digest.total.currency,
            ),
        )
    ]


def write_read_models(conn: Connection, order: Order, *, new: bool = False, digest: bool = True) -> None:
    """Run :func:`read_model_statements` on ``conn``, inside the transaction that writes the order."""
    for query, params in read_model_statements(order, new=new, digest=digest):
        conn.execute(query, params)


def _create(statements: tuple[str, ...]) -> Step:
    def step(conn: Connection, where: str, converter: cattrs.Converter) -> None:
        for statement in statements:
            conn.execute(statement)

    return step


def _stock_positions(conn: Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 2: the ledger table, and every stock level converted into a position with its ledger."""
    _create(_VERSION_2)(conn, where, converter)
    rows = conn.execute("SELECT node_id, sku, body::text FROM stock ORDER BY node_id, sku").fetchall()
    if not rows:
        return
    at = datetime.now(UTC)
    for node_id, sku, body in rows:
        position = upgrade_stock_level(body, at=at, what=f"{where}: stock {node_id}/{sku}")
        conn.execute(
            "UPDATE stock SET version = %s, body = %s::jsonb WHERE node_id = %s AND sku = %s",
            (position.version, to_json(position, converter=converter), node_id, sku),
        )
        conn.execute(*insert_rows(INSERT_LEDGER, ledger_rows(position, converter)))


def _read_models(conn: Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 5: the read models, filled from every stored order."""
    _create(_VERSION_5)(conn, where, converter)
    for order_id, body in conn.execute("SELECT id, body::text FROM orders ORDER BY id").fetchall():
        order = decode_stored(body, Order, converter, f"{where}: order {order_id}")
        conn.execute(
            "UPDATE orders SET status_since = %s WHERE id = %s", (status_since(order), order.id.value)
        )
        write_read_models(conn, order, digest=False)  # digests come with version 6
    _create(_VERSION_5_AFTER)(conn, where, converter)


def _recent_orders(conn: Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 6: the digests of recent orders, filled from every stored order."""
    _create(_VERSION_6)(conn, where, converter)
    conn.execute("DELETE FROM order_digests")  # rebuilt whole, whatever a schema marked older holds
    for order_id, body in conn.execute("SELECT id, body::text FROM orders ORDER BY id").fetchall():
        for query, params in digest_statements(
            decode_stored(body, Order, converter, f"{where}: order {order_id}")
        ):
            conn.execute(query, params)


def _published_deleted(conn: Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 9: the events earlier versions kept marked published leave the outbox."""
    found = conn.execute(
        "SELECT 1 FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'outbox' AND column_name = 'published'"
    ).fetchone()
    if found is not None:  # a schema made by version 11 on has no such column
        conn.execute("DELETE FROM outbox WHERE published")


def _lapse_index(conn: Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 10: the expiry column and its index, filled from every reservation that has an expiry.
    One whose expiry has no offset (a moment only with one; hours, minutes and seconds, as Python writes
    them) is a store failure, as is one the server cannot read: nothing changes."""
    row = conn.execute(
        "SELECT node_id, sku, key, body ->> 'expires_at' FROM stock_reservations"
        " WHERE body ->> 'expires_at' IS NOT NULL"
        " AND body ->> 'expires_at' !~ '(Z|[+-][0-9]{2}(:?[0-9]{2}(:?[0-9]{2})?)?)$'"
        " ORDER BY node_id, sku, key LIMIT 1"
    ).fetchone()
    if row is not None:
        node_id, sku, key, text = row
        raise StoreUnavailable(
            f"{where}: reservation {key!r} of {node_id}/{sku} has a time without an offset: {text!r}"
        )
    _create(_VERSION_10)(conn, where, converter)


def _lz4_bodies(conn: Connection, where: str, converter: cattrs.Converter) -> None:
    """Version 12: order and event bodies compressed with lz4 from now on, where the server offers it."""
    if lz4_available(conn):
        for table in LZ4_TABLES:
            conn.execute(f"ALTER TABLE {table} ALTER COLUMN body SET COMPRESSION lz4")


#: the tables whose ``body`` version 12 compresses with lz4: those whose bodies outgrow TOAST's threshold
LZ4_TABLES = ("orders", "outbox")


def lz4_available(conn: Connection) -> bool:
    """Whether the server can compress a column with lz4 (no such setting before PostgreSQL 14)."""
    row = conn.execute(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    ).fetchone()
    return bool(row and row[0])


# the step that brings a schema to each version, from the one before
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
    11: _create(_VERSION_11),
    12: _lz4_bodies,
}


def _check_unversioned(conn: Connection, schema: str, where: str) -> None:
    """Refuse (``StoreUnavailable``) a schema without a version that holds any table or view besides the
    ``schema_version`` table this transaction just made and those an extension installed there."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname <> 'schema_version'"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        " AND d.objid = c.oid AND d.deptype = 'e')",  # an extension's own (pg_stat_statements in public)
        (schema,),
    ).fetchall()
    check_unversioned(where, (name for (name,) in rows), stamp="schema_version row")


def ensure_schema(
    conn: Connection,
    schema: str,
    where: str,
    converter: cattrs.Converter | None = None,
    *,
    migrate: bool = False,
    dry_run: bool = False,
) -> Migration:
    """Create a new schema at :data:`SCHEMA_VERSION`; refuse an older one (``StoreUnavailable``) unless
    ``migrate``, which upgrades it in one transaction; refuse a newer one, and one without a version that
    holds tables (another application's, or ordercore's that lost their version). With ``dry_run`` (and ``migrate``)
    only work out the steps: the transaction is rolled back. ``converter`` decodes stored orders when an
    upgrade needs them (the store's own, for a store with its own lifecycle; by default one for the default
    lifecycle).

    A transaction-scoped advisory lock keyed by the schema name serialises stores opening at the same time,
    since concurrent ``CREATE ... IF NOT EXISTS`` statements can still collide in PostgreSQL.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ordercore schema {schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(_VERSION_TABLE)
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        found = 0 if row is None else row[0]
        if row is None:
            _check_unversioned(conn, schema, where)
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{where} has schema version {found}; this adapter knows version {SCHEMA_VERSION} at most"
            )
        if 0 < found < SCHEMA_VERSION and not migrate:
            raise older_schema(where, found)
        steps = pending_steps(found)
        if dry_run:
            raise psycopg.Rollback()  # leaves the block, rolling back what it created
        decoder = converter or make_converter()
        for version, _ in steps:
            _STEPS[version](conn, where, decoder)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif found < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
    return Migration(found, SCHEMA_VERSION, steps, applied=not dry_run)
