"""What only the SQL stores' rows show, on SQLite and PostgreSQL. Stock reservations are rows of their own
(schema 8): a write touches only the reservations its entries name, a store that never saw the position
reads it whole, one holding an older copy catches up, and migrating moves the reservations a position's
body held into rows. The outbox holds only what is still to be sent (schema 9), and keeps no mark of what was (schema 11). A soft reservation's row
holds its expiry, indexed, so that sweeping the lapsed carts reads only those (schema 10)."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from ordercore import ManualClock, OrderCore, SequentialIds, bootstrap
from ordercore.errors import InvalidTimestamp, InvalidValue, OrderCoreError, StoreUnavailable
from ordercore.events import OrderEvent
from ordercore.inventory import StockPosition
from ordercore.ports import LapsedReservations, Store
from ordercore.values import OrderId, Sku
from ordercore_adapters.postgres import SCHEMA_VERSION as POSTGRES_VERSION
from ordercore_adapters.postgres import open_store as open_postgres
from ordercore_adapters.sqlite import SCHEMA_VERSION as SQLITE_VERSION
from ordercore_adapters.sqlite import open_store as open_sqlite
from ordercore_adapters.sqlite._schema import stored_time
from tests.integration.test_postgres_store import admin, schema_of, url
from tests.unit.factories import AT, make_order, place_command

__all__ = ["admin", "url"]  # fixtures from the PostgreSQL tests

SKU = Sku("SKU-1")
LATER = AT + timedelta(hours=1)


class Database:
    """One SQL database seen two ways: through stores opened on it, and through raw statements."""

    def __init__(
        self, dialect: str, open_: Callable[..., Store], run: Callable[[str, tuple[Any, ...]], list[Any]]
    ) -> None:
        self.dialect = dialect
        self.open = open_
        self.run = run  # one statement, committed; its rows

    def reservation_rows(self) -> dict[str, dict[str, Any]]:
        rows = self.run(
            "SELECT key, body FROM stock_reservations WHERE node_id = 'WH-1' AND sku = 'SKU-1'", ()
        )
        return {key: _json(body) for key, body in rows}

    def body(self) -> dict[str, Any]:
        ((body,),) = self.run("SELECT body FROM stock WHERE node_id = 'WH-1' AND sku = 'SKU-1'", ())
        return _json(body)

    def set_body(self, table: str, body: dict[str, Any], where: str) -> None:
        cast = "?" if self.dialect == "sqlite" else "%s::jsonb"
        self.run(f"UPDATE {table} SET body = {cast} WHERE {where}", (json.dumps(body),))

    def steps_from(self, first: int) -> list[int]:
        """The migration steps from ``first`` to this store's current schema version."""
        last = SQLITE_VERSION if self.dialect == "sqlite" else POSTGRES_VERSION
        return list(range(first, last + 1))

    def set_version(self, version: int) -> None:
        if self.dialect == "sqlite":
            self.run(f"PRAGMA user_version = {version}", ())
        else:
            self.run("UPDATE schema_version SET version = %s", (version,))


def _json(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else json.loads(body)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        path = tmp_path / "orders.db"

        def run_sqlite(statement: str, params: tuple[Any, ...]) -> list[Any]:
            with closing(sqlite3.connect(path, isolation_level=None)) as raw:
                return raw.execute(statement, params).fetchall()

        yield Database("sqlite", lambda **kw: open_sqlite(f"sqlite:///{path}", **kw), run_sqlite)
        return
    pg_url: str = request.getfixturevalue("url")
    conn: psycopg.Connection[tuple[Any, ...]] = request.getfixturevalue("admin")
    schema = sql.Identifier(schema_of(pg_url))

    def run_postgres(statement: str, params: tuple[Any, ...]) -> list[Any]:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
            cursor = conn.execute(statement.encode(), params)
            return cursor.fetchall() if cursor.description else []

    yield Database("postgres", lambda **kw: open_postgres(pg_url, **kw), run_postgres)


def save(store: Store, change: Callable[[StockPosition], object]) -> StockPosition:
    with store.unit_of_work() as uow:
        position = uow.inventory.get("WH-1", SKU)
        if position is None:
            position = StockPosition.open("WH-1", SKU, at=AT, on_hand=100)
        change(position)
        uow.inventory.save(position)
        uow.commit()
        return position


def read(store: Store) -> StockPosition:
    with store.unit_of_work() as uow:
        position = uow.inventory.get("WH-1", SKU)
        assert position is not None
        return position


def reserve_five(p: StockPosition) -> None:
    for i in range(1, 5):
        p.reserve(f"K{i}", i, reference=f"O-{i}", at=AT)
    p.reserve("K5", 5, reference="CART-5", at=AT, hard=False, expires_at=AT + timedelta(days=1))


def change_four(p: StockPosition) -> None:
    p.release("K1", at=LATER, reason="cancelled")  # all of it: the row goes
    p.release("K2", 1, at=LATER, reason="edited")  # part of it: the row changes
    p.consume("K3", 3, at=LATER, reason="shipped")  # all of it: the row goes
    p.confirm("K5", at=LATER)  # soft to hard: the row changes
    p.reserve("K6", 6, reference="O-6", at=LATER)  # a new row


def test_each_reservation_is_a_row_and_the_body_holds_none(database: Database) -> None:
    with closing(database.open()) as store:
        save(store, reserve_five)
        rows = database.reservation_rows()
        assert sorted(rows) == ["K1", "K2", "K3", "K4", "K5"]
        assert rows["K5"]["kind"] == "soft" and rows["K4"]["quantity"] == 4
        assert database.body()["reservations"] == {}
        written = save(store, change_four)
    rows = database.reservation_rows()
    assert sorted(rows) == ["K2", "K4", "K5", "K6"]
    assert rows["K2"]["quantity"] == 1 and rows["K5"]["kind"] == "hard" and rows["K5"]["expires_at"] is None
    assert database.body()["reservations"] == {} and database.body()["on_hand"] == 97
    # a store that never saw the position reads it whole, equal to what was written and to its replay
    with closing(database.open()) as other:
        fresh = read(other)
        assert fresh == written
        assert fresh.reserved(LATER) == 1 + 4 + 5 + 6 and fresh.available(LATER) == 97 - 16
        with other.unit_of_work() as uow:
            assert StockPosition.replay(uow.inventory.ledger("WH-1", SKU)) == fresh


def test_a_store_holding_an_older_copy_reads_the_reservations_another_wrote(database: Database) -> None:
    with closing(database.open()) as first, closing(database.open()) as second:
        save(first, reserve_five)
        assert sorted(read(second).reservations) == ["K1", "K2", "K3", "K4", "K5"]  # kept by `second`
        save(first, change_four)
        seen = read(second)
        assert sorted(seen.reservations) == ["K2", "K4", "K5", "K6"]
        assert seen == read(first)
        # and a change made on that copy is checked and written like any other
        save(second, lambda p: p.release("K6", at=LATER, reason="cancelled"))
        assert sorted(database.reservation_rows()) == ["K2", "K4", "K5"]
        assert read(first).reservation("K6") is None


def test_a_reservation_row_that_does_not_read_back_is_store_unavailable(database: Database) -> None:
    with closing(database.open()) as store:
        save(store, reserve_five)
    database.set_body("stock_reservations", {**database.reservation_rows()["K2"], "key": "K9"}, "key = 'K2'")
    with closing(database.open()) as other, pytest.raises(StoreUnavailable, match="reservation 'K2'"):
        read(other)


def test_migrating_to_schema_8_moves_the_reservations_out_of_the_bodies(database: Database) -> None:
    with closing(database.open()) as store:
        save(store, reserve_five)
        save(store, lambda p: p.release("K1", at=LATER, reason="cancelled"))
        written = read(store)
    # back to what schema 7 stored: every reservation in its position's body, and no table of them
    database.set_body(
        "stock", {**database.body(), "reservations": database.reservation_rows()}, "node_id = 'WH-1'"
    )
    database.run("DROP TABLE stock_reservations", ())
    database.set_version(7)
    with pytest.raises(StoreUnavailable, match="schema version 7"):
        database.open()
    with closing(database.open(migrate=True)) as store:
        assert [version for version, _ in store.migration.steps] == database.steps_from(8)
        assert read(store) == written
    assert sorted(database.reservation_rows()) == ["K2", "K3", "K4", "K5"]
    assert database.body()["reservations"] == {}
    with closing(database.open()) as store:
        assert read(store) == written  # read by a new store: from the rows
        save(store, lambda p: p.release("K2", at=LATER, reason="cancelled"))
        assert sorted(database.reservation_rows()) == ["K3", "K4", "K5"]


# every sequence of changes leaves the rows holding exactly the position's reservations
_KEYS = st.sampled_from(["A", "B", "C", "D"])
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), _KEYS, st.integers(1, 5), st.booleans()),
        st.tuples(st.just("release"), _KEYS, st.integers(0, 5), st.booleans()),
        st.tuples(st.just("consume"), _KEYS, st.integers(1, 5), st.booleans()),
        st.tuples(st.just("confirm"), _KEYS, st.integers(1, 5), st.booleans()),
        st.tuples(st.just("expire"), _KEYS, st.integers(1, 5), st.booleans()),
    ),
    min_size=1,
    max_size=4,
)


def _apply(p: StockPosition, step: tuple[str, str, int, bool], at: datetime) -> None:
    kind, key, n, flag = step
    held = p.reservation(key)
    try:
        if kind == "reserve":
            expires = None if flag else at + timedelta(minutes=30)
            p.reserve(key, n, reference=f"R-{key}", at=at, hard=flag, expires_at=expires)
        elif kind == "release":
            p.release(key, n or None, at=at, reason="r")
        elif kind == "consume" and held is not None:
            p.consume(key, min(n, held.quantity), at=at, reason="shipped")
        elif kind == "confirm" and held is not None:
            p.confirm(key, at=at)
        elif kind == "expire":
            p.expire(at + timedelta(hours=1))
    except OrderCoreError:
        pass  # refused, and nothing changed: the next step goes on


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commits=st.lists(st.tuples(_STEPS, st.booleans()), min_size=1, max_size=6))
def test_the_rows_hold_exactly_the_reservations_and_another_store_reads_them_after_any_changes(
    tmp_path_factory: pytest.TempPathFactory, commits: list[tuple[list[tuple[str, str, int, bool]], bool]]
) -> None:
    """A second store (another worker) reads the position after some commits, so that it holds copies
    some entries behind: it catches up from the ledger, and reads what the writer wrote."""
    path = tmp_path_factory.mktemp("db") / "orders.db"
    target = f"sqlite:///{path}"
    with closing(open_sqlite(target)) as store, closing(open_sqlite(target)) as other:
        at = AT
        for steps, other_reads in commits:
            at += timedelta(minutes=10)
            written = save(store, lambda p, steps=steps, now=at: [_apply(p, step, now) for step in steps])
            if other_reads:
                assert read(other) == written
        with closing(sqlite3.connect(path)) as raw:
            rows = {
                key: (body, expires_at)
                for key, body, expires_at in raw.execute(
                    "SELECT key, body, expires_at FROM stock_reservations"
                )
            }
        assert sorted(rows) == sorted(written.reservations)
        for key, r in written.reservations.items():  # a cart confirmed into an order loses its expiry
            assert rows[key][1] == (None if r.expires_at is None else stored_time(r.expires_at))
        assert read(other) == written
        with closing(open_sqlite(target)) as fresh:
            assert read(fresh) == written


# -- the outbox holds only what is still to be sent (schema 9) ----------------------------------------------
def outbox_ids(database: Database) -> list[str]:
    return [event_id for (event_id,) in database.run("SELECT event_id FROM outbox ORDER BY position", ())]


def test_a_published_event_leaves_the_outbox_table(database: Database) -> None:
    with closing(database.open()) as store:
        with store.unit_of_work() as uow:
            uow.orders.add(make_order(order_id="O-1"))
            uow.commit()
        assert outbox_ids(database) == ["O-1#1", "O-1#2"]
        with store.unit_of_work() as uow:
            uow.outbox.mark_published(["O-1#1"])
            uow.commit()
        assert outbox_ids(database) == ["O-1#2"]  # its row is gone, not kept marked
        with store.unit_of_work() as uow:
            uow.outbox.mark_published(["O-1#1"])  # again: it is no longer there
            with pytest.raises(InvalidValue, match="not in the outbox"):
                uow.commit()
        assert outbox_ids(database) == ["O-1#2"]
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#2"]
            assert len(uow.orders.get(OrderId("O-1")).history) == 2  # the order keeps its events


def outbox_marked(database: Database, version: int) -> None:
    """Bring back what the outbox had up to schema 10: its ``published`` column and the index over it."""
    if database.dialect == "sqlite":
        database.run("ALTER TABLE outbox ADD COLUMN published INTEGER NOT NULL DEFAULT 0", ())
        database.run("CREATE INDEX outbox_pending ON outbox (published, position)", ())
    else:
        database.run("ALTER TABLE outbox ADD COLUMN published BOOLEAN NOT NULL DEFAULT false", ())
        database.run("CREATE INDEX outbox_pending ON outbox (position) WHERE NOT published", ())
    database.set_version(version)


def outbox_columns(database: Database) -> set[str]:
    if database.dialect == "sqlite":
        return {row[1] for row in database.run("PRAGMA table_info(outbox)", ())}
    rows = database.run(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'outbox'",
        (),
    )
    return {name for (name,) in rows}


def outbox_indexes(database: Database) -> set[str]:
    if database.dialect == "sqlite":
        return {row[1] for row in database.run("PRAGMA index_list(outbox)", ())}
    rows = database.run("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()", ())
    return {name for (name,) in rows}


def test_migrating_to_schema_9_deletes_the_events_kept_marked_published(database: Database) -> None:
    with closing(database.open()) as store, store.unit_of_work() as uow:
        uow.orders.add(make_order(order_id="O-1"))
        uow.commit()
    outbox_marked(database, 8)
    true = "1" if database.dialect == "sqlite" else "true"
    database.run(f"UPDATE outbox SET published = {true} WHERE event_id = 'O-1#1'", ())  # as schema 8 kept it
    with closing(database.open(migrate=True)) as store:
        assert [version for version, _ in store.migration.steps] == database.steps_from(9)
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#2"]
    assert outbox_ids(database) == ["O-1#2"]


# -- several workers relaying from one outbox ----------------------------------------------------------------
class Collecting:
    """A publisher shared by the workers of a test: every event id it was given, in order, and a hook run
    once inside the first publish."""

    def __init__(self, during: Callable[[], object] | None = None) -> None:
        self.lock = threading.Lock()
        self.received: list[str] = []
        self.during = during

    def publish(self, events: Sequence[OrderEvent]) -> None:
        with self.lock:
            self.received.extend(e.event_id for e in events)
            during, self.during = self.during, None
        if during is not None:
            during()


def worker(store: Store, prefix: str, publisher: Collecting) -> OrderCore:
    return bootstrap(
        store, clock=ManualClock(AT), ids=SequentialIds(order_prefix=prefix), publisher=publisher
    )


def test_a_command_returns_when_another_worker_relayed_its_events_first(database: Database) -> None:
    with closing(database.open()) as theirs_store, closing(database.open()) as mine_store:
        theirs = Collecting()
        other = worker(theirs_store, "B", theirs)
        mine = Collecting(during=lambda: other.handle(place_command()))  # the other commits and relays first
        result = worker(mine_store, "A", mine).handle(place_command())
        assert result.order_id == OrderId("A-000001")
        assert mine.received == ["A-000001#1", "A-000001#2"]
        assert theirs.received == ["A-000001#1", "A-000001#2", "B-000001#1", "B-000001#2"]
        assert outbox_ids(database) == []


def test_workers_placing_and_relaying_at_once_deliver_every_event_and_raise_nothing(
    database: Database,
) -> None:
    """Four workers (threads, each with its own store and connections) place 15 orders each, every
    command relaying the outbox they share: no command raises, and every event reaches the publisher."""
    publisher = Collecting()
    stores = [database.open() for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def run(n: int) -> None:
        app = worker(stores[n], f"W{n}", publisher)
        start.wait()
        try:
            for _ in range(15):
                app.handle(place_command())
            assert not app.failures, app.failures
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert errors == []
    expected = {f"W{n}-{i:06d}#{k}" for n in range(4) for i in range(1, 16) for k in (1, 2)}
    assert set(publisher.received) == expected  # each at least once; a copy only where two relays raced
    assert outbox_ids(database) == []


# -- the outbox has no published column and no index over it (schema 11) ------------------------------------
def test_a_new_database_has_no_published_column_and_pending_events_come_in_commit_order(
    database: Database,
) -> None:
    with closing(database.open()) as store:
        assert "published" not in outbox_columns(database)
        assert "outbox_pending" not in outbox_indexes(database)
        for oid in ("O-2", "O-1"):
            with store.unit_of_work() as uow:
                uow.orders.add(make_order(order_id=oid))
                uow.commit()
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-2#1", "O-2#2", "O-1#1", "O-1#2"]
            assert [r.event.event_id for r in uow.outbox.pending(limit=3)] == ["O-2#1", "O-2#2", "O-1#1"]


def test_migrating_to_schema_11_drops_the_published_column_and_keeps_the_pending_events(
    database: Database,
) -> None:
    with closing(database.open()) as store, store.unit_of_work() as uow:
        uow.orders.add(make_order(order_id="O-1"))
        uow.commit()
    outbox_marked(database, 10)
    with closing(database.open(migrate=True)) as store:
        assert [version for version, _ in store.migration.steps] == database.steps_from(11)
        assert "published" not in outbox_columns(database)
        assert "outbox_pending" not in outbox_indexes(database)
        with store.unit_of_work() as uow:
            uow.orders.add(make_order(order_id="O-2"))
            uow.outbox.mark_published(["O-1#1"])
            uow.commit()
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#2", "O-2#1", "O-2#2"]
    assert outbox_ids(database) == ["O-1#2", "O-2#1", "O-2#2"]


def test_a_sqlite_too_old_to_drop_a_column_keeps_it_unused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 has no ``DROP COLUMN``: the step drops the index only, and the store neither reads
    nor writes the column it leaves (an insert gives it its default)."""
    path = tmp_path / "orders.db"
    with closing(open_sqlite(f"sqlite:///{path}")) as store, store.unit_of_work() as uow:
        uow.orders.add(make_order(order_id="O-1"))
        uow.commit()
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        raw.execute("ALTER TABLE outbox ADD COLUMN published INTEGER NOT NULL DEFAULT 0")
        raw.execute("CREATE INDEX outbox_pending ON outbox (published, position)")
        raw.execute("PRAGMA user_version = 10")
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    with closing(open_sqlite(f"sqlite:///{path}", migrate=True)) as store:
        with store.unit_of_work() as uow:
            uow.orders.add(make_order(order_id="O-2"))
            uow.outbox.mark_published(["O-1#1", "O-1#2"])
            uow.commit()
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-2#1", "O-2#2"]
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 11
        assert "published" in {row[1] for row in raw.execute("PRAGMA table_info(outbox)")}
        assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'outbox_pending'").fetchone() == (
            0,
        )


# -- lapsed carts are found through an index of their expiry (schema 10) ------------------------------------
BERLIN = timezone(timedelta(hours=1))


def carts(p: StockPosition) -> None:
    """Two carts (one expiring with an offset other than UTC, 400 µs past the hour) and an order."""
    p.reserve("CART-1", 2, reference="C-1", at=AT, hard=False, expires_at=LATER)
    p.reserve(
        "CART-2",
        1,
        reference="C-2",
        at=AT,
        hard=False,
        expires_at=(LATER + timedelta(microseconds=400)).astimezone(BERLIN),
    )
    p.reserve("O-1/1", 3, reference="O-1", at=AT)


def lapsed_at(store: Store, at: datetime, limit: int = 10) -> list[tuple[str, Sku]]:
    with store.unit_of_work() as uow:
        assert isinstance(uow, LapsedReservations)
        return uow.lapsed_positions(at, limit)


_OFFSETS = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_MOMENTS = st.tuples(st.integers(-7200 * 10**6, 7200 * 10**6), _OFFSETS).map(
    lambda t: (LATER + timedelta(microseconds=t[0])).astimezone(t[1])
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    positions=st.lists(
        st.lists(st.one_of(st.none(), _MOMENTS), max_size=4),  # each reservation: hard, or a cart's expiry
        min_size=1,
        max_size=4,
    ),
    at=_MOMENTS,
)
def test_the_sweep_finds_exactly_the_positions_holding_a_cart_lapsed_by_then(
    database: Database, positions: list[list[datetime | None]], at: datetime
) -> None:
    """Expiries and the moment asked in any offsets, to the microsecond: the column's text compares as
    the moments do. Each example has a SKU of its own, and only those positions are looked at."""
    sku = Sku(f"P-{uuid.uuid4().hex[:10]}")
    with closing(database.open()) as store:
        with store.unit_of_work() as uow:
            for n, reservations in enumerate(positions):
                p = StockPosition.open(f"WH-{n}", sku, at=LATER - timedelta(hours=3), on_hand=100)
                for i, expires_at in enumerate(reservations):
                    p.reserve(
                        f"K-{i}",
                        1,
                        reference=f"R-{i}",
                        at=LATER - timedelta(hours=3),
                        hard=expires_at is None,
                        expires_at=expires_at,
                    )
                uow.inventory.save(p)
            uow.commit()
        found = [(node, s) for node, s in lapsed_at(store, at, limit=1000) if s == sku]
    expected = [
        (f"WH-{n}", sku)
        for n, reservations in enumerate(positions)
        if any(e is not None and e <= at for e in reservations)
    ]
    assert found == expected


def expiries(database: Database) -> dict[str, Any]:
    rows = database.run("SELECT key, expires_at FROM stock_reservations ORDER BY key", ())
    return {
        key: value if isinstance(value, datetime | None) else datetime.fromisoformat(value)
        for key, value in rows
    }


def test_a_reservation_row_holds_its_expiry_and_the_sweep_compares_it_to_the_microsecond(
    database: Database,
) -> None:
    with closing(database.open()) as store:
        save(store, carts)
        assert expiries(database) == {
            "CART-1": LATER,
            "CART-2": LATER + timedelta(microseconds=400),
            "O-1/1": None,
        }
        assert lapsed_at(store, LATER - timedelta(microseconds=1)) == []
        assert lapsed_at(store, LATER) == [("WH-1", SKU)]
        save(store, lambda p: p.expire(LATER))  # CART-1 goes; CART-2 lapses 400 µs later
        assert lapsed_at(store, LATER + timedelta(microseconds=399)) == []
        assert lapsed_at(store, LATER + timedelta(microseconds=400)) == [("WH-1", SKU)]
        with store.unit_of_work() as uow, pytest.raises(InvalidTimestamp):
            assert isinstance(uow, LapsedReservations)
            uow.lapsed_positions(datetime(2026, 3, 1, 12), 10)  # no offset: not a moment


def test_the_sweep_reads_the_expiry_index_not_every_open_reservation(database: Database) -> None:
    with closing(database.open()) as store:
        save(store, carts)
    sweep = (
        "SELECT DISTINCT node_id, sku FROM stock_reservations"
        " WHERE expires_at IS NOT NULL AND expires_at <= {} ORDER BY node_id, sku LIMIT 10"
    )
    if database.dialect == "sqlite":
        database.run(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
            " INSERT INTO stock_reservations (node_id, sku, key, body)"
            " SELECT 'WH-1', 'SKU-1', 'H-' || i, '{}' FROM n",
            (),
        )
        rows = database.run("EXPLAIN QUERY PLAN " + sweep.format("?"), ("2026-01-01T00:00:00.000000+00:00",))
        plan = " ".join(str(row[-1]) for row in rows)
    else:
        database.run(
            "INSERT INTO stock_reservations (node_id, sku, key, body)"
            " SELECT 'WH-1', 'SKU-1', 'H-' || i, '{}'::jsonb FROM generate_series(1, 2000) i",
            (),
        )
        database.run("ANALYZE stock_reservations", ())  # as autovacuum would
        plan = " ".join(str(row[0]) for row in database.run("EXPLAIN " + sweep.format("now()"), ()))
    assert "stock_reservations_lapse" in plan  # 2,000 hard reservations are not read


def downgrade_to_9(database: Database) -> None:
    """What a schema 9 database held: no expiry column, no index."""
    database.run("DROP INDEX stock_reservations_lapse", ())
    database.run("ALTER TABLE stock_reservations DROP COLUMN expires_at", ())
    database.set_version(9)


def test_migrating_to_schema_10_fills_the_expiries_from_the_reservations(database: Database) -> None:
    with closing(database.open()) as store:
        save(store, carts)
    downgrade_to_9(database)
    with closing(database.open(migrate=True)) as store:
        assert [version for version, _ in store.migration.steps] == database.steps_from(10)
        assert expiries(database) == {
            "CART-1": LATER,
            "CART-2": LATER + timedelta(microseconds=400),
            "O-1/1": None,
        }
        assert lapsed_at(store, LATER + timedelta(microseconds=399)) == [("WH-1", SKU)]
        save(store, lambda p: p.expire(LATER + timedelta(microseconds=400)))
        assert lapsed_at(store, LATER + timedelta(days=1)) == []
        assert set(read(store).reservations) == {"O-1/1"}


def test_an_expiry_whose_offset_has_seconds_migrates_to_schema_10(database: Database) -> None:
    odd = timezone(timedelta(hours=5, minutes=30, seconds=15))  # Python writes it +05:30:15
    with closing(database.open()) as store:
        save(
            store,
            lambda p: p.reserve(
                "CART-1", 1, reference="C-1", at=AT, hard=False, expires_at=LATER.astimezone(odd)
            ),
        )
    downgrade_to_9(database)
    with closing(database.open(migrate=True)) as store:
        assert expiries(database) == {"CART-1": LATER}
        assert lapsed_at(store, LATER) == [("WH-1", SKU)]
        assert lapsed_at(store, LATER - timedelta(microseconds=1)) == []


def test_a_stored_expiry_without_an_offset_stops_the_migration_to_schema_10(database: Database) -> None:
    with closing(database.open()) as store:
        save(store, carts)
    downgrade_to_9(database)
    rows = database.reservation_rows()
    database.set_body(
        "stock_reservations",
        {**rows["CART-2"], "expires_at": "2026-03-01T12:00:00"},  # an edit by hand: no offset
        "key = 'CART-2'",
    )
    with pytest.raises(
        StoreUnavailable, match="reservation 'CART-2' of WH-1/SKU-1 has a time without an offset"
    ):
        database.open(migrate=True)
    version = (
        database.run("PRAGMA user_version", ())
        if database.dialect == "sqlite"
        else database.run("SELECT version FROM schema_version", ())
    )
    assert version == [(9,)]  # nothing was applied


REFUSE_OUTBOX = {
    "sqlite": [
        "CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox refused'); END"
    ],
    "postgres": [
        "CREATE FUNCTION refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'outbox refused'; END $$",
        "CREATE TRIGGER refuse_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_outbox()",
    ],
}


def test_an_order_whose_events_the_outbox_refuses_is_not_stored_either(database: Database) -> None:
    # the state and its events are one transaction: no order without its events, nor the other way round
    database.open().close()  # the schema
    for statement in REFUSE_OUTBOX[database.dialect]:
        database.run(statement, ())
    store = database.open()
    app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds())
    with pytest.raises(OrderCoreError, match="outbox refused"):
        app.handle(place_command())
    assert app.list_orders() == []
    assert database.run("SELECT count(*) FROM orders", ()) == [(0,)]
    assert database.run("SELECT count(*) FROM order_digests", ()) == [(0,)]
    drop = "DROP TRIGGER refuse_outbox" + (" ON outbox" if database.dialect == "postgres" else "")
    database.run(drop, ())
    order_id = app.handle(place_command()).order_id  # placed once the outbox takes events again
    assert app.list_orders() == [order_id]
    with store.unit_of_work() as uow:
        assert [r.event.event_id for r in uow.outbox.pending()] == [f"{order_id}#1", f"{order_id}#2"]
    app.close()
