"""PostgreSQL commits run prepared statements: each statement text is parsed and planned once per pooled
connection, not at every commit. What a connection has prepared survives failed commits, and a statement
gone from under the store (``DEALLOCATE``) is prepared again, the commit going through."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import attrs
import pytest

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
from ordercore_adapters.postgres._unit_of_work import PostgresUnitOfWork, PreparedStatements
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
