"""Processed event ids in the consumer's own SQLite database, marked in the transaction of its effects."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from ordercore.errors import InvalidValue
from ordercore_adapters._sql import check_event_id, check_table
from ordercore_adapters.sqlite._unit_of_work import unavailable, unstorable

__all__ = ["SqliteProcessedEvents"]


class SqliteProcessedEvents:
    """A :class:`~ordercore.consumer.TransactionalProcessedEvents` over a SQLite connection of the consumer's
    own, holding the ids in ``table`` (created if missing: the id as primary key, and when it was processed).

    ``seen`` opens a write transaction (``BEGIN IMMEDIATE``) unless one is open, so that a consumer in
    another process handling the same event waits until this one commits, and then finds it processed;
    the handler writes its effects through :attr:`connection`, in that transaction; ``mark`` adds the id and
    commits both; ``rollback`` drops them. Use it with :class:`~ordercore.consumer.ExactlyOnce` (which
    calls ``rollback`` after a duplicate or a failure), one instance per connection, from one thread at a
    time. A database error is a :class:`~ordercore.errors.StoreUnavailable`, ``retryable`` when the lock
    was not granted within the connection's busy timeout."""

    def __init__(self, connection: sqlite3.Connection, *, table: str = "processed_events") -> None:
        if not isinstance(connection, sqlite3.Connection):
            raise InvalidValue("must be a sqlite3.Connection", field="connection", value=connection)
        if getattr(connection, "autocommit", None) is False:
            # Python 3.12's PEP 249 mode keeps a deferred transaction always open, so seen could not take
            # the write lock before reading, and two consumers could both run the handler
            raise InvalidValue(
                "must not have autocommit=False: open it with autocommit=True or the default"
                " (sqlite3.LEGACY_TRANSACTION_CONTROL), so that seen can take the write lock",
                field="connection",
                value=connection,
            )
        self.connection = connection
        self.table = check_table(table)
        with self._errors("create"):
            was_open = connection.in_transaction
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table}"
                " (event_id TEXT PRIMARY KEY, processed_at TEXT NOT NULL)"
            )
            if not was_open and connection.in_transaction:
                connection.execute("COMMIT")

    def seen(self, event_id: str) -> bool:
        check_event_id(event_id)
        with self._errors("read", "event_id"):
            if not self.connection.in_transaction:
                self.connection.execute("BEGIN IMMEDIATE")
            row = self.connection.execute(
                f"SELECT 1 FROM {self.table} WHERE event_id = ?", (event_id,)
            ).fetchone()
        return row is not None

    def mark(self, event_id: str) -> None:
        check_event_id(event_id)
        with self._errors("mark", "event_id"):
            self.connection.execute(
                f"INSERT INTO {self.table} (event_id, processed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (event_id, datetime.now(UTC).isoformat(timespec="microseconds")),
            )
            if self.connection.in_transaction:  # COMMIT itself: commit() does nothing in autocommit mode
                self.connection.execute("COMMIT")

    def rollback(self) -> None:
        with self._errors("roll back"):
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")

    @contextmanager
    def _errors(self, what: str, field: str = "text") -> Iterator[None]:
        """A sqlite3 error becomes a StoreUnavailable naming the table and what was being done; a text
        SQLite cannot encode, an InvalidValue."""
        try:
            yield
        except sqlite3.Error as e:
            raise unavailable(f"processed events ({self.table}): cannot {what}", e) from e
        except UnicodeEncodeError as e:
            raise unstorable(e, field) from e
