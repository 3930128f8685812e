"""The shipped processed-event stores on SQLite and PostgreSQL: the contract suite shipped in
ordercore.testing.processed (effects and mark commit together, a failed handler leaves nothing, two
consumers given one event apply it once), and what each store refuses."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ordercore.consumer import ExactlyOnce, TransactionalProcessedEvents
from ordercore.errors import InvalidValue, StoreUnavailable
from ordercore.testing.processed import ProcessedEventsContract
from ordercore_adapters.postgres import PostgresProcessedEvents
from ordercore_adapters.sqlite import SqliteProcessedEvents
from tests.integration._postgres import SERVER_URL, admin_connection
from tests.unit.factories import make_order

Processed = SqliteProcessedEvents | PostgresProcessedEvents


class Consumer:
    """A consumer's database with an invoices table (its effects): how to connect to it, and its
    processed-event store over a connection; the :class:`ConsumerDatabase` the contract drives."""

    def __init__(self, dialect: str, connect: Callable[[], Any]) -> None:
        self.dialect = dialect
        self.connect = connect
        self.marker = "?" if dialect == "sqlite" else "%s"

    def processed(self, connection: Any, table: str = "processed_events") -> Processed:
        if self.dialect == "sqlite":
            return SqliteProcessedEvents(connection, table=table)
        return PostgresProcessedEvents(connection, table=table)

    def rows(self, query: str) -> list[Any]:
        """What another connection sees committed."""
        with closing(self.connect()) as conn:
            rows = conn.execute(query).fetchall()
            conn.rollback()
            return [row[0] for row in rows]

    # the ConsumerDatabase protocol
    def open(self) -> Processed:
        return self.processed(self.connect())

    def write_effect(self, processed: TransactionalProcessedEvents, event_id: str) -> None:
        assert isinstance(processed, SqliteProcessedEvents | PostgresProcessedEvents)
        processed.connection.execute(f"INSERT INTO invoices (event_id) VALUES ({self.marker})", (event_id,))

    def committed_effects(self) -> list[str]:
        return self.rows("SELECT event_id FROM invoices")

    def close(self, processed: TransactionalProcessedEvents) -> None:
        assert isinstance(processed, SqliteProcessedEvents | PostgresProcessedEvents)
        processed.connection.close()


@pytest.fixture
def postgres_consumer() -> Iterator[Consumer]:
    """A consumer database in a schema of its own, with an invoices table."""
    admin = admin_connection()
    schema = f"t_{uuid.uuid4().hex}"
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    admin.execute(sql.SQL("CREATE TABLE {}.invoices (event_id TEXT NOT NULL)").format(sql.Identifier(schema)))
    try:
        yield Consumer("postgres", lambda: psycopg.connect(SERVER_URL, options=f"-c search_path={schema}"))
    finally:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        admin.close()


def sqlite_consumer(folder: Path) -> Consumer:
    path = folder / "consumer.db"
    with closing(sqlite3.connect(path)) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE invoices (event_id TEXT NOT NULL)")
        setup.commit()
    return Consumer("sqlite", lambda: sqlite3.connect(path, timeout=5, check_same_thread=False))


class TestSqliteProcessedEvents(ProcessedEventsContract):
    @pytest.fixture
    def consumer_db(self, tmp_path: Path) -> Consumer:
        return sqlite_consumer(tmp_path)


class TestPostgresProcessedEvents(ProcessedEventsContract):
    @pytest.fixture
    def consumer_db(self, postgres_consumer: Consumer) -> Consumer:
        return postgres_consumer


@pytest.fixture(params=["sqlite", "postgres"])
def consumer(request: pytest.FixtureRequest, tmp_path: Path) -> Consumer:
    if request.param == "postgres":
        found: Consumer = request.getfixturevalue("postgres_consumer")
        return found
    return sqlite_consumer(tmp_path)


def test_exactly_once_over_the_shipped_stores_skips_a_redelivered_order_event(consumer: Consumer) -> None:
    first, second = make_order().history
    with closing(consumer.connect()) as conn:
        processed = consumer.processed(conn)
        once = ExactlyOnce(lambda event: consumer.write_effect(processed, event.event_id), processed)
        assert [once(first), once(second), once(first)] == [True, True, False]
    assert sorted(consumer.committed_effects()) == sorted([first.event_id, second.event_id])


REFUSE_MARKS = {
    "sqlite": [
        "CREATE TRIGGER refuse_marks BEFORE INSERT ON processed_events BEGIN"
        " SELECT RAISE(ABORT, 'marks refused'); END"
    ],
    "postgres": [
        "CREATE FUNCTION refuse_marks() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'marks refused'; END $$",
        "CREATE TRIGGER refuse_marks BEFORE INSERT ON processed_events"
        " FOR EACH ROW EXECUTE FUNCTION refuse_marks()",
    ],
}


def test_a_mark_the_database_refuses_takes_the_effects_with_it(consumer: Consumer) -> None:
    # the effects and the mark commit together: a mark that fails after the action ran leaves no effect,
    # so the event, delivered again, is applied once
    event = make_order().history[0]
    with closing(consumer.connect()) as conn:
        processed = consumer.processed(conn)
        conn.commit()
        for statement in REFUSE_MARKS[consumer.dialect]:
            conn.execute(statement)
        conn.commit()
        once = ExactlyOnce(lambda e: consumer.write_effect(processed, e.event_id), processed)
        with pytest.raises(StoreUnavailable, match="marks refused"):
            once(event)
        assert consumer.committed_effects() == []
        conn.execute(
            "DROP TRIGGER refuse_marks" + (" ON processed_events" if consumer.dialect == "postgres" else "")
        )
        conn.commit()
        assert once(event) is True  # delivered again: applied now, once
        assert once(event) is False
    assert consumer.committed_effects() == [event.event_id]


def test_bad_arguments_are_refused_naming_the_field(consumer: Consumer) -> None:
    with closing(consumer.connect()) as conn:
        with pytest.raises(InvalidValue) as err:
            consumer.processed(conn, table="events; DROP TABLE invoices")
        assert err.value.field == "table"
        processed = consumer.processed(conn)
        with pytest.raises(InvalidValue) as err:
            processed.seen("")
        assert err.value.field == "event_id"
        with pytest.raises(InvalidValue) as err:
            processed.mark(7)  # type: ignore[arg-type]
        assert err.value.field == "event_id"
    assert consumer.rows("SELECT count(*) FROM invoices") == [0]
    for cls in (SqliteProcessedEvents, PostgresProcessedEvents):
        with pytest.raises(InvalidValue) as err:
            cls(object())  # type: ignore[arg-type]
        assert err.value.field == "connection"


def test_a_postgres_connection_in_autocommit_mode_is_refused(postgres_consumer: Consumer) -> None:
    with closing(postgres_consumer.connect()) as conn:
        conn.autocommit = True
        with pytest.raises(InvalidValue, match="autocommit") as err:
            PostgresProcessedEvents(conn)
        assert err.value.field == "connection"


def assert_taken(conn: psycopg.Connection[Any]) -> None:
    """The connection makes a PostgresProcessedEvents that looks events up."""
    processed = PostgresProcessedEvents(conn)
    assert processed.seen("E-1") is False
    processed.rollback()


def test_a_postgres_session_defaulting_to_repeatable_read_is_refused_and_left_idle(
    postgres_consumer: Consumer,
) -> None:
    # under REPEATABLE READ or SERIALIZABLE, the snapshot is taken before waiting at the event's lock: a
    # consumer let through after another committed would not see its mark, and would run the action again
    for level in ("repeatable read", "serializable"):
        options = f"-c default_transaction_isolation={level.replace(' ', chr(92) + ' ')}"
        with closing(psycopg.connect(SERVER_URL, options=options)) as conn:
            with pytest.raises(InvalidValue, match=f"READ COMMITTED, not {level.upper()}") as err:
                PostgresProcessedEvents(conn)
            assert err.value.field == "connection"
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED  # what the caller can do instead
            assert_taken(conn)


def test_a_postgres_connection_at_read_uncommitted_is_taken_since_postgresql_runs_it_as_read_committed(
    postgres_consumer: Consumer,
) -> None:
    options = "-c default_transaction_isolation=read\\ uncommitted"
    with closing(psycopg.connect(SERVER_URL, options=options)) as conn:
        assert_taken(conn)
    with closing(postgres_consumer.connect()) as conn:
        conn.isolation_level = psycopg.IsolationLevel.READ_UNCOMMITTED
        assert_taken(conn)


def test_a_postgres_connection_switched_to_serializable_is_refused_at_the_next_event(
    postgres_consumer: Consumer,
) -> None:
    with closing(postgres_consumer.connect()) as conn:
        processed = PostgresProcessedEvents(conn)
        conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        with pytest.raises(InvalidValue, match="READ COMMITTED, not SERIALIZABLE"):
            processed.seen("E-1")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # nothing sent


def test_a_postgres_transaction_of_the_callers_own_is_not_committed_by_the_setup(
    postgres_consumer: Consumer,
) -> None:
    with closing(postgres_consumer.connect()) as conn:
        conn.execute("INSERT INTO invoices (event_id) VALUES ('before')")
        PostgresProcessedEvents(conn)
        assert postgres_consumer.rows("SELECT count(*) FROM invoices") == [0]  # still the caller's
        conn.rollback()
    assert postgres_consumer.rows("SELECT count(*) FROM invoices") == [0]


def test_a_sqlite_lock_not_granted_in_time_is_a_retryable_store_failure(tmp_path: Path) -> None:
    path = tmp_path / "consumer.db"
    with (
        closing(sqlite3.connect(path, isolation_level=None)) as holder,
        closing(sqlite3.connect(path, timeout=0.05)) as conn,
    ):
        processed = SqliteProcessedEvents(conn)
        holder.execute("BEGIN IMMEDIATE")  # another consumer in the middle of an event
        with pytest.raises(StoreUnavailable) as err:
            processed.seen("O-1#1")
        assert err.value.retryable and "processed_events" in str(err.value)
        holder.execute("ROLLBACK")
        assert not processed.seen("O-1#1")
        processed.rollback()


class _PEP249Connection(sqlite3.Connection):
    """What Python 3.12+ opens with ``autocommit=False``: a deferred transaction always open."""

    autocommit = False


def test_a_sqlite_connection_that_keeps_a_transaction_open_is_refused(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "consumer.db", factory=_PEP249Connection)) as conn:
        with pytest.raises(InvalidValue, match="autocommit") as err:
            SqliteProcessedEvents(conn)
        assert err.value.field == "connection"
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)  # no table made


def test_a_postgres_connection_lost_before_the_commit_is_retryable_with_nothing_written(
    postgres_consumer: Consumer,
) -> None:
    with closing(postgres_consumer.connect()) as conn:
        processed = PostgresProcessedEvents(conn)
        assert not processed.seen("O-1#1")
        postgres_consumer.write_effect(processed, "O-1#1")
        pid = conn.info.backend_pid
        with closing(admin_connection()) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable) as err:
            processed.mark("O-1#1")
        assert err.value.retryable and not err.value.outcome_unknown
    assert postgres_consumer.committed_effects() == []
    assert postgres_consumer.rows("SELECT event_id FROM processed_events") == []
