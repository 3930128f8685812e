"""Processed event ids in the consumer's own PostgreSQL database, marked in the transaction of its effects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from ordercore.errors import InvalidValue
from ordercore_adapters._sql import check_event_id, check_table
from ordercore_adapters.postgres._unit_of_work import unavailable
from ordercore_adapters.postgres._unstorable import refused

__all__ = ["PostgresProcessedEvents"]


#: the levels PostgreSQL runs as READ COMMITTED (READ UNCOMMITTED is the same there), by psycopg and by name
_READ_COMMITTED = (
    psycopg.IsolationLevel.READ_COMMITTED,
    psycopg.IsolationLevel.READ_UNCOMMITTED,
    "read committed",
    "read uncommitted",
)


def _check_isolation(connection: psycopg.Connection[Any], level: object) -> None:
    """InvalidValue unless ``level`` (psycopg's setting, or the server's name of one) is READ COMMITTED (or
    READ UNCOMMITTED, which PostgreSQL runs as READ COMMITTED), or None (the server's default, checked when
    the instance is made)."""
    if level is None or level in _READ_COMMITTED:
        return
    shown = level.name if isinstance(level, psycopg.IsolationLevel) else str(level).upper()
    raise InvalidValue(
        f"must run its transactions at READ COMMITTED, not {shown}: a consumer waiting for another's lock"
        " on an event would then look it up in a snapshot taken before that one committed, miss its mark"
        " and run the action again",
        field="connection",
        value=connection,
    )


class PostgresProcessedEvents:
    """A :class:`~ordercore.consumer.TransactionalProcessedEvents` over a psycopg connection of the
    consumer's own (not in autocommit mode, at READ COMMITTED isolation: the default, checked), holding the
    ids in ``table`` of the connection's search path
    (created if missing: the id as primary key, and when it was processed).

    ``seen`` takes a transaction-scoped advisory lock on the id, then looks it up: a consumer in another
    process handling the same event waits at the lock until this one commits, and then finds it processed.
    The handler writes its effects through :attr:`connection`, in that transaction; ``mark`` adds the id
    and commits both; ``rollback`` drops them. Use it with :class:`~ordercore.consumer.ExactlyOnce`, one
    instance per connection, from one thread at a time. A database error is a
    :class:`~ordercore.errors.StoreUnavailable` (``retryable`` when the server rolled the transaction
    back, as after a deadlock)."""

    def __init__(self, connection: psycopg.Connection[Any], *, table: str = "processed_events") -> None:
        if not isinstance(connection, psycopg.Connection):
            raise InvalidValue("must be a psycopg.Connection", field="connection", value=connection)
        if connection.autocommit:
            raise InvalidValue(
                "must not be in autocommit mode: the effects and the mark commit together",
                field="connection",
                value=connection,
            )
        _check_isolation(connection, connection.isolation_level)
        self.connection = connection
        self.table = check_table(table)
        self._name = sql.Identifier(self.table)
        was_idle = connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._errors():
            row = connection.execute("SELECT current_setting('transaction_isolation')").fetchone()
            level = None if row is None else row[0]
            if level not in (
                None,
                *_READ_COMMITTED,
            ):  # the session's default (a setting of the role, the database...)
                if was_idle:
                    connection.rollback()
                _check_isolation(connection, level)
            # two consumers starting at once would both try to create the table (CREATE TABLE IF NOT EXISTS
            # is not safe against that): the second waits for the first's commit, then finds it
            connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"create {self.table}",)
            )
            connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (event_id TEXT PRIMARY KEY,"
                    " processed_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                ).format(self._name)
            )
            if was_idle:  # a transaction of the caller's own stays theirs to commit
                connection.commit()

    def seen(self, event_id: str) -> bool:
        check_event_id(event_id)
        _check_isolation(self.connection, self.connection.isolation_level)
        with self._errors():
            self.connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{self.table} {event_id}",)
            )
            row = self.connection.execute(
                sql.SQL("SELECT 1 FROM {} WHERE event_id = %s").format(self._name), (event_id,)
            ).fetchone()
        return row is not None

    def mark(self, event_id: str) -> None:
        check_event_id(event_id)
        with self._errors():  # broken here, the commit was never sent: nothing was written
            self.connection.execute(
                sql.SQL("INSERT INTO {} (event_id) VALUES (%s) ON CONFLICT DO NOTHING").format(self._name),
                (event_id,),
            )
        with self._errors(writes=True):  # broken here, the server may have committed
            self.connection.commit()

    def rollback(self) -> None:
        with self._errors():
            self.connection.rollback()

    @contextmanager
    def _errors(self, *, writes: bool = False) -> Iterator[None]:
        """A psycopg error becomes a StoreUnavailable naming the table: when the connection broke under a
        commit (``writes``), its outcome is unknown. An event id PostgreSQL cannot store (a NUL, an unpaired
        surrogate) is InvalidValue: refused before it was sent, the transaction left as it was."""
        try:
            yield
        except UnicodeEncodeError as e:
            raise refused(e, field="event_id") from e
        except psycopg.Error as e:
            refusal = None if self.connection.broken else refused(e, field="event_id")
            if refusal is not None:
                raise refusal from e
            raise unavailable(
                f"processed events ({self.table})", e, broken=self.connection.broken, writes=writes
            ) from e
