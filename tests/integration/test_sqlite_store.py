"""The SQLite store against the shipped store contract, and what only a database on disk can show."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ordercore import (
    AcceptOrder,
    CapacityExhausted,
    ConcurrencyConflict,
    HoldOrder,
    InvalidValue,
    ManualClock,
    Order,
    OrderCoreError,
    OrderId,
    OrderStatus,
    RecordShipment,
    SequentialIds,
    StockPosition,
    StoreUnavailable,
    UnknownStore,
    bootstrap,
)
from ordercore import open_store as open_any_store
from ordercore.inventory import EntryKind, NodeDay, ReservationKind
from ordercore.ports import Store
from ordercore.service import messagebus as messagebus_module
from ordercore.testing.contracts import StoreContract
from ordercore.values import Sku
from ordercore_adapters.sqlite import SCHEMA_VERSION, SqliteStore, open_store, parse_url
from ordercore_adapters.sqlite import _store as sqlite_store_module
from ordercore_adapters.sqlite import file_url as url_of_file
from ordercore_adapters.sqlite._schema import _VERSION_1
from tests.unit.factories import ACTOR, AT, make_order, place_command


def file_url(tmp_path: Path, name: str = "orders.db") -> str:
    return f"sqlite:///{tmp_path}/{name}"


class TestSqliteFileStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = open_any_store(file_url(tmp_path))
        assert isinstance(s, SqliteStore)
        yield s
        s.close()


class TestSqliteMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = open_store("sqlite://:memory:")
        yield s
        s.close()


def add(store: Store, order: Order) -> None:
    with store.unit_of_work() as uow:
        uow.orders.add(order)
        uow.commit()


def load(store: Store, order_id: str) -> Order:
    with store.unit_of_work() as uow:
        return uow.orders.get(OrderId(order_id))


# -- URLs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", None),
        ("sqlite://:memory:", None),
        ("sqlite:///:memory:", None),
        ("sqlite:////tmp/x.db", "/tmp/x.db"),
        ("SQLite+wal:////tmp/x.db", "/tmp/x.db"),
    ],
)
def test_url_forms(url: str, expected: str | None) -> None:
    assert parse_url(url) == expected


def test_a_relative_path_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_url("sqlite:///data/orders.db") == str(tmp_path / "data" / "orders.db")
    store = open_store("sqlite:///orders.db")
    store.close()
    assert (tmp_path / "orders.db").exists()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("orders.db", UnknownStore),
        ("memory://", UnknownStore),
        ("sqlite:///", InvalidValue),
        ("sqlite:///data/", InvalidValue),
        ("sqlite://localhost/orders.db", InvalidValue),
        ("sqlite:///orders.db?mode=ro", InvalidValue),
    ],
)
def test_a_malformed_url_is_a_typed_error(url: str, error: type[OrderCoreError]) -> None:
    with pytest.raises(error) as info:
        open_store(url)
    assert "sqlite:///" in str(info.value)


@pytest.mark.parametrize("name", ["my orders.db", "100%.db", "what?.db", "a#b.db", "ünïcødé.db", "%41.db"])
def test_a_file_url_names_its_very_path_whatever_it_holds(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    url = url_of_file(path)
    assert parse_url(url) == str(path)
    store = open_store(url)
    try:
        assert store.url == url
        assert parse_url(store.url) == str(path)
    finally:
        store.close()
    assert path.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == [name]


def test_a_url_path_is_percent_decoded(tmp_path: Path) -> None:
    assert parse_url(f"sqlite:///{tmp_path}/my%20orders.db") == str(tmp_path / "my orders.db")
    assert parse_url(f"sqlite:///{tmp_path}/caf%C3%A9.db") == str(tmp_path / "café.db")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sqlite:///orders%00.db", "NUL"),
        # (a byte that is not UTF-8, %FF, names that byte: see test_sqlite_inputs.py)
        ("sqlite:///orders.db#main", "fragment"),
    ],
)
def test_a_url_that_cannot_name_a_file_is_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason) as info:
        open_store(url)
    assert info.value.field == "url"


def test_a_missing_directory_is_store_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/orders.db")


def test_a_file_store_writes_ahead_and_flushes_every_commit(tmp_path: Path) -> None:
    # a file made elsewhere in rollback-journal mode
    with closing(sqlite3.connect(tmp_path / "orders.db")) as other:
        other.execute("PRAGMA journal_mode = DELETE")
    store = open_store(file_url(tmp_path))
    try:
        conn = store.connect()
        try:
            assert conn.raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.raw.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: on the disk at commit
        finally:
            store.release(conn)
    finally:
        store.close()


@pytest.mark.parametrize("given", [123, "", "  ", b"orders.db"])
def test_a_path_that_is_no_text_or_empty_is_refused(given: object) -> None:
    with pytest.raises(InvalidValue) as info:
        SqliteStore(given)  # type: ignore[arg-type]
    assert info.value.field == "path"


def test_a_file_that_is_no_database_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "orders.db").write_bytes(b"this is not a database file" * 100)
    with pytest.raises(StoreUnavailable):
        open_store(file_url(tmp_path))


def test_the_schema_is_versioned_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    open_store(file_url(tmp_path)).close()
    open_store(file_url(tmp_path)).close()  # opening again is harmless
    with sqlite3.connect(tmp_path / "orders.db") as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 11
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreUnavailable, match=f"schema version {SCHEMA_VERSION + 1}"):
        open_store(file_url(tmp_path))


# -- durability and sharing -------------------------------------------------------------------------------
def test_orders_survive_closing_and_reopening(tmp_path: Path) -> None:
    order = make_order(order_id="O-1", external_ref="EXT-1")
    order.accept(actor=ACTOR, at=AT + timedelta(minutes=1))
    order.hold("CHECK", actor=ACTOR, at=AT + timedelta(minutes=2))
    order.release_hold("CHECK", actor=ACTOR, at=AT + timedelta(minutes=3))
    store = open_store(file_url(tmp_path))
    add(store, order)
    store.close()

    reopened = open_store(file_url(tmp_path))
    try:
        loaded = load(reopened, "O-1")
        assert loaded == order
        assert loaded.history == order.history and loaded.version == len(order.history)
        assert Order.replay(loaded.history) == order
        with reopened.unit_of_work() as uow:
            assert uow.orders.find_by_external_ref(order.channel, "EXT-1") == order
            pending = [r.event.event_id for r in uow.outbox.pending()]
        assert pending == [ev.event_id for ev in order.history]
    finally:
        reopened.close()


def test_bootstrap_with_a_sqlite_url_end_to_end(tmp_path: Path) -> None:
    url = file_url(tmp_path)
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC), tick=timedelta(minutes=1))
    with bootstrap(url, clock=clock, ids=SequentialIds()) as app:
        order_id = app.handle(place_command(external_ref="WEB-1")).order_id
        app.handle(AcceptOrder(order_id=order_id))
        app.handle(RecordShipment(order_id=order_id, shipment_id="S1"))
        shipped = app.get_order(order_id)
        assert shipped.status == OrderStatus.SHIPPED and shipped.version == 4
        assert app.list_orders(status=OrderStatus.SHIPPED) == [order_id]
    with bootstrap(url, ids=SequentialIds()) as again:
        assert again.get_order(order_id) == shipped
        assert again.history(order_id) == shipped.history


def test_two_stores_on_one_file_see_each_others_commits(tmp_path: Path) -> None:
    a, b = open_store(file_url(tmp_path)), open_store(file_url(tmp_path))
    try:
        add(a, make_order(order_id="O-1"))
        assert load(b, "O-1") == load(a, "O-1")
        with b.unit_of_work() as uow:
            uow.inventory.save(StockPosition.open("WH-1", make_order().lines[0].sku, at=AT, on_hand=5))
            uow.commit()
        with a.unit_of_work() as uow:
            assert [s.on_hand for s in uow.inventory.for_sku(make_order().lines[0].sku)] == [5]
            assert uow.orders.list_ids() == [OrderId("O-1")]
    finally:
        a.close()
        b.close()


def test_a_stale_update_through_another_store_conflicts(tmp_path: Path) -> None:
    a, b = open_store(file_url(tmp_path)), open_store(file_url(tmp_path))
    try:
        add(a, make_order(order_id="O-1"))
        with a.unit_of_work() as first, b.unit_of_work() as second:
            mine, theirs = first.orders.get(OrderId("O-1")), second.orders.get(OrderId("O-1"))
            mine.accept(actor=ACTOR, at=AT)
            theirs.hold("LATE", actor=ACTOR, at=AT)
            first.orders.save(mine)
            second.orders.save(theirs)
            second.commit()
            with pytest.raises(ConcurrencyConflict) as info:
                first.commit()
        assert (info.value.expected_version, info.value.actual_version) == (2, 3)
        stored = load(a, "O-1")
        assert stored.status == OrderStatus.ON_HOLD and not stored.accepted
        with a.unit_of_work() as uow:  # the loser's events never reached the outbox
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#1", "O-1#2", "O-1#3"]
    finally:
        a.close()
        b.close()


def test_the_outbox_keeps_commit_order_across_units(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    try:
        add(store, make_order(order_id="O-2"))
        add(store, make_order(order_id="O-1"))
        with store.unit_of_work() as uow:
            order = uow.orders.get(OrderId("O-2"))
            order.accept(actor=ACTOR, at=AT)
            uow.orders.save(order)
            uow.commit()
        with store.unit_of_work() as uow:
            records = uow.outbox.pending()
            assert [r.event.event_id for r in records] == ["O-2#1", "O-2#2", "O-1#1", "O-1#2", "O-2#3"]
            assert [r.position for r in records] == sorted(r.position for r in records)
            uow.outbox.mark_published(["O-2#1", "O-2#2"])
            uow.commit()
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending(limit=2)] == ["O-1#1", "O-1#2"]
            uow.outbox.mark_published(["O-2#1"])  # already published
            with pytest.raises(InvalidValue):
                uow.commit()
    finally:
        store.close()


def test_marking_an_unknown_event_published_fails_and_stores_nothing() -> None:
    store = open_store("sqlite://")
    try:
        add(store, make_order(order_id="O-1"))
        with store.unit_of_work() as uow:
            uow.outbox.mark_published(["O-1#1", "nope#1"])
            with pytest.raises(InvalidValue):
                uow.commit()
        with store.unit_of_work() as uow:
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#1", "O-1#2"]
    finally:
        store.close()


# -- failures ---------------------------------------------------------------------------------------------
def test_a_driver_failure_is_store_unavailable_and_keeps_committed_data(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    try:
        add(store, make_order(order_id="O-1"))
        with sqlite3.connect(tmp_path / "orders.db") as raw:
            raw.execute("DROP TABLE stock")
        with store.unit_of_work() as uow:
            order = uow.orders.get(OrderId("O-1"))
            order.accept(actor=ACTOR, at=AT)
            uow.orders.save(order)
            uow.orders.add(make_order(order_id="O-2"))
            uow.inventory.save(StockPosition.open("WH-1", order.lines[0].sku, at=AT, on_hand=1))
            with pytest.raises(StoreUnavailable) as info:
                uow.commit()
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert "stock" in str(info.value)
        # the order update and the new order were written before the failure, and rolled back with it
        stored = load(store, "O-1")
        assert stored.status == OrderStatus.PLACED and stored.version == 2
        with store.unit_of_work() as uow:
            assert uow.orders.find(OrderId("O-2")) is None
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#1", "O-1#2"]
    finally:
        store.close()


def test_a_write_lock_not_granted_in_time_is_retryable_and_the_command_runs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store_module, "_BUSY_TIMEOUT_MS", 50)
    app = bootstrap(file_url(tmp_path), clock=ManualClock(AT), ids=SequentialIds())
    try:
        order_id = app.handle(place_command()).order_id
        blocker = sqlite3.connect(tmp_path / "orders.db", isolation_level=None, timeout=0.05)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock...
        pauses: list[float] = []

        def pause(seconds: float) -> None:  # ...and lets it go while the bus waits to run the command again
            pauses.append(seconds)
            if blocker.in_transaction:
                blocker.execute("COMMIT")

        monkeypatch.setattr(messagebus_module.time, "sleep", pause)
        result = app.handle(AcceptOrder(order_id=order_id))
        assert len(pauses) == 1 and result.version == 3
        assert app.get_order(order_id).status is OrderStatus.ACCEPTED
        blocker.close()
        # with no retries, the busy store reaches the caller, retryable, and nothing was written
        blocker = sqlite3.connect(tmp_path / "orders.db", isolation_level=None, timeout=0.05)
        blocker.execute("BEGIN IMMEDIATE")
        app.bus.unavailable_retries = 0
        with pytest.raises(StoreUnavailable) as err:
            app.handle(HoldOrder(order_id=order_id, code="MINE"))
        assert err.value.retryable and not err.value.outcome_unknown
        blocker.execute("COMMIT")
        blocker.close()
        assert app.get_order(order_id).holds == ()
    finally:
        app.close()


def test_a_closed_store_refuses_work() -> None:
    store = open_store("sqlite://:memory:")
    uow = store.unit_of_work()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.unit_of_work()
    with pytest.raises(StoreUnavailable):
        uow.orders.find(OrderId("O-1"))


# -- stock: the ledger, and upgrading a schema 1 database -------------------------------------------------
def schema_1_database(path: Path, levels: list[dict[str, object]]) -> None:
    """A database as schema 1 left it, holding ``levels`` (the JSON of the former StockLevel)."""
    with closing(sqlite3.connect(path)) as raw:
        for statement in _VERSION_1:
            raw.execute(statement)
        raw.executemany(
            "INSERT INTO stock (node_id, sku, version, body) VALUES (?, ?, ?, ?)",
            [(lv["node_id"], lv["sku"], lv["version"], json.dumps(lv)) for lv in levels],
        )
        raw.execute("PRAGMA user_version = 1")
        raw.commit()


def level(node_id: str, sku: str, on_hand: int, **more: object) -> dict[str, object]:
    fields = {"node_id": node_id, "sku": sku, "on_hand": on_hand, "reserved": 0, "safety_stock": 0}
    return {**fields, "backorderable": False, "version": 3, **more}


def test_a_schema_1_database_is_upgraded_with_its_stock(tmp_path: Path) -> None:
    schema_1_database(
        tmp_path / "orders.db",
        [
            level("WH-1", "SKU-1", 10, reserved=3, safety_stock=2),
            level("WH-2", "SKU-1", 1, reserved=4, backorderable=True),
            level("WH-1", "SKU-2", 0),
        ],
    )
    store = open_store(file_url(tmp_path), migrate=True)
    try:
        with store.unit_of_work() as uow:
            first, second = uow.inventory.for_sku(Sku("SKU-1"))
            ledger = uow.inventory.ledger("WH-1", Sku("SKU-1"))
            empty = uow.inventory.get("WH-1", Sku("SKU-2"))
        assert (first.on_hand, first.safety_stock, first.reserved(AT), first.available(AT)) == (10, 2, 3, 5)
        assert first.reservations["schema-1"].kind is ReservationKind.HARD
        assert [e.kind for e in ledger] == [EntryKind.OPENED, EntryKind.SAFETY_STOCK_SET, EntryKind.RESERVED]
        assert StockPosition.replay(ledger) == first and first.version == 3
        assert second.backorderable and second.shortfall(AT) == 3
        assert empty is not None and empty.version == 1 and empty.on_hand == 0
        with store.unit_of_work() as uow:  # an upgraded position changes like any other
            position = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert position is not None
            position.release("schema-1", at=AT, reason="orders re-sourced")
            uow.inventory.save(position)
            uow.commit()
        with store.unit_of_work() as uow:
            assert len(uow.inventory.ledger("WH-1", Sku("SKU-1"))) == 4
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 11
        assert raw.execute("SELECT count(*) FROM node_capacity").fetchone() == (0,)


def test_an_older_database_is_refused_unless_opened_to_migrate(tmp_path: Path) -> None:
    schema_1_database(tmp_path / "orders.db", [level("WH-1", "SKU-1", 5)])
    url = file_url(tmp_path)
    for opener in (open_store, open_any_store):
        with pytest.raises(StoreUnavailable) as info:
            opener(url)
        message = str(info.value)
        assert "schema version 1" in message and "version 11" in message
        assert f"ordercore migrate --store sqlite:///{tmp_path / 'orders.db'}" in message
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:  # refused, so left as it was
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'stock_ledger'").fetchall() == []
    store = open_any_store(url, migrate=True)
    assert isinstance(store, SqliteStore)
    assert (store.migration.found, store.migration.target, store.migration.applied) == (1, 11, True)
    assert [version for version, _ in store.migration.steps] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    store.close()
    store = open_store(url)  # now at the current version: opens as usual
    with store.unit_of_work() as uow:
        position = uow.inventory.get("WH-1", Sku("SKU-1"))
    store.close()
    assert position is not None and position.on_hand == 5


def test_a_new_database_is_created_at_the_current_version_without_migrate(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    assert (store.migration.found, store.migration.target) == (0, SCHEMA_VERSION)
    store.close()
    assert open_any_store("memory://", migrate=True) is not None  # a store without a schema ignores it


def test_an_unreadable_stock_level_stops_the_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    schema_1_database(tmp_path / "orders.db", [level("WH-1", "SKU-1", 5), level("WH-2", "SKU-1", -2)])
    with pytest.raises(StoreUnavailable, match="WH-2/SKU-1 cannot be upgraded"):
        open_store(file_url(tmp_path), migrate=True)
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'stock_ledger'").fetchall() == []
        assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'node_capacity'").fetchall() == []
        assert (
            json.loads(raw.execute("SELECT body FROM stock WHERE node_id = 'WH-1'").fetchone()[0])["on_hand"]
            == 5
        )


def test_the_stock_ledger_is_append_only(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    try:
        with store.unit_of_work() as uow:
            uow.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=5))
            uow.commit()
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
        for statement in ("UPDATE stock_ledger SET quantity = 50", "DELETE FROM stock_ledger"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                raw.execute(statement)
        assert raw.execute("SELECT sequence, kind, quantity, key FROM stock_ledger").fetchall() == [
            (1, "opened", 5, "")
        ]


# -- capacity: node days, and upgrading a schema 2 database -----------------------------------------------
DAY = date(2026, 2, 2)


def take(store: Store, node_id: str, *keys: str, limit: int | None = None, day: date = DAY) -> None:
    with store.unit_of_work() as uow:
        node_day = uow.capacity.get(node_id, day)
        for key in keys:
            node_day.take(key, limit=limit)
        uow.commit()


def stored_day(store: Store, node_id: str, day: date = DAY) -> NodeDay:
    with store.unit_of_work() as uow:
        return uow.capacity.get(node_id, day)


def test_a_schema_2_database_is_upgraded_in_place_and_keeps_its_data(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    try:
        add(store, make_order(order_id="O-1"))
        with store.unit_of_work() as uow:
            uow.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=5))
            uow.commit()
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:  # back to what schema 2 had
        (table,) = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'node_capacity'").fetchone()
        raw.execute("DROP TABLE node_capacity")
        raw.execute("PRAGMA user_version = 2")
        raw.commit()
    store = open_store(file_url(tmp_path), migrate=True)
    try:
        assert load(store, "O-1").version == 2
        with store.unit_of_work() as uow:
            position = uow.inventory.get("WH-1", Sku("SKU-1"))
            assert position is not None and position.on_hand == 5
            assert uow.capacity.get("WH-1", DAY) == NodeDay.open("WH-1", DAY)
        take(store, "WH-1", "O-1/1", limit=1)
        assert stored_day(store, "WH-1").taken == {"O-1/1": 1}
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 11
        assert raw.execute("SELECT sql FROM sqlite_master WHERE name = 'node_capacity'").fetchone() == (
            table,
        )
        assert raw.execute("SELECT day, node_id, version, taken FROM node_capacity").fetchall() == [
            ("2026-02-02", "WH-1", 1, '{"O-1/1": 1}')
        ]


def test_capacity_taken_through_one_store_is_seen_and_checked_by_another(tmp_path: Path) -> None:
    a, b = open_store(file_url(tmp_path)), open_store(file_url(tmp_path))
    try:
        take(a, "WH-1", "K-1", limit=2)
        with a.unit_of_work() as first, b.unit_of_work() as second:
            mine, theirs = first.capacity.get("WH-1", DAY), second.capacity.get("WH-1", DAY)
            assert mine == theirs and theirs.used == 1
            mine.take("K-2", limit=2)
            theirs.take("K-3", limit=2)
            second.commit()
            with pytest.raises(ConcurrencyConflict) as info:
                first.commit()
        assert (info.value.expected_version, info.value.actual_version) == (1, 2)
        with pytest.raises(CapacityExhausted):  # a fresh read sees the day full
            take(a, "WH-1", "K-2", limit=2)
        assert stored_day(a, "WH-1").taken == {"K-1": 1, "K-3": 1}
    finally:
        a.close()
        b.close()


def test_a_commit_failing_on_node_capacity_writes_nothing(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    try:
        with sqlite3.connect(tmp_path / "orders.db") as raw:
            raw.execute("DROP TABLE node_capacity")
        with store.unit_of_work() as uow:
            uow.orders.add(make_order(order_id="O-1"))
            uow.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=1))
            node_day = NodeDay.open("WH-1", DAY)  # staged without a read
            node_day.take("O-1/1", limit=None)
            uow.capacity.save(node_day)
            with pytest.raises(StoreUnavailable, match="node_capacity"):
                uow.commit()
        with store.unit_of_work() as uow:
            assert uow.orders.find(OrderId("O-1")) is None
            assert uow.inventory.get("WH-1", Sku("SKU-1")) is None
    finally:
        store.close()


@pytest.mark.parametrize("taken", ["not json", "[1]", '{"K": 0}', '{"": 1}', '{"K": "1"}'])
def test_an_unreadable_node_day_is_store_unavailable(tmp_path: Path, taken: str) -> None:
    store = open_store(file_url(tmp_path))
    try:
        with sqlite3.connect(tmp_path / "orders.db") as raw:
            raw.execute(
                "INSERT INTO node_capacity (day, node_id, version, taken)"
                " VALUES ('2026-02-02', 'WH-1', 1, ?)",
                (taken,),
            )
        with store.unit_of_work() as uow:
            with pytest.raises(StoreUnavailable, match="capacity WH-1/2026-02-02 cannot be read"):
                uow.capacity.get("WH-1", DAY)
            with pytest.raises(StoreUnavailable, match="capacity WH-1/2026-02-02 cannot be read"):
                uow.capacity.for_day(DAY, ["WH-1"])
    finally:
        store.close()


def test_a_node_state_row_that_does_not_read_back_is_store_unavailable(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    try:
        with store.unit_of_work() as uow:
            uow.nodes.set_online("WH-1", False, actor=ACTOR, at=AT, reason="storm")
            uow.commit()
        with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
            raw.execute("UPDATE node_states SET changed_at = 'yesterday'")
            raw.execute("UPDATE node_states_version SET version = 2")  # as a change would
            raw.commit()
        with store.unit_of_work() as uow, pytest.raises(StoreUnavailable, match="node WH-1 cannot be read"):
            uow.nodes.current()
    finally:
        store.close()


def test_a_schema_6_database_is_refused_then_given_its_node_states(tmp_path: Path) -> None:
    store = open_store(file_url(tmp_path))
    try:
        add(store, make_order(order_id="O-1"))
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:  # back to what schema 6 had
        raw.execute("DROP TABLE node_states")
        raw.execute("DROP TABLE node_states_version")
        raw.execute("PRAGMA user_version = 6")
        raw.commit()
    with pytest.raises(StoreUnavailable, match="schema version 6"):
        open_store(file_url(tmp_path))
    store = open_store(file_url(tmp_path), migrate=True)
    try:
        assert [version for version, _ in store.migration.steps] == [7, 8, 9, 10, 11]
        with store.unit_of_work() as uow:
            assert uow.nodes.current().version == 0
            assert uow.nodes.set_online("WH-1", False, actor=ACTOR, at=AT)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.nodes.current().offline == {"WH-1"}
            assert uow.orders.get(OrderId("O-1")).version == 2
    finally:
        store.close()
