"""The SQLite store at the edges of its inputs: interrupts inside a commit, connections closed under it,
times and limits beyond what SQLite holds, files that are not ordercore's, paths that are not UTF-8, and
text SQLite cannot encode. Each answers with the project's own errors, or as memory:// does."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ordercore import (
    InvalidValue,
    ManualClock,
    OrderId,
    OrderStatus,
    SequentialIds,
    StockPosition,
    StoreUnavailable,
    bootstrap,
)
from ordercore import open_store as open_any_store
from ordercore.ports import Store
from ordercore.values import CustomerId, Sku
from ordercore_adapters.sqlite import (
    SCHEMA_VERSION,
    SqliteProcessedEvents,
    SqliteStore,
    migrate,
    open_store,
    parse_url,
)
from ordercore_adapters.sqlite import file_url as url_of_file
from ordercore_adapters.sqlite._schema import OWN_TABLES
from tests.integration.test_sqlite_store import DAY, add, file_url, level, load, schema_1_database, take
from tests.unit.factories import ACTOR, AT, make_order, place_command

EARLY = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # before year 1 in UTC
LATE = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))  # after year 9999 in UTC
POSIX_NAMES = pytest.mark.skipif(
    sys.platform != "linux", reason="file names are bytes, whatever their encoding, on Linux"
)


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteStore]:
    s = open_store("sqlite://:memory:" if request.param == "memory" else file_url(tmp_path))
    yield s
    s.close()


def journal_mode(path: Path) -> str:
    with closing(sqlite3.connect(path)) as raw:
        mode: str = raw.execute("PRAGMA journal_mode").fetchone()[0]
    return mode


def user_version_and_tables(path: Path) -> tuple[int, list[str]]:
    with closing(sqlite3.connect(path)) as raw:
        (version,) = raw.execute("PRAGMA user_version").fetchone()
        names = [
            n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
    return version, names


def foreign_file(path: Path, *statements: str) -> Path:
    """A SQLite file another application made, in rollback-journal mode."""
    with closing(sqlite3.connect(path)) as raw:
        for statement in statements:
            raw.execute(statement)
        raw.commit()
    return path


# -- an interrupt (Ctrl-C) just as BEGIN IMMEDIATE returns ---------------------------------------------------
class InterruptAfterBegin:
    """A connection that runs every statement, but raises KeyboardInterrupt once, right after BEGIN returns:
    where Python raises a SIGINT (Ctrl-C) that arrived while SQLite ran the statement."""

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw
        self.armed = True

    def execute(self, sql: str, *params: Any) -> sqlite3.Cursor:
        cursor = self.raw.execute(sql, *params)
        if self.armed and sql.startswith("BEGIN"):
            self.armed = False
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def interrupt_next_begin(store: SqliteStore) -> None:
    """The next unit's connection (the shared one in memory, the pooled one on a file) is interrupted."""
    conn = store.connect()
    conn.raw = InterruptAfterBegin(conn.raw)  # type: ignore[assignment]
    store.release(conn)


def test_a_commit_interrupted_just_after_begin_leaves_no_transaction_behind(store: SqliteStore) -> None:
    interrupt_next_begin(store)
    with store.unit_of_work() as uow:
        uow.orders.add(make_order(order_id="O-1"))
        with pytest.raises(KeyboardInterrupt):
            uow.commit()
        uow.commit()  # the unit is not stuck in the interrupted transaction: the commit runs again
    add(store, make_order(order_id="O-2"))  # and so do the next units
    with store.unit_of_work() as uow:
        assert uow.orders.list_ids() == [OrderId("O-1"), OrderId("O-2")]
        assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#1", "O-1#2", "O-2#1", "O-2#2"]


def test_a_commit_interrupted_just_after_begin_writes_nothing(store: SqliteStore) -> None:
    interrupt_next_begin(store)
    with store.unit_of_work() as uow:
        uow.orders.add(make_order(order_id="O-1"))
        uow.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=5))
        with pytest.raises(KeyboardInterrupt):
            uow.commit()
    add(store, make_order(order_id="O-2"))
    with store.unit_of_work() as uow:
        assert uow.orders.find(OrderId("O-1")) is None
        assert uow.inventory.get("WH-1", Sku("SKU-1")) is None
        assert [r.event.event_id for r in uow.outbox.pending()] == ["O-2#1", "O-2#2"]


def test_a_purge_interrupted_just_after_begin_deletes_nothing_and_runs_again(store: SqliteStore) -> None:
    take(store, "WH-1", "K-1", day=DAY)
    interrupt_next_begin(store)
    with store.unit_of_work() as uow:
        with pytest.raises(KeyboardInterrupt):
            uow.purge(keys_before=None, days_before=DAY + timedelta(days=1))
        assert uow.capacity.get("WH-1", DAY).taken == {"K-1": 1}
        assert uow.purge(keys_before=None, days_before=DAY + timedelta(days=1)) == (0, 1)
    add(store, make_order(order_id="O-1"))
    assert load(store, "O-1").version == 2


def test_a_unit_that_leaves_a_transaction_open_does_not_pass_it_on(store: SqliteStore) -> None:
    with store.unit_of_work() as uow, uow.db() as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM node_capacity")  # never committed
    add(store, make_order(order_id="O-1"))  # the next unit starts a transaction of its own
    assert load(store, "O-1").version == 2


# -- errors of the sqlite3 module itself (no SQLite result code) ---------------------------------------------
def test_processed_events_on_a_closed_connection_are_store_unavailable(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "consumer.db", isolation_level=None)
    processed = SqliteProcessedEvents(conn)
    conn.close()
    for call in (lambda: processed.seen("O-1#1"), lambda: processed.mark("O-1#1"), processed.rollback):
        with pytest.raises(StoreUnavailable, match="closed database") as info:
            call()
        assert not info.value.retryable


def test_a_connection_closed_under_a_unit_is_store_unavailable_and_the_next_unit_works(
    tmp_path: Path,
) -> None:
    store = open_store(file_url(tmp_path))
    try:
        add(store, make_order(order_id="O-1"))
        with store.unit_of_work() as uow:
            with uow.db() as conn:
                conn.close()
            with pytest.raises(StoreUnavailable, match="closed database") as info:
                uow.orders.find(OrderId("O-1"))
            assert not info.value.retryable
        assert load(store, "O-1").version == 2  # the closed connection was not pooled
    finally:
        store.close()


# -- times beyond what SQLite's UTC text holds, and limits beyond its INTEGER ---------------------------------
def seeded(store: Store) -> Store:
    """``store`` holding O-1 (placed at AT by C-1) and a cart reservation of WH-1/SKU-1 lapsing at AT."""
    add(store, make_order(order_id="O-1"))
    position = StockPosition.open("WH-1", Sku("SKU-1"), at=AT - timedelta(hours=1), on_hand=5)
    position.reserve("CART-1", 1, reference="cart", at=AT - timedelta(hours=1), hard=False, expires_at=AT)
    with store.unit_of_work() as uow:
        uow.inventory.save(position)
        uow.commit()
    return store


def answers(store: Store, at: datetime) -> tuple[list[Any], ...]:
    with store.unit_of_work() as uow:
        return (
            [a.order_id for a in uow.orders.orders_by_status(OrderStatus.PLACED, older_than=at)],
            [d.order_id for d in uow.orders.placed_since(CustomerId("C-1"), at)],
            list(uow.lapsed_positions(at, 10)),  # type: ignore[attr-defined]
        )


@pytest.mark.parametrize("at", [EARLY, LATE], ids=["year-1-at-plus-1h", "year-9999-at-minus-5h"])
def test_a_query_bound_beyond_the_utc_range_answers_as_memory_does(store: SqliteStore, at: datetime) -> None:
    memory = seeded(open_any_store("memory://"))
    try:
        expected = answers(memory, at)
    finally:
        memory.close()
    assert answers(seeded(store), at) == expected
    assert expected == (
        ([], [OrderId("O-1")], []) if at is EARLY else ([OrderId("O-1")], [], [("WH-1", Sku("SKU-1"))])
    )


def test_a_time_to_store_beyond_the_utc_range_is_refused_naming_it_and_writes_nothing(
    store: SqliteStore,
) -> None:
    add(store, make_order(order_id="O-1"))
    with store.unit_of_work() as uow:
        order = uow.orders.get(OrderId("O-1"))
        order.hold("CHECK", actor=ACTOR, at=LATE)
        uow.orders.save(order)
        with pytest.raises(InvalidValue) as info:
            uow.commit()
    assert info.value.field == "status_since" and info.value.value == LATE
    stored = load(store, "O-1")
    assert stored.version == 2 and stored.holds == ()
    add(store, make_order(order_id="O-2"))  # the store goes on
    assert load(store, "O-2").version == 2


@pytest.mark.parametrize("url", ["sqlite://:memory:", "file"])
def test_a_limit_beyond_a_64_bit_integer_answers_as_memory_does(tmp_path: Path, url: str) -> None:
    results = []
    for store_url in ("memory://", file_url(tmp_path) if url == "file" else url):
        with bootstrap(store_url, clock=ManualClock(AT), ids=SequentialIds()) as app:
            app.handle(place_command())
            results.append(
                (
                    app.list_orders(limit=2**64),
                    app.held_orders(limit=2**64),
                    [a.order_id for a in app.orders_aging(OrderStatus.PLACED, limit=2**64)],
                    app.expire_reservations(limit=2**64),
                )
            )
    memory, sqlite = results
    assert sqlite == memory and memory[0] == [OrderId("O-000001")]


# -- files that are not ordercore's, and dry runs -------------------------------------------------------------
def test_a_negative_schema_version_is_not_an_ordercore_database_and_stays_untouched(tmp_path: Path) -> None:
    path = foreign_file(tmp_path / "orders.db", "CREATE TABLE t (x)", "PRAGMA user_version = -1")
    with pytest.raises(StoreUnavailable, match="not an ordercore database"):
        open_store(file_url(tmp_path))
    with pytest.raises(StoreUnavailable, match="not an ordercore database"):
        migrate(file_url(tmp_path))
    assert user_version_and_tables(path) == (-1, ["t"])
    assert journal_mode(path) == "delete"


def test_a_file_with_tables_of_its_own_is_refused_naming_a_few_and_stays_untouched(tmp_path: Path) -> None:
    tables = ["users", "invoices", "a1", "a2", "a3", "a4", "a5"]
    path = foreign_file(
        tmp_path / "orders.db", *(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY)" for t in tables)
    )
    for opening in (lambda: open_store(file_url(tmp_path)), lambda: migrate(file_url(tmp_path))):
        with pytest.raises(StoreUnavailable, match="tables that are not ordercore's") as info:
            opening()
        assert "(a1, a2, a3, a4, a5 and 2 more)" in str(info.value)
    assert user_version_and_tables(path) == (0, sorted(tables))
    assert journal_mode(path) == "delete"


def test_a_file_that_lost_its_version_stamp_is_refused_and_stays_untouched(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    store = SqliteStore(str(path))
    try:
        add(store, make_order(order_id="O-1"))
    finally:
        store.close()
    with closing(sqlite3.connect(path)) as raw:
        raw.execute("PRAGMA user_version = 0")
    before = user_version_and_tables(path)
    for opening in (lambda: open_store(file_url(tmp_path)), lambda: migrate(file_url(tmp_path))):
        with pytest.raises(StoreUnavailable, match=r"no schema version: its version stamp \(user_version\)"):
            opening()
    assert user_version_and_tables(path) == before
    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("SELECT id FROM orders").fetchall() == [("O-1",)]


def test_a_file_with_a_table_named_as_one_of_ordercores_is_refused_not_half_migrated(tmp_path: Path) -> None:
    path = foreign_file(tmp_path / "orders.db", "CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    with pytest.raises(StoreUnavailable, match=r"tables with ordercore's names \(orders\)"):
        open_store(file_url(tmp_path))
    assert user_version_and_tables(path) == (0, ["orders"])


def test_an_empty_file_is_adopted_and_only_the_tables_ordercore_makes_are_its_own(tmp_path: Path) -> None:
    empty = foreign_file(tmp_path / "empty.db", "PRAGMA user_version = 0")  # no tables at all
    store = SqliteStore(str(empty))
    try:
        add(store, make_order(order_id="O-1"))
    finally:
        store.close()
    version, names = user_version_and_tables(empty)
    assert version == SCHEMA_VERSION and set(names) - {"sqlite_sequence"} == OWN_TABLES


def test_a_dry_run_on_a_missing_file_is_store_unavailable_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="no database at"):
        migrate(file_url(tmp_path, "typo.db"), dry_run=True)
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_leaves_an_older_file_in_its_journal_mode(tmp_path: Path) -> None:
    schema_1_database(tmp_path / "orders.db", [level("WH-1", "SKU-1", 5)])
    done = migrate(file_url(tmp_path), dry_run=True)
    assert (done.found, done.applied) == (1, False)
    assert user_version_and_tables(tmp_path / "orders.db")[0] == 1
    assert journal_mode(tmp_path / "orders.db") == "delete"
    migrate(file_url(tmp_path))  # migrating for real switches it to WAL, as every store file is
    assert journal_mode(tmp_path / "orders.db") == "wal"


def test_a_refused_file_is_not_switched_to_wal(tmp_path: Path) -> None:
    newer = foreign_file(tmp_path / "newer.db", f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreUnavailable, match="schema version"):
        SqliteStore(str(newer))
    failing = tmp_path / "failing.db"
    schema_1_database(failing, [level("WH-1", "SKU-1", -2)])  # an unreadable level: the upgrade fails
    with pytest.raises(StoreUnavailable, match="cannot be upgraded"):
        SqliteStore(str(failing), migrate=True)
    older = tmp_path / "older.db"
    schema_1_database(older, [level("WH-1", "SKU-1", 5)])
    with pytest.raises(StoreUnavailable, match="schema version 1"):
        SqliteStore(str(older))
    assert [journal_mode(p) for p in (newer, failing, older)] == ["delete"] * 3


# -- paths that are not UTF-8 ---------------------------------------------------------------------------------
@POSIX_NAMES
def test_a_file_name_that_is_not_utf8_round_trips_through_its_url(tmp_path: Path) -> None:
    path = tmp_path / os.fsdecode(b"caf\xe9.db")  # as os.listdir gives a Latin-1 name
    url = url_of_file(path)
    assert url.endswith("/caf%E9.db") and parse_url(url) == str(path)
    store = open_store(url)
    try:
        assert store.url == url
        add(store, make_order(order_id="O-1"))
    finally:
        store.close()
    assert b"caf\xe9.db" in os.listdir(os.fsencode(tmp_path))
    with closing(open_store(url)) as reopened:  # the URL names that very file again
        assert load(reopened, "O-1").version == 2


@POSIX_NAMES
def test_a_percent_encoded_byte_names_that_byte(tmp_path: Path) -> None:
    assert parse_url(f"sqlite:///{tmp_path}/orders%FF.db") == os.fsdecode(
        os.fsencode(tmp_path) + b"/orders\xff.db"
    )


@POSIX_NAMES
@pytest.mark.parametrize("name", ["orders\ud800.db", "orders\x00.db"])
def test_a_path_no_file_can_have_is_refused_before_any_file_is_made(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidValue) as info:
        SqliteStore(str(tmp_path / name))
    assert info.value.field == "path"
    with pytest.raises(InvalidValue) as info:
        open_store(f"sqlite:///{tmp_path}/{name}")
    assert info.value.field == "url"
    assert list(tmp_path.iterdir()) == []


# -- text SQLite cannot encode --------------------------------------------------------------------------------
class SurrogateInOrders:
    """The store's JSON writer, but for orders, whose ``see note`` it writes with an unpaired surrogate: text
    that reached the adapter past the domain's checks."""

    def __init__(self, json: Any) -> None:
        self.json = json

    def order(self, order: Any) -> str:
        text: str = self.json.order(order)
        return text.replace("see note", "see\ud800note")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.json, name)


def test_a_body_sqlite_cannot_encode_is_invalid_value_naming_its_field_and_writes_nothing(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(store, make_order(order_id="O-1"))
    monkeypatch.setattr(store, "json", SurrogateInOrders(store.json))
    with store.unit_of_work() as uow:
        order = uow.orders.get(OrderId("O-1"))
        order.hold("CHECK", actor=ACTOR, at=AT, message="see note")
        uow.orders.save(order)
        with pytest.raises(InvalidValue, match="unpaired surrogate") as info:
            uow.commit()
    assert info.value.field.endswith(".message") and info.value.value == "see\ud800note"
    monkeypatch.undo()
    stored = load(store, "O-1")
    assert stored.version == 2 and stored.holds == ()
    with store.unit_of_work() as uow:  # nothing reached the outbox, and the store goes on
        assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#1", "O-1#2"]
        order = uow.orders.get(OrderId("O-1"))
        order.hold("CHECK", actor=ACTOR, at=AT, message="see note")
        uow.orders.save(order)
        uow.commit()
    assert [h.code for h in load(store, "O-1").holds] == ["CHECK"]


def test_a_text_sqlite_cannot_encode_is_invalid_value_wherever_it_is_bound(
    store: SqliteStore, tmp_path: Path
) -> None:
    with store.unit_of_work() as uow:
        with pytest.raises(InvalidValue, match="unpaired surrogate") as info, uow.db() as conn:
            conn.execute("SELECT id FROM orders WHERE external_ref = ?", ("open\udfffing",))
        assert (info.value.field, info.value.value) == ("text", "open\udfffing")
        assert uow.orders.list_ids() == []
    with closing(sqlite3.connect(tmp_path / "consumer.db", isolation_level=None)) as conn:
        processed = SqliteProcessedEvents(conn)
        with pytest.raises(InvalidValue, match="unpaired surrogate") as info:
            processed.seen("O-1#\ud800")
        assert info.value.field == "event_id"
        processed.rollback()
        assert not processed.seen("O-1#1")


# -- the file under the store ----------------------------------------------------------------------------
def test_a_database_file_removed_while_the_store_is_open_is_refused_and_not_created_anew(
    tmp_path: Path,
) -> None:
    store = SqliteStore(str(tmp_path / "orders.db"))
    try:
        add(store, make_order(order_id="O-1"))
        (tmp_path / "orders.db").unlink()  # by an operator, a clean-up job...
        for _ in range(2):  # a pooled connection, then a new one
            with pytest.raises(StoreUnavailable, match="removed, moved or replaced") as info:
                add(store, make_order(order_id="O-2"))
            assert info.value.retryable is False
        assert not (tmp_path / "orders.db").exists()  # no empty database in its place
    finally:
        store.close()


def test_a_database_file_replaced_while_the_store_is_open_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    store = SqliteStore(str(path))
    try:
        add(store, make_order(order_id="O-1"))
        other = SqliteStore(str(tmp_path / "restored.db"))
        other.close()
        os.replace(tmp_path / "restored.db", path)  # a backup restored over it
        with pytest.raises(StoreUnavailable, match="removed, moved or replaced"):
            add(store, make_order(order_id="O-2"))
    finally:
        store.close()
    again = SqliteStore(str(path))  # opened anew: the file as it is now
    try:
        add(again, make_order(order_id="O-2"))
        assert load(again, "O-2").id == OrderId("O-2")
    finally:
        again.close()


def test_a_relative_path_keeps_naming_the_same_file_after_the_working_directory_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    store = SqliteStore("orders.db")
    try:
        add(store, make_order(order_id="O-1"))
        monkeypatch.chdir(tmp_path / "b")
        with store.unit_of_work() as one, store.unit_of_work() as two:  # a second, new connection
            assert one.orders.get(OrderId("O-1")).id == two.orders.get(OrderId("O-1")).id
        add(store, make_order(order_id="O-2"))
    finally:
        store.close()
    assert not (tmp_path / "b" / "orders.db").exists()
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.suffix == ".db") == ["orders.db"]
