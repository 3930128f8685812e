"""The PostgreSQL schema: tables for orders, stock levels and the outbox, versioned by ``schema_version``.

Whole aggregates are stored as JSONB (``body``); the other columns exist to index, filter and check
versions. Identifiers use the "C" collation so that ordering and paging by id match the other stores
(code point order) whatever the database's locale.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from ordercore.errors import StoreUnavailable

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "ensure_schema"]

SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "ordercore"

_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
        version   INTEGER NOT NULL
    )
"""

_TABLES = (
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


def ensure_schema(conn: psycopg.Connection[Any], schema: str, where: str) -> None:
    """Create the schema and its tables if missing (idempotent), in one transaction; refuse a newer schema.

    A transaction-scoped advisory lock keyed by the schema name serialises stores opening at the same time,
    since concurrent ``CREATE ... IF NOT EXISTS`` statements can still collide in PostgreSQL.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ordercore schema {schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(_VERSION_TABLE)
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        found = 0 if row is None else row[0]
        if found > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{where} has schema version {found}; this adapter knows version {SCHEMA_VERSION} at most"
            )
        for statement in _TABLES:
            conn.execute(statement)
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif found < SCHEMA_VERSION:
            conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
