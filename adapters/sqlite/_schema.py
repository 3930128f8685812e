"""The SQLite schema: tables for orders, stock levels and the outbox, versioned by ``PRAGMA user_version``.

Whole aggregates are stored as JSON (``body``); the other columns exist to index, filter and check versions.
"""

from __future__ import annotations

import sqlite3

from ordercore.errors import StoreUnavailable

__all__ = ["SCHEMA_VERSION", "ensure_schema"]

SCHEMA_VERSION = 1

# bodies are declared TEXT: a declared type of JSON would give the column NUMERIC affinity
_TABLES = (
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


def ensure_schema(conn: sqlite3.Connection, where: str) -> None:
    """Create the tables if they are missing (idempotent), in one transaction; refuse a newer schema."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (found,) = conn.execute("PRAGMA user_version").fetchone()
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{where} has schema version {found}; this adapter knows version {SCHEMA_VERSION} at most"
            )
        for statement in _TABLES:
            conn.execute(statement)
        if found < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
