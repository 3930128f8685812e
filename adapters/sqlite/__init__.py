"""SQLite store: the embedded store for ``sqlite:///path.db`` (a file) and ``sqlite://:memory:`` URLs.

Orders are stored whole, as JSON, next to indexed columns (id, channel and external reference, status,
version); a commit writes the orders, their new events (to the outbox), stock positions and their new
ledger entries, and the shipments nodes took on per day (``node_capacity``) in one transaction,
with the same optimistic version checks as the in-memory store. Only the standard library's sqlite3 is used.
An older database is refused unless opened with ``migrate=True`` (or migrated by ``ordercore migrate``).
"""

from __future__ import annotations

from ordercore_adapters.sqlite._processed import SqliteProcessedEvents
from ordercore_adapters.sqlite._schema import SCHEMA_VERSION, STEP_DESCRIPTIONS, Migration
from ordercore_adapters.sqlite._store import SqliteStore, file_url, migrate, open_store, parse_url
from ordercore_adapters.sqlite._unit_of_work import SqliteUnitOfWork

__all__ = [
    "SCHEMA_VERSION",
    "STEP_DESCRIPTIONS",
    "Migration",
    "SqliteProcessedEvents",
    "SqliteStore",
    "SqliteUnitOfWork",
    "file_url",
    "migrate",
    "open_store",
    "parse_url",
]
