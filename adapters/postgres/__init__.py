"""PostgreSQL store: the scale-out store for ``postgresql://user@host:port/dbname[?schema=NAME]`` URLs.

Orders are stored whole, as JSONB, next to indexed columns (id, channel and external reference, status,
version); a commit writes the orders, their new events (to the outbox), stock positions and their new
ledger entries, and the shipments nodes took on per day (``node_capacity``) in one transaction,
with the same optimistic version checks as the in-memory and SQLite stores. The driver is psycopg 3.
An older schema is refused unless opened with ``migrate=True`` (or migrated by ``ordercore migrate``).
"""

from __future__ import annotations

from ordercore_adapters.postgres._processed import PostgresProcessedEvents
from ordercore_adapters.postgres._schema import DEFAULT_SCHEMA, SCHEMA_VERSION, STEP_DESCRIPTIONS, Migration
from ordercore_adapters.postgres._store import PostgresStore, PostgresTarget, migrate, open_store, parse_url
from ordercore_adapters.postgres._unit_of_work import PostgresUnitOfWork

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMA_VERSION",
    "STEP_DESCRIPTIONS",
    "Migration",
    "PostgresProcessedEvents",
    "PostgresStore",
    "PostgresTarget",
    "PostgresUnitOfWork",
    "migrate",
    "open_store",
    "parse_url",
]
