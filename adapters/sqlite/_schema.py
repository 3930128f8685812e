"""The SQLite schema: tables for orders, stock positions, their ledger, node capacity and the outbox,
versioned by ``PRAGMA user_version``.

Whole aggregates are stored as JSON (``body``); the other columns exist to index, filter and check versions.
The stock ledger is append-only: triggers refuse to change or delete its rows.

Versions: 1 had orders, the outbox and stock levels; 2 stores stock positions (the JSON of
``StockPosition``) next to their ledger (``stock_ledger``). Opening a version 1 database upgrades it in one
transaction: each stock level becomes a position whose ledger opens with what the level held (see
:func:`ordercore.storage.upgrade_stock_level`). 3 adds ``node_capacity``: the shipments each node has taken
on per dispatch day (a :class:`~ordercore.inventory.NodeDay`), one row per node and day, kept when empty so
that its version only grows. 4 adds ``idempotency_keys``: a request's idempotency key, the order it placed
and the fingerprint of its payload, written in the order's transaction (the key is the primary key, so two
transactions with one key cannot both commit). Every step runs in the one transaction that opens the
database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import cattrs

from ordercore.errors import StoreUnavailable
from ordercore.inventory import StockPosition
from ordercore.serialization import make_converter, to_json
from ordercore.storage import upgrade_stock_level

__all__ = ["INSERT_LEDGER", "SCHEMA_VERSION", "ensure_schema", "ledger_rows"]

SCHEMA_VERSION = 4

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


INSERT_LEDGER = (
    "INSERT INTO stock_ledger (node_id, sku, sequence, kind, quantity, at, key, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def ledger_rows(position: StockPosition, converter: cattrs.Converter) -> list[tuple[Any, ...]]:
    """The rows of ``position``'s new ledger entries, for :data:`INSERT_LEDGER`."""
    return [
        (
            e.node_id,
            e.sku.value,
            e.sequence,
            e.kind.value,
            e.quantity,
            e.at.isoformat(),
            e.key,
            to_json(e, converter=converter),
        )
        for e in position.new_entries()
    ]


def _create(statements: tuple[str, ...]) -> Callable[[sqlite3.Connection, str], None]:
    def step(conn: sqlite3.Connection, where: str) -> None:
        for statement in statements:
            conn.execute(statement)

    return step


def _stock_positions(conn: sqlite3.Connection, where: str) -> None:
    """Version 2: the ledger table, and every stock level converted into a position with its ledger."""
    _create(_VERSION_2)(conn, where)
    rows = conn.execute("SELECT node_id, sku, body FROM stock ORDER BY node_id, sku").fetchall()
    if not rows:
        return
    converter = make_converter()
    at = datetime.now(UTC)
    for node_id, sku, body in rows:
        position = upgrade_stock_level(body, at=at, what=f"{where}: stock {node_id}/{sku}")
        conn.execute(
            "UPDATE stock SET version = ?, body = ? WHERE node_id = ? AND sku = ?",
            (position.version, to_json(position, converter=converter), node_id, sku),
        )
        conn.executemany(INSERT_LEDGER, ledger_rows(position, converter))


# the step that brings a database to each version, from the one before
_STEPS: dict[int, Callable[[sqlite3.Connection, str], None]] = {
    1: _create(_VERSION_1),
    2: _stock_positions,
    3: _create(_VERSION_3),
    4: _create(_VERSION_4),
}


def ensure_schema(conn: sqlite3.Connection, where: str) -> None:
    """Create or upgrade the schema to :data:`SCHEMA_VERSION`, in one transaction; refuse a newer schema."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (found,) = conn.execute("PRAGMA user_version").fetchone()
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{where} has schema version {found}; this adapter knows version {SCHEMA_VERSION} at most"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            _STEPS[version](conn, where)
        if found < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
