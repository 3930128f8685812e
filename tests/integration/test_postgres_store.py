"""The PostgreSQL store against the shipped store contract, and what only a shared server can show.

Each test works in a fresh schema of the server named by ``ORDERCORE_TEST_POSTGRES_URL`` (default: the local
``test`` database), dropped afterwards. Without a reachable server the tests are skipped, except on CI
(``CI=true``), where that is a failure.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from ordercore import (
    AcceptOrder,
    CapacityExhausted,
    ConcurrencyConflict,
    DuplicateOrder,
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
from ordercore.testing.contracts import StoreContract
from ordercore.values import Sku
from ordercore_adapters.postgres import SCHEMA_VERSION, PostgresStore, open_store, parse_url
from ordercore_adapters.postgres import _store as postgres_store_module
from ordercore_adapters.postgres._schema import _VERSION_1, _VERSION_TABLE, LZ4_TABLES, lz4_available
from tests.integration._postgres import SERVER_URL, admin_connection, schema_url
from tests.unit.factories import ACTOR, AT, make_order, place_command

_admin = admin_connection


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    conn = _admin()
    yield conn
    conn.close()


@pytest.fixture
def url(admin: psycopg.Connection[tuple[object, ...]]) -> Iterator[str]:
    """The URL of a fresh schema on the test server, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex}"
    yield schema_url(schema)
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = open_store(url)
    yield s
    s.close()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, url: str) -> Iterator[Store]:
        s = open_any_store(url)
        assert isinstance(s, PostgresStore)
        yield s
        s.close()


def add(store: Store, order: Order) -> None:
    with store.unit_of_work() as uow:
        uow.orders.add(order)
        uow.commit()


def load(store: Store, order_id: str) -> Order:
    with store.unit_of_work() as uow:
        return uow.orders.get(OrderId(order_id))


def schema_of(url: str) -> str:
    return parse_url(url).schema


def keeps_an_order(url: str) -> None:
    """Open a store on ``url``, store an order, read it back, close the store."""
    store = open_store(url)
    try:
        add(store, make_order(order_id="O-1"))
        assert load(store, "O-1").id == OrderId("O-1")
    finally:
        store.close()


# -- URLs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "conninfo", "schema"),
    [
        ("postgresql://u@h:5433/db", "postgresql://u@h:5433/db", "ordercore"),
        ("postgres://u@h/db?schema=s_1", "postgresql://u@h/db", "s_1"),
        (
            "PostgreSQL+psycopg://u:pw@h/db?sslmode=disable&schema=S",
            "postgresql://u:pw@h/db?sslmode=disable",
            "S",
        ),
        ("postgresql:///db", "postgresql:///db", "ordercore"),  # no host: the local server's socket
        (
            "postgresql:///db?host=/run/postgresql&schema=s",
            "postgresql:///db?host=%2Frun%2Fpostgresql",
            "s",
        ),
        (  # libpq options keep their percent-encoding: a space stays %20 (libpq reads + as a plus)
            "postgresql://u@h/db?options=-c%20statement_timeout%3D5s&schema=s",
            "postgresql://u@h/db?options=-c%20statement_timeout%3D5s",
            "s",
        ),
    ],
)
def test_url_forms(given: str, conninfo: str, schema: str) -> None:
    target = parse_url(given)
    assert (target.conninfo, target.schema, target.prepare) == (conninfo, schema, True)


@pytest.mark.parametrize(
    ("option", "ms"),
    [
        ("", None),
        ("&lock_timeout=250ms", 250),
        ("&lock_timeout=2s", 2000),
        ("&lock_timeout=1min", 60_000),
        ("&lock_timeout=0", 0),
        ("&lock_timeout=750", 750),
    ],
)
def test_the_lock_timeout_is_read_from_the_url(option: str, ms: int | None) -> None:
    target = parse_url(f"postgresql://u@h/db?sslmode=disable{option}")
    assert (target.conninfo, target.lock_timeout_ms) == ("postgresql://u@h/db?sslmode=disable", ms)


def test_a_url_without_a_host_reaches_the_server_through_its_socket(
    admin: psycopg.Connection[tuple[object, ...]],
) -> None:
    socket_dir = next(
        (
            d
            for d in ("/var/run/postgresql", "/run/postgresql", "/tmp")
            if any(n.startswith(".s.PGSQL.") for n in (os.listdir(d) if os.path.isdir(d) else []))
        ),
        None,
    )
    if socket_dir is None:
        pytest.skip("the test server has no Unix socket in /var/run/postgresql, /run/postgresql or /tmp")
    params = admin.info.get_parameters()
    schema = f"t_{uuid.uuid4().hex}"
    try:
        keeps_an_order(
            f"postgresql:///{params['dbname']}?host={socket_dir}&user={params['user']}&schema={schema}"
        )
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_prepare_false_turns_prepared_statements_off() -> None:
    target = parse_url("postgresql://u@h/db?prepare=false&sslmode=disable")
    assert (target.conninfo, target.prepare) == ("postgresql://u@h/db?sslmode=disable", False)
    assert parse_url("postgresql://u@h/db?prepare=true").prepare is True


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("orders", UnknownStore),
        ("sqlite:///orders.db", UnknownStore),
        ("postgresql://h:port/db", InvalidValue),
        ("postgresql://h/db?schema=a-b", InvalidValue),
        ("postgresql://h/db?schema=a&schema=b", InvalidValue),
        ("postgresql://h/db?schema=", InvalidValue),
        ("postgresql://h/db#x", InvalidValue),
        ("postgresql://h/db?prepare=no", InvalidValue),
        ("postgresql://h:99999/db", InvalidValue),
        ("postgresql://h1:5432,h2:x/db", InvalidValue),
        ("postgresql://h/db?prepare=true&prepare=false", InvalidValue),
        ("postgresql://h/db?lock_timeout=soon", InvalidValue),
        ("postgresql://h/db?lock_timeout=5h", InvalidValue),
        ("postgresql://h/db?lock_timeout=-1s", InvalidValue),
        ("postgresql://h/db?lock_timeout=99999999999", InvalidValue),
        ("postgresql://h/db?lock_timeout=1s&lock_timeout=2s", InvalidValue),
    ],
)
def test_a_malformed_url_is_a_typed_error(given: str, error: type[OrderCoreError]) -> None:
    with pytest.raises(error) as info:
        open_store(given)
    assert "postgresql://" in str(info.value)


@pytest.mark.parametrize(
    "given",
    [
        "postgresql://someone:s3cret@h:x/db",
        "postgresql://someone:s3cret@h/db?schema=a-b",
        "postgresql://someone@h/db?password=s3cret&pool_size=0",
        "postgresql://someone:s3cret@h/db?lock_timeout=soon",
    ],
)
def test_a_malformed_url_is_refused_without_showing_its_password(given: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_url(given)
    shown = json.dumps(info.value.to_dict()) + str(info.value) + repr(info.value)
    assert "s3cret" not in shown and "***" in shown


@pytest.mark.parametrize(
    ("given", "conninfo"),
    [
        (
            "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write",
        ),
        ("postgresql://[::1]:5432/db", "postgresql://[::1]:5432/db"),
    ],
)
def test_several_hosts_and_ipv6_hosts_are_passed_to_libpq(given: str, conninfo: str) -> None:
    assert parse_url(given).conninfo == conninfo


def test_the_url_shown_never_contains_the_password() -> None:
    with pytest.raises(StoreUnavailable) as info:
        open_store("postgresql://someone:s3cret@127.0.0.1:1/test?connect_timeout=2")
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_an_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect") as info:
        open_any_store("postgresql://postgres@127.0.0.1:1/test")
    assert isinstance(info.value.__cause__, psycopg.OperationalError)


def test_the_schema_is_created_versioned_and_a_newer_one_is_refused(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    open_store(url).close()
    open_store(url).close()  # opening again is harmless
    schema = sql.Identifier(schema_of(url))
    rows = admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall()
    assert rows == [(SCHEMA_VERSION,)] and SCHEMA_VERSION == 12
    admin.execute(
        sql.SQL("UPDATE {}.schema_version SET version = {}").format(schema, sql.Literal(SCHEMA_VERSION + 1))
    )
    with pytest.raises(StoreUnavailable, match=f"schema version {SCHEMA_VERSION + 1}"):
        open_store(url)


def tables_of(admin: psycopg.Connection[tuple[object, ...]], schema: str) -> list[object]:
    rows = admin.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", (schema,)
    ).fetchall()
    return [name for (name,) in rows]


def test_a_schema_that_lost_its_version_row_is_refused_and_left_as_it_is(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_store(url)
    add(store, make_order(order_id="O-1"))
    store.close()
    schema = schema_of(url)
    admin.execute(sql.SQL("DELETE FROM {}.schema_version").format(sql.Identifier(schema)))
    before = tables_of(admin, schema)
    for opening in (lambda: open_store(url), lambda: open_store(url, migrate=True)):
        with pytest.raises(StoreUnavailable, match="no schema version: its schema_version row was lost"):
            opening()
    assert tables_of(admin, schema) == before
    assert admin.execute(
        sql.SQL("SELECT count(*) FROM {}.schema_version").format(sql.Identifier(schema))
    ).fetchall() == [(0,)]
    assert admin.execute(sql.SQL("SELECT id FROM {}.orders").format(sql.Identifier(schema))).fetchall() == [
        ("O-1",)
    ]


def test_a_schema_of_another_application_is_refused_naming_its_tables_and_left_as_it_is(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema = sql.Identifier(schema_of(url))
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    for table in ("users", "invoices"):
        admin.execute(sql.SQL("CREATE TABLE {}.{} (id INTEGER)").format(schema, sql.Identifier(table)))
    with pytest.raises(StoreUnavailable, match=r"not an ordercore database: .*\(invoices, users\)"):
        open_store(url)
    assert tables_of(admin, schema_of(url)) == ["invoices", "users"]  # no schema_version table either


def test_a_schema_holding_a_table_with_an_ordercore_name_is_refused_not_half_migrated(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema = sql.Identifier(schema_of(url))
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    admin.execute(sql.SQL("CREATE TABLE {}.orders (id INTEGER)").format(schema))
    with pytest.raises(StoreUnavailable, match=r"tables with ordercore's names \(orders\)"):
        open_store(url)
    assert tables_of(admin, schema_of(url)) == ["orders"]


def test_a_schema_holding_only_an_extensions_views_is_adopted(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    # public with pg_stat_statements installed in it, say: those views are the extension's, not a table
    # of another application's
    available = {
        name
        for (name,) in admin.execute(
            "SELECT name FROM pg_available_extensions WHERE installed_version IS NULL"
            " AND name IN ('pg_buffercache', 'pg_stat_statements')"
        ).fetchall()
    }
    if not available:
        pytest.skip("neither pg_buffercache nor pg_stat_statements can be installed on this server")
    extension = sorted(available)[0]
    schema = sql.Identifier(schema_of(url))
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
    admin.execute(sql.SQL("CREATE EXTENSION {} SCHEMA {}").format(sql.Identifier(extension), schema))
    try:
        keeps_an_order(url)
        assert "orders" in tables_of(admin, schema_of(url))
    finally:
        admin.execute(sql.SQL("DROP EXTENSION {}").format(sql.Identifier(extension)))


def test_an_empty_schema_made_beforehand_is_adopted(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema_of(url))))
    keeps_an_order(url)


def test_the_default_schema_is_ordercore() -> None:
    assert parse_url(SERVER_URL.split("?", 1)[0]).schema == "ordercore"


# -- end to end, durability and sharing -------------------------------------------------------------------
def test_bootstrap_with_a_postgresql_url_end_to_end(url: str) -> None:
    clock = ManualClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC), tick=timedelta(minutes=1))
    with bootstrap(url, clock=clock, ids=SequentialIds()) as app:
        order_id = app.handle(place_command(external_ref="WEB-1")).order_id
        app.handle(AcceptOrder(order_id=order_id))
        app.handle(RecordShipment(order_id=order_id, shipment_id="S1"))
        shipped = app.get_order(order_id)
        assert shipped.status == OrderStatus.SHIPPED and shipped.version == 4
        assert app.list_orders(status=OrderStatus.SHIPPED) == [order_id]
    with bootstrap(url.replace("postgresql://", "postgres://", 1), ids=SequentialIds()) as again:
        assert again.get_order(order_id) == shipped
        history = again.history(order_id)
        assert history == shipped.history
        assert Order.replay(history) == shipped


def test_orders_survive_closing_and_reopening(url: str) -> None:
    order = make_order(order_id="O-1", external_ref="EXT-1")
    order.accept(actor=ACTOR, at=AT + timedelta(minutes=1))
    order.hold("CHECK", actor=ACTOR, at=AT + timedelta(minutes=2))
    order.release_hold("CHECK", actor=ACTOR, at=AT + timedelta(minutes=3))
    store = open_store(url)
    add(store, order)
    store.close()

    reopened = open_store(url)
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


def test_two_stores_on_one_schema_see_each_others_commits(url: str) -> None:
    a, b = open_store(url), open_store(url)
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


def test_a_stale_update_through_another_store_conflicts(url: str) -> None:
    a, b = open_store(url), open_store(url)
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


def test_a_duplicate_reference_committed_elsewhere_names_the_existing_order(url: str) -> None:
    a, b = open_store(url), open_store(url)
    try:
        with b.unit_of_work() as late:
            late.orders.add(make_order(order_id="O-2", external_ref="EXT-1"))  # checked now: no clash yet
            add(a, make_order(order_id="O-1", external_ref="EXT-1"))
            with pytest.raises(DuplicateOrder) as info:
                late.commit()
        assert info.value.existing_order_id == OrderId("O-1")
        with b.unit_of_work() as uow:
            assert uow.orders.list_ids() == [OrderId("O-1")]
            assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#1", "O-1#2"]
    finally:
        a.close()
        b.close()


def test_ids_are_ordered_by_code_point_whatever_the_locale(store: PostgresStore) -> None:
    ids = ["b-1", "B-2", "a-1", "a1", "a.1"]
    for order_id in ids:
        add(store, make_order(order_id=order_id))
    with store.unit_of_work() as uow:
        assert [o.value for o in uow.orders.list_ids()] == sorted(ids) == ["B-2", "a-1", "a.1", "a1", "b-1"]
        assert [o.value for o in uow.orders.list_ids(after=OrderId("B-2"), limit=2)] == ["a-1", "a.1"]


def test_the_outbox_keeps_commit_order_and_refuses_unknown_ids(store: PostgresStore) -> None:
    add(store, make_order(order_id="O-2"))
    add(store, make_order(order_id="O-1"))
    with store.unit_of_work() as uow:
        records = uow.outbox.pending()
        assert [r.event.event_id for r in records] == ["O-2#1", "O-2#2", "O-1#1", "O-1#2"]
        uow.outbox.mark_published(["O-2#1", "O-2#2"])
        uow.commit()
    with store.unit_of_work() as uow:
        uow.outbox.mark_published(["O-1#1", "O-2#1"])  # the second is already published
        with pytest.raises(InvalidValue):
            uow.commit()
    with store.unit_of_work() as uow:
        uow.outbox.mark_published(["nope#1"])
        with pytest.raises(InvalidValue):
            uow.commit()
    with store.unit_of_work() as uow:
        assert [r.event.event_id for r in uow.outbox.pending()] == ["O-1#1", "O-1#2"]


# -- failures ---------------------------------------------------------------------------------------------
def _kill_pooled_connection(store: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    conn = store.connect()
    pid = conn.info.backend_pid
    store.release(conn)
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(100):  # the server ends it asynchronously
        if admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone() is None:
            return
        time.sleep(0.02)


def test_a_pooled_connection_is_checked_with_a_round_trip_only_when_idle_or_closed_by_the_server(
    url: str, admin: psycopg.Connection[tuple[object, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[psycopg.Connection[tuple[object, ...]]] = []
    check = ConnectionPool.check_connection

    def counting(conn: psycopg.Connection[tuple[object, ...]]) -> None:
        checked.append(conn)
        check(conn)

    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    store = open_store(f"{url}&pool_size=1")
    try:
        add(store, make_order(order_id="O-1"))
        checked.clear()
        for _ in range(3):  # used moments ago: no round trip
            assert load(store, "O-1").id == OrderId("O-1")
        assert checked == []
        # the server ends the session: noticed on the socket, checked, and replaced before use
        _kill_pooled_connection(store, admin)
        assert load(store, "O-1").id == OrderId("O-1")
        assert len(checked) == 2 and checked[0].broken  # the dead one, then its (new) replacement
        # idle for longer than the store trusts a connection: checked
        monkeypatch.setattr(postgres_store_module, "_CHECK_IDLE_S", 0.0)
        assert load(store, "O-1").id == OrderId("O-1")
        assert len(checked) == 3
    finally:
        store.close()


def _session(store: PostgresStore) -> tuple[str, dict[str, str]]:
    """The lock timeout and the connection parameters of a pooled connection of ``store``."""
    conn = store.connect()
    try:
        row = conn.execute("SHOW lock_timeout").fetchone()
        assert row is not None
        return str(row[0]), conn.info.get_parameters()
    finally:
        store.release(conn)


def test_pooled_connections_wait_for_a_lock_and_a_silent_peer_for_a_bounded_time(url: str) -> None:
    store = open_store(url)
    try:
        lock_timeout, params = _session(store)
    finally:
        store.close()
    assert lock_timeout == "5s"  # the server sets no limit: the store's default
    assert {k: params.get(k) for k in ("keepalives_idle", "keepalives_interval", "keepalives_count")} == {
        "keepalives_idle": "15",
        "keepalives_interval": "5",
        "keepalives_count": "3",
    }
    if psycopg.pq.version() >= 120000:
        assert params.get("tcp_user_timeout") == "30000"


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("&lock_timeout=0", "0"),  # no limit, asked for
        ("&lock_timeout=1500ms", "1500ms"),
        ("&options=-c%20lock_timeout%3D2s", "2s"),  # the session's own setting is kept
    ],
)
def test_a_lock_timeout_given_is_kept(url: str, option: str, expected: str) -> None:
    store = open_store(url + option)
    try:
        assert _session(store)[0] == expected
    finally:
        store.close()


@pytest.mark.parametrize("given", [0, 1001, "8", 2.0, True])
def test_a_bad_pool_size_given_to_the_store_is_refused_before_connecting(given: object) -> None:
    with pytest.raises(InvalidValue) as info:
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", pool_size=given)  # type: ignore[arg-type]
    assert info.value.field == "pool_size"


@pytest.mark.parametrize("given", [-1, 2**31, 1.5, "5s", True])
def test_a_bad_lock_timeout_given_to_the_store_is_refused_before_connecting(given: object) -> None:
    with pytest.raises(InvalidValue) as info:
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", lock_timeout_ms=given)  # type: ignore[arg-type]
    assert info.value.field == "lock_timeout_ms"


def test_tcp_settings_in_the_url_are_kept(url: str) -> None:
    store = open_store(url + "&keepalives_idle=60&keepalives_count=9")
    try:
        params = _session(store)[1]
    finally:
        store.close()
    assert (params.get("keepalives_idle"), params.get("keepalives_count")) == ("60", "9")
    assert params.get("keepalives_interval") == "5"


def test_a_commit_waiting_on_a_lock_gives_up_retryable_writes_nothing_and_goes_through_once_free(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_store(url + "&lock_timeout=200ms")
    try:
        app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds())
        order_id = app.handle(place_command()).order_id
        # another session holds the order's row: an operator's open transaction, say
        holder = psycopg.connect(parse_url(url).conninfo)
        try:
            holder.execute(
                sql.SQL("SELECT 1 FROM {}.orders WHERE id = %s FOR UPDATE").format(
                    sql.Identifier(schema_of(url))
                ),
                (order_id.value,),
            )
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as info:
                app.handle(AcceptOrder(order_id=order_id))
            waited = time.monotonic() - started
            assert info.value.retryable and not info.value.outcome_unknown
            assert isinstance(info.value.__cause__, psycopg.errors.LockNotAvailable)
            assert waited < 5  # three attempts of 200 ms each, not a wait for the holder
            assert app.get_order(order_id).status is OrderStatus.PLACED  # nothing written
        finally:
            holder.rollback()
            holder.close()
        assert app.handle(AcceptOrder(order_id=order_id)).version == 3
        assert app.get_order(order_id).status is OrderStatus.ACCEPTED
    finally:
        store.close()


def test_a_connection_given_back_is_reset_in_the_callers_thread_before_the_next_unit_gets_it(
    url: str,
) -> None:
    store = open_store(f"{url}&pool_size=1")
    try:
        conn = store.connect()
        conn.autocommit = False
        conn.execute("SELECT 1")  # a transaction left open
        store.release(conn)
        # reset by the time release returns: no worker thread of the pool had to take it
        assert conn.info.transaction_status == TransactionStatus.IDLE and conn.autocommit
        again = store.connect()
        assert again is conn
        store.release(again)
        # a connection closed while out is given back as it is, and the pool replaces it
        broken = store.connect()
        broken.close()
        store.release(broken)
        fresh = store.connect()
        assert fresh is not broken and not fresh.closed and fresh.autocommit
        assert fresh.execute("SELECT 1").fetchone() == (1,)
        store.release(fresh)
    finally:
        store.close()


@pytest.fixture
def unwatched(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresStore]:
    """A store of one pooled connection whose pool does not notice that it died before handing it out,
    as after a network cut."""
    monkeypatch.setattr(PostgresStore, "_check", lambda self, conn: None)
    store = open_store(f"{url}&pool_size=1")
    yield store
    store.close()


def test_a_command_whose_pooled_connection_died_unnoticed_runs_again_on_a_new_one(
    unwatched: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    app = bootstrap(unwatched, clock=ManualClock(AT), ids=SequentialIds())
    order_id = app.handle(place_command()).order_id
    _kill_pooled_connection(unwatched, admin)
    result = app.handle(AcceptOrder(order_id=order_id))  # its first read fails: nothing was written
    assert result.version == 3
    order = app.get_order(order_id)
    assert order.status is OrderStatus.ACCEPTED and order.version == 3
    assert [type(e).__name__ for e in order.history].count("StatusChanged") == 2  # placed, accepted: once


def test_a_commit_whose_connection_broke_is_not_run_again_and_says_its_outcome_is_unknown(
    unwatched: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    add(unwatched, make_order(order_id="O-1"))
    unit = unwatched.unit_of_work()
    with unit as uow:
        order = uow.orders.get(OrderId("O-1"))  # read on a live connection
        order.hold("MINE", actor=ACTOR, at=AT)
        pid = unit._conn.info.backend_pid if unit._conn is not None else None
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable) as err:
            uow.commit()  # the connection dies under the commit
    assert err.value.outcome_unknown and not err.value.retryable
    assert err.value.to_dict()["outcome_unknown"] is True
    assert load(unwatched, "O-1").holds == ()  # here the server never ran it


def test_a_driver_failure_mid_commit_is_store_unavailable_and_writes_nothing(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_store(url)
    try:
        add(store, make_order(order_id="O-1"))
        with store.unit_of_work() as uow:
            order = uow.orders.get(OrderId("O-1"))
            order.accept(actor=ACTOR, at=AT)
            uow.orders.save(order)
            uow.inventory.save(StockPosition.open("WH-1", order.lines[0].sku, at=AT, on_hand=1))
            admin.execute(sql.SQL("DROP TABLE {}.outbox").format(sql.Identifier(schema_of(url))))
            with pytest.raises(StoreUnavailable) as info:
                uow.commit()
        assert isinstance(info.value.__cause__, psycopg.errors.UndefinedTable)
        assert "outbox" in str(info.value)
        # the order update was written before the failure, and rolled back with it
        stored = load(store, "O-1")
        assert stored.status == OrderStatus.PLACED and stored.version == 2
        with store.unit_of_work() as uow:
            assert uow.inventory.get("WH-1", order.lines[0].sku) is None
    finally:
        store.close()


def test_an_unreadable_row_is_store_unavailable(store: PostgresStore, url: str) -> None:
    add(store, make_order(order_id="O-1"))
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as raw:
        raw.execute(
            sql.SQL("UPDATE {}.orders SET body = '{{\"nonsense\": 1}}'").format(
                sql.Identifier(schema_of(url))
            )
        )
    # a store that wrote the row keeps a copy at its version, and an edit that keeps the version is not
    # one it can notice: the row is read by a store opened afresh, as a restarted process would
    fresh = open_store(url)
    try:
        with fresh.unit_of_work() as uow, pytest.raises(StoreUnavailable, match="cannot be read"):
            uow.orders.get(OrderId("O-1"))
    finally:
        fresh.close()


def test_a_closed_store_refuses_work(url: str) -> None:
    store = open_store(url)
    uow = store.unit_of_work()
    in_use = store.unit_of_work()
    assert in_use.orders.find(OrderId("O-1")) is None  # holds a connection
    store.close()
    with pytest.raises(StoreUnavailable):
        store.unit_of_work()
    with pytest.raises(StoreUnavailable):
        uow.orders.find(OrderId("O-1"))
    with pytest.raises(StoreUnavailable):
        in_use.orders.list_ids()
    in_use.close()


# -- stock: the ledger, and upgrading a schema 1 database -------------------------------------------------
def schema_1(url: str, levels: list[dict[str, object]]) -> None:
    """The schema of ``url`` as schema 1 left it, holding ``levels`` (the JSON of the former StockLevel)."""
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as raw, raw.transaction():
        schema = sql.Identifier(schema_of(url))
        raw.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        raw.execute(sql.SQL("SET search_path TO {}").format(schema))
        raw.execute(_VERSION_TABLE)
        for statement in _VERSION_1:
            raw.execute(statement)
        raw.execute("INSERT INTO schema_version (version) VALUES (1)")
        with raw.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO stock (node_id, sku, version, body) VALUES (%s, %s, %s, %s::jsonb)",
                [(lv["node_id"], lv["sku"], lv["version"], json.dumps(lv)) for lv in levels],
            )


def level(node_id: str, sku: str, on_hand: int, **more: object) -> dict[str, object]:
    fields = {"node_id": node_id, "sku": sku, "on_hand": on_hand, "reserved": 0, "safety_stock": 0}
    return {**fields, "backorderable": False, "version": 3, **more}


def test_a_schema_1_database_is_upgraded_with_its_stock(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema_1(
        url,
        [
            level("WH-1", "SKU-1", 10, reserved=3, safety_stock=2),
            level("WH-2", "SKU-1", 1, reserved=4, backorderable=True),
            level("WH-1", "SKU-2", 0),
        ],
    )
    store = open_store(url, migrate=True)
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
    schema = sql.Identifier(schema_of(url))
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [
        (12,)
    ]
    assert admin.execute(sql.SQL("SELECT count(*) FROM {}.node_capacity").format(schema)).fetchone() == (0,)


def test_an_older_schema_is_refused_unless_opened_to_migrate(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema_1(url, [level("WH-1", "SKU-1", 5)])
    for opener in (open_store, open_any_store):
        with pytest.raises(StoreUnavailable) as info:
            opener(url)
        message = str(info.value)
        assert "schema version 1" in message and "version 12" in message
        assert "ordercore migrate --store postgresql://" in message and schema_of(url) in message
    schema = sql.Identifier(schema_of(url))
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [(1,)]
    assert admin.execute("SELECT to_regclass(%s)", (f"{schema_of(url)}.stock_ledger",)).fetchone() == (None,)
    store = open_any_store(url, migrate=True)
    assert isinstance(store, PostgresStore)
    assert (store.migration.found, store.migration.target, store.migration.applied) == (1, 12, True)
    assert [version for version, _ in store.migration.steps] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    store.close()
    store = open_store(url)  # now at the current version: opens as usual
    with store.unit_of_work() as uow:
        position = uow.inventory.get("WH-1", Sku("SKU-1"))
    store.close()
    assert position is not None and position.on_hand == 5
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [
        (12,)
    ]


def test_a_dry_run_migration_changes_nothing(url: str, admin: psycopg.Connection[tuple[object, ...]]) -> None:
    from ordercore_adapters.postgres import migrate

    schema_1(url, [level("WH-1", "SKU-1", 5)])
    planned = migrate(url, dry_run=True)
    assert (planned.found, planned.target, planned.applied) == (1, 12, False)
    assert [version for version, _ in planned.steps] == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    schema = sql.Identifier(schema_of(url))
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [(1,)]
    assert migrate(url).applied
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [
        (12,)
    ]
    assert migrate(url).steps == ()


def test_an_unreadable_stock_level_stops_the_upgrade_and_changes_nothing(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema_1(url, [level("WH-1", "SKU-1", 5), level("WH-2", "SKU-1", -2)])
    with pytest.raises(StoreUnavailable, match="WH-2/SKU-1 cannot be upgraded"):
        open_store(url, migrate=True)
    schema = sql.Identifier(schema_of(url))
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [(1,)]
    assert admin.execute("SELECT to_regclass(%s)", (f"{schema_of(url)}.stock_ledger",)).fetchone() == (None,)
    assert admin.execute("SELECT to_regclass(%s)", (f"{schema_of(url)}.node_capacity",)).fetchone() == (None,)
    body = admin.execute(
        sql.SQL("SELECT body FROM {}.stock WHERE node_id = 'WH-1'").format(schema)
    ).fetchone()
    assert body is not None and body[0]["on_hand"] == 5  # type: ignore[index]


def test_the_stock_ledger_is_append_only(store: PostgresStore, url: str) -> None:
    with store.unit_of_work() as uow:
        uow.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=5))
        uow.commit()
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as raw:
        raw.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_of(url))))
        for statement in ("UPDATE stock_ledger SET quantity = 50", "DELETE FROM stock_ledger"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                raw.execute(statement)
        rows = raw.execute("SELECT sequence, kind, quantity, key, at FROM stock_ledger").fetchall()
    assert rows == [(1, "opened", 5, "", AT)]


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


def test_a_schema_2_database_is_upgraded_in_place_and_keeps_its_data(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_store(url)
    try:
        add(store, make_order(order_id="O-1"))
        with store.unit_of_work() as uow:
            uow.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=5))
            uow.commit()
    finally:
        store.close()
    schema = sql.Identifier(schema_of(url))
    columns = sql.SQL(
        "SELECT column_name, data_type, collation_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = 'node_capacity' ORDER BY ordinal_position"
    )
    created = admin.execute(columns, (schema_of(url),)).fetchall()
    admin.execute(sql.SQL("DROP TABLE {}.node_capacity").format(schema))  # back to what schema 2 had
    admin.execute(sql.SQL("UPDATE {}.schema_version SET version = 2").format(schema))
    store = open_store(url, migrate=True)
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
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [
        (12,)
    ]
    assert (
        admin.execute(columns, (schema_of(url),)).fetchall()
        == created
        == [
            ("day", "date", None),
            ("node_id", "text", "C"),
            ("version", "integer", None),
            ("taken", "jsonb", None),
        ]
    )
    rows = admin.execute(sql.SQL("SELECT day, node_id, version, taken FROM {}.node_capacity").format(schema))
    assert rows.fetchall() == [(DAY, "WH-1", 1, {"O-1/1": 1})]


def test_a_schema_6_database_is_refused_then_given_its_row_checks(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_store(url)
    try:
        add(store, make_order(order_id="O-1"))
    finally:
        store.close()
    schema = sql.Identifier(schema_of(url))
    admin.execute(sql.SQL("DROP FUNCTION {}.ordercore_check_rows").format(schema))  # what schema 6 had
    admin.execute(sql.SQL("UPDATE {}.schema_version SET version = 6").format(schema))
    with pytest.raises(StoreUnavailable, match="schema version 6"):
        open_store(url)
    store = open_store(url, migrate=True)
    try:
        assert [version for version, _ in store.migration.steps] == [7, 8, 9, 10, 11, 12]
        # the checks work again: a stale write is refused with the versions, and nothing of it is written
        with store.unit_of_work() as first, store.unit_of_work() as second:
            mine, theirs = first.orders.get(OrderId("O-1")), second.orders.get(OrderId("O-1"))
            theirs.hold("credit", actor=ACTOR, at=AT)
            second.orders.save(theirs)
            second.commit()
            mine.accept(actor=ACTOR, at=AT)
            first.orders.save(mine)
            with pytest.raises(ConcurrencyConflict) as info:
                first.commit()
        assert (info.value.expected_version, info.value.actual_version) == (2, 3)
        assert load(store, "O-1").status is OrderStatus.ON_HOLD
    finally:
        store.close()
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [
        (12,)
    ]
    outbox = sql.SQL("SELECT type FROM {}.outbox ORDER BY position").format(schema)
    assert [t for (t,) in admin.execute(outbox).fetchall()] == [
        "OrderCreated",
        "StatusChanged",
        "HoldApplied",
    ]


def test_a_switch_waits_for_commits_that_checked_the_node_states_and_they_for_it(url: str) -> None:
    """The advisory lock that keeps a switch from slipping between a sourcing commit's check of the node
    states and its end: held shared by such commits, alone by a switch (see _unit_of_work)."""
    store = open_store(url)
    lock_key = f"ordercore node states {schema_of(url)}"
    try:
        with store.unit_of_work() as uow:
            uow.orders.add(make_order(order_id="O-1"))
            uow.commit()

        def in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
            errors: list[BaseException] = []

            def run() -> None:
                try:
                    work()
                except BaseException as e:
                    errors.append(e)

            thread = threading.Thread(target=run)
            thread.start()
            return thread, errors

        def switch() -> None:
            with store.unit_of_work() as uow:
                uow.nodes.set_online("WH-1", False, actor=ACTOR, at=AT)
                uow.commit()

        def source() -> None:  # reads the states, then commits a change of an order
            with store.unit_of_work() as uow:
                uow.nodes.current()
                order = uow.orders.get(OrderId("O-1"))
                order.hold("CHECK", actor=ACTOR, at=AT)
                uow.orders.save(order)
                uow.commit()

        # a sourcing commit in flight (its transaction holds the lock shared): the switch waits for it
        with psycopg.connect(SERVER_URL) as other:
            other.execute("SELECT pg_advisory_xact_lock_shared(hashtext(%s))", (lock_key,))
            thread, errors = in_thread(switch)
            thread.join(timeout=0.5)
            assert thread.is_alive(), "the switch did not wait for the commit in flight"
            other.commit()
        thread.join(timeout=10)
        assert not thread.is_alive() and not errors
        # a switch in flight (the lock held alone): a commit that checked the states waits, then finds
        # them changed
        with psycopg.connect(SERVER_URL) as other:
            other.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key,))
            other.execute(
                sql.SQL("UPDATE {}.node_states_version SET version = version + 1").format(
                    sql.Identifier(schema_of(url))
                )
            )
            thread, errors = in_thread(source)
            thread.join(timeout=0.5)
            assert thread.is_alive(), "the commit did not wait for the switch in flight"
            other.commit()
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], ConcurrencyConflict)
        assert (errors[0].expected_version, errors[0].actual_version) == (1, 2)
        assert not load(store, "O-1").holds  # nothing of it was written
    finally:
        store.close()


def test_capacity_taken_through_one_store_is_seen_and_checked_by_another(url: str) -> None:
    a, b = open_store(url), open_store(url)
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
        with b.unit_of_work() as uow:
            days = uow.capacity.for_day(DAY, ["WH-2", "WH-1"])
        assert [(d.node_id, d.taken) for d in days] == [("WH-1", {"K-1": 1, "K-3": 1}), ("WH-2", {})]
    finally:
        a.close()
        b.close()


def test_a_commit_failing_on_node_capacity_writes_nothing(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_store(url)
    try:
        admin.execute(sql.SQL("DROP TABLE {}.node_capacity").format(sql.Identifier(schema_of(url))))
        with store.unit_of_work() as uow:
            uow.orders.add(make_order(order_id="O-1"))
            uow.inventory.save(StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=1))
            node_day = NodeDay.open("WH-1", DAY)  # staged without a read
            node_day.take("O-1/1", limit=None)
            uow.capacity.save(node_day)
            with pytest.raises(StoreUnavailable, match="node_capacity") as info:
                uow.commit()
        assert isinstance(info.value.__cause__, psycopg.errors.UndefinedTable)
        with store.unit_of_work() as uow:
            assert uow.orders.find(OrderId("O-1")) is None
            assert uow.inventory.get("WH-1", Sku("SKU-1")) is None
    finally:
        store.close()


@pytest.mark.parametrize("taken", ["[1]", '{"K": 0}', '{"": 1}', '{"K": "1"}'])
def test_an_unreadable_node_day_is_store_unavailable(store: PostgresStore, url: str, taken: str) -> None:
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as raw:
        raw.execute(
            sql.SQL(
                "INSERT INTO {}.node_capacity (day, node_id, version, taken)"
                " VALUES (%s, 'WH-1', 1, %s::jsonb)"
            ).format(sql.Identifier(schema_of(url))),
            (DAY, taken),
        )
    with store.unit_of_work() as uow:
        with pytest.raises(StoreUnavailable, match="capacity WH-1/2026-02-02 cannot be read"):
            uow.capacity.get("WH-1", DAY)
        with pytest.raises(StoreUnavailable, match="capacity WH-1/2026-02-02 cannot be read"):
            uow.capacity.for_day(DAY, ["WH-1"])


def _compresses_columns(admin: psycopg.Connection[tuple[object, ...]]) -> bool:
    """Whether the server has per-column compression (PostgreSQL 14 and later), lz4 or not."""
    row = admin.execute("SELECT current_setting('server_version_num')::int >= 140000").fetchone()
    return bool(row and row[0])


def _body_compression(admin: psycopg.Connection[tuple[object, ...]], schema: str) -> dict[str, str]:
    rows = admin.execute(
        "SELECT c.relname, a.attcompression FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND a.attname = 'body' AND c.relname = ANY(%s)",
        (schema, list(LZ4_TABLES)),
    ).fetchall()
    return {str(table): str(method) for table, method in rows}


def _a_long_order(store: PostgresStore, order_id: str) -> Order:
    """An order whose body outgrows TOAST's threshold (about 2 kB): many lines, a long history."""
    order = make_order(order_id=order_id, quantities=[1 + i % 4 for i in range(40)])
    for i in range(10):
        order.hold("credit", actor=ACTOR, at=AT, message=f"check {i} " + "x" * 100)
        order.release_hold("credit", actor=ACTOR, at=AT)
    add(store, order)
    return order


def test_order_and_event_bodies_are_compressed_with_lz4_where_the_server_has_it(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_store(url)
    try:
        has_lz4 = lz4_available(admin)
        _a_long_order(store, "O-LONG")
        assert load(store, "O-LONG").version == 22  # read back whole
    finally:
        store.close()
    schema = schema_of(url)
    if not _compresses_columns(admin):  # before 14: nothing to choose, the step changed nothing
        assert not has_lz4
        return
    assert _body_compression(admin, schema) == {t: "l" if has_lz4 else "" for t in LZ4_TABLES}
    method = admin.execute(
        sql.SQL("SELECT pg_column_compression(body) FROM {}.orders WHERE id = 'O-LONG'").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    assert method == (("lz4" if has_lz4 else "pglz"),)


def test_migrating_to_lz4_keeps_the_bodies_stored_before_readable(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    schema = sql.Identifier(schema_of(url))
    store = open_store(url)
    try:
        before = _a_long_order(store, "O-BEFORE")
    finally:
        store.close()
    for table in LZ4_TABLES if _compresses_columns(admin) else ():  # as version 11 left them: pglz
        admin.execute(
            sql.SQL("ALTER TABLE {}.{} ALTER COLUMN body SET COMPRESSION pglz").format(
                schema, sql.Identifier(table)
            )
        )
    admin.execute(sql.SQL("UPDATE {}.orders SET body = body || '{{}}'::jsonb").format(schema))  # pglz again
    admin.execute(sql.SQL("UPDATE {}.schema_version SET version = 11").format(schema))
    store = open_store(url, migrate=True)
    try:
        assert [version for version, _ in store.migration.steps] == [12]
        assert load(store, "O-BEFORE").history == before.history
        _a_long_order(store, "O-AFTER")
        assert load(store, "O-AFTER").version == 22
    finally:
        store.close()
    if lz4_available(admin):
        assert set(_body_compression(admin, schema_of(url)).values()) == {"l"}
        rows = admin.execute(
            sql.SQL("SELECT id, pg_column_compression(body) FROM {}.orders ORDER BY id").format(schema)
        ).fetchall()
        assert rows == [("O-AFTER", "lz4"), ("O-BEFORE", "pglz")]
