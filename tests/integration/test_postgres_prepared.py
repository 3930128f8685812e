"""PostgreSQL commits run prepared statements: each statement text is parsed and planned once per pooled
connection, not at every commit. What a connection has prepared survives failed commits, and a statement
gone from under the store (``DEALLOCATE``) is prepared again, the commit going through."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordercore import (
    AcceptOrder,
    ConcurrencyConflict,
    ManualClock,
    OrderId,
    OrderStatus,
    SequentialIds,
    bootstrap,
)
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from ordercore.service.commands import ReceiveStock, SourceOrder
from ordercore.values import GeoPoint
from ordercore_adapters.postgres import PostgresStore, open_store
from ordercore_adapters.postgres._unit_of_work import PostgresUnitOfWork, PreparedStatements, _Commit
from tests.integration._postgres import admin_connection
from tests.integration.test_postgres_store import admin, url
from tests.unit.factories import ACTOR, AT, BERLIN, make_order, place_command

__all__ = ["admin", "url"]  # fixtures from the PostgreSQL tests


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = open_store(url + "&pool_size=1")  # one connection: every unit of work gets the same session
    yield s
    s.close()


def prepared_names(store: PostgresStore) -> set[str]:
    with store.unit_of_work() as uow:
        assert isinstance(uow, PostgresUnitOfWork)
        with uow.db() as conn:
            rows = conn.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE 'ordercore%'")
            return {row[0] for row in rows.fetchall()}


HAMBURG = attrs.evolve(BERLIN, city="Hamburg", postal_code="20095", coordinates=GeoPoint(53.55, 9.99))


def network() -> list[FulfilmentNode]:
    cost = ShippingCost("EUR", per_shipment=Decimal(5), per_unit_km=Decimal("0.01"))
    return [FulfilmentNode("WH-1", NodeKind.WAREHOUSE, GeoPoint(52.52, 13.40), cost)]


def run_orders(store: PostgresStore, n: int, start: int = 1) -> None:
    app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds(), network=network())
    for i in range(start, start + n):
        oid = app.handle(place_command(order_id=f"O-{i}", shipping_address=HAMBURG)).order_id
        app.handle(AcceptOrder(order_id=oid))
        app.handle(SourceOrder(order_id=oid))
        assert app.get_order(oid).status is OrderStatus.ALLOCATED


def stock(store: PostgresStore) -> None:
    app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds())
    for sku in ("MUG", "TEA"):
        app.handle(ReceiveStock(node_id="WH-1", sku=sku, quantity=1_000, reason="opening stock"))


def test_each_statement_is_prepared_once_per_connection(store: PostgresStore) -> None:
    stock(store)
    run_orders(store, 3)
    after_three = prepared_names(store)
    assert after_three  # the commits ran prepared statements
    run_orders(store, 5, start=4)
    assert prepared_names(store) == after_three  # the same statements again: nothing prepared anew


def test_a_failed_commit_leaves_the_connection_usable_with_what_it_prepared(
    store: PostgresStore, url: str
) -> None:
    with store.unit_of_work() as uow:
        uow.orders.add(make_order(order_id="O-1"))
        uow.commit()
    other = open_store(url)
    try:
        # a stale update conflicts: its check fails after the statements were prepared
        with store.unit_of_work() as first:
            mine = first.orders.get(OrderId("O-1"))
            with other.unit_of_work() as second:
                theirs = second.orders.get(OrderId("O-1"))
                theirs.hold("LATE", actor=ACTOR, at=AT)
                second.orders.save(theirs)
                second.commit()
            mine.accept(actor=ACTOR, at=AT)
            first.orders.save(mine)
            with pytest.raises(ConcurrencyConflict):
                first.commit()
    finally:
        other.close()
    # the same statements commit on the same connection afterwards
    with store.unit_of_work() as uow:
        order = uow.orders.get(OrderId("O-1"))
        order.release_hold("LATE", actor=ACTOR, at=AT)
        uow.orders.save(order)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.orders.get(OrderId("O-1")).status is not OrderStatus.ON_HOLD


def test_statements_deallocated_behind_the_stores_back_are_prepared_again(store: PostgresStore) -> None:
    stock(store)
    run_orders(store, 2)
    with store.unit_of_work() as uow:
        assert isinstance(uow, PostgresUnitOfWork)
        with uow.db() as conn:
            conn.execute("DEALLOCATE ALL")
    run_orders(store, 2, start=3)  # commits go through, preparing what they need again
    assert prepared_names(store)


def test_a_statement_beyond_the_limit_or_with_too_many_values_runs_unprepared() -> None:
    statements = PreparedStatements(limit=2)
    first = statements.entry("UPDATE t SET a = %s WHERE b = %s", 2)
    assert first == ("ordercore_0", "UPDATE t SET a = $1 WHERE b = $2", "EXECUTE ordercore_0 (%s, %s)")
    assert statements.entry("UPDATE t SET a = %s WHERE b = %s", 2) == first  # the same name again
    assert statements.entry("DELETE FROM t WHERE a = %s", 1) == (
        "ordercore_1",
        "DELETE FROM t WHERE a = $1",
        "EXECUTE ordercore_1 (%s)",
    )
    assert PreparedStatements().entry("SELECT 1", 0) == ("ordercore_0", "SELECT 1", "EXECUTE ordercore_0")
    assert statements.entry("DELETE FROM u WHERE a = %s", 1) is None  # the limit is reached
    assert PreparedStatements().entry("INSERT INTO t VALUES " + ", ".join(["(%s)"] * 201), 201) is None
    assert PreparedStatements().entry("SELECT 1 WHERE 'a' LIKE '%%'", 0) is None  # a literal percent sign


def test_a_store_opened_with_prepare_false_prepares_nothing(url: str) -> None:
    store = open_store(url + "&pool_size=1&prepare=false")
    try:
        stock(store)
        run_orders(store, 7)  # more than psycopg's five uses before it prepares a repeated read
        with store.unit_of_work() as uow:
            assert isinstance(uow, PostgresUnitOfWork)
            with uow.db() as conn:
                assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
    finally:
        store.close()


# -- the values of a commit's text -----------------------------------------------------------------------------
_AWKWARD = [
    "",
    "it's",
    "''",
    "back\\slash",
    "\\'",
    "E'x'",
    "$$ dollar $$",
    "-- not a comment",
    "; SELECT 1",
    "line\nbreak\ttab\r",
    "émoji 🧾 ünïcode",
    '{"json": "with \\"quotes\\" and \\\\"}',
]


def _round_trip(admin: psycopg.Connection[tuple[object, ...]], values: list[object]) -> tuple[object, ...]:
    """``values`` written into a commit's text as the store writes them, run, and read back."""
    statements = PreparedStatements()
    commit = _Commit(psycopg.ClientCursor(admin), statements)
    commit.add("SELECT " + ", ".join(["%s::text"] * len(values)), values)
    cursor = admin.execute(commit.text(admin))  # its PREPARE, then its EXECUTE
    while cursor.description is None and cursor.nextset():
        pass
    row = cursor.fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("value", _AWKWARD)
def test_text_reaches_the_server_exactly_as_given(
    admin: psycopg.Connection[tuple[object, ...]], value: str
) -> None:
    assert _round_trip(admin, [value]) == (value,)


_VALUES = (
    st.text().filter(lambda t: "\x00" not in t)
    | st.integers()
    | st.booleans()
    | st.none()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.datetimes(
        min_value=datetime(1900, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-5, minutes=-30)), timezone(timedelta(seconds=3))]
        )
        | st.timezones(),
    )
)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(_VALUES, min_size=1, max_size=6))
def test_any_values_reach_the_server_as_psycopg_would_send_them(values: list[object]) -> None:
    conn = admin_connection()
    try:
        expected = conn.execute(
            "SELECT " + ", ".join(["%s::text"] * len(values)), values, prepare=False
        ).fetchone()
        assert _round_trip(conn, values) == expected
    finally:
        conn.close()


def test_text_with_a_nul_is_refused_as_psycopg_refuses_it(
    admin: psycopg.Connection[tuple[object, ...]],
) -> None:
    with pytest.raises(psycopg.DataError):
        _round_trip(admin, ["a\x00b"])


@pytest.mark.parametrize("setting", ["standard_conforming_strings = off", "client_encoding = 'LATIN1'"])
def test_a_session_set_otherwise_has_every_value_bound_by_psycopg(
    admin: psycopg.Connection[tuple[object, ...]], setting: str
) -> None:
    """Where backslashes escape in '...' doubling quotes is not exact, and the adapter writes values
    itself only for UTF-8 text: on a session set otherwise psycopg binds everything, and the values still
    arrive as given."""
    admin.execute(f"SET {setting}")
    try:
        assert not _Commit(psycopg.ClientCursor(admin), PreparedStatements())._plain
        values: list[object] = ["it's", "back\\slash", "\\'", "E'x'", "café", 7, None, True]
        assert _round_trip(admin, values) == tuple(
            None if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in values
        )
    finally:
        admin.execute("RESET ALL")
