"""Read models: the shared helpers, and upgrading a schema 4 database (SQLite, PostgreSQL) to schema 5, whose
step fills the read models from the stored orders."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql

from ordercore.lifecycle import OrderStatus
from ordercore.order import Order
from ordercore.ports import BackorderedLine, BackorderSummary, HeldOrder, OrderAge, OrderReports, Store
from ordercore.storage import status_since
from ordercore.values import LineId, OrderId, Sku
from ordercore_adapters.postgres import open_store as open_postgres
from ordercore_adapters.sqlite import open_store as open_sqlite
from tests.integration.test_postgres_store import admin, schema_of, url
from tests.unit.factories import ACTOR, AT, make_order

__all__ = ["admin", "url"]  # fixtures from the PostgreSQL tests

H = timedelta(hours=1)


def _orders() -> list[Order]:
    held = make_order(order_id="O-1", placed=False)
    held.place(actor=ACTOR, at=AT)
    held.hold("credit", actor=ACTOR, at=AT + H, message="over limit")
    held.hold("fraud", actor=ACTOR, at=AT + 2 * H)
    waiting = make_order(order_id="O-2", placed=False)
    waiting.place(actor=ACTOR, at=AT)
    waiting.accept(actor=ACTOR, at=AT + H)
    waiting.backorder({"1": 1}, actor=ACTOR, at=AT + 2 * H)
    return [held, waiting]


def _store_orders(store: Store) -> None:
    with store.unit_of_work() as uow:
        for order in _orders():
            uow.orders.add(order)
        uow.commit()


def _check_read_models(store: Store) -> None:
    waiting = _orders()[1]
    with store.unit_of_work() as uow:
        reports = uow.orders
        assert isinstance(reports, OrderReports)
        assert reports.orders_by_status(OrderStatus.ON_HOLD) == [
            OrderAge(OrderId("O-1"), OrderStatus.ON_HOLD, AT + H)
        ]
        assert reports.orders_by_status(waiting.status) == [
            OrderAge(OrderId("O-2"), waiting.status, status_since(waiting))
        ]
        assert reports.held_orders() == [
            HeldOrder(OrderId("O-1"), "credit", "over limit", AT + H),
            HeldOrder(OrderId("O-1"), "fraud", "", AT + 2 * H),
        ]
        assert reports.backorders_by_sku() == [
            BackorderSummary(Sku("SKU-1"), 1, 1, AT, (BackorderedLine(OrderId("O-2"), LineId("1"), 1, AT),))
        ]


def test_status_since_is_when_the_order_entered_its_status_not_its_last_change() -> None:
    held, waiting = _orders()
    assert (status_since(held), held.updated_at) == (AT + H, AT + 2 * H)
    entered = AT + H if waiting.status == OrderStatus.ACCEPTED else AT + 2 * H
    assert status_since(waiting) == entered
    assert status_since(Order.replay(held.history)) == status_since(held)


def test_a_schema_4_sqlite_database_is_upgraded_and_its_read_models_filled(tmp_path: Path) -> None:
    url_ = f"sqlite:///{tmp_path / 'orders.db'}"
    store = open_sqlite(url_)
    try:
        _store_orders(store)
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:  # back to what schema 4 had
        raw.execute("DROP TABLE order_digests")
        raw.execute("DROP TABLE order_holds")
        raw.execute("DROP TABLE order_backorders")
        raw.execute("DROP INDEX orders_by_status_since")
        raw.execute("ALTER TABLE orders DROP COLUMN status_since")
        raw.execute("PRAGMA user_version = 4")
        raw.commit()
    store = open_sqlite(url_, migrate=True)
    try:
        _check_read_models(store)
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 11
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM orders WHERE status = 'on_hold' ORDER BY status_since, id"
        ).fetchall()
        assert any("orders_by_status_since" in str(row) for row in plan)


def test_a_schema_4_postgres_schema_is_upgraded_and_its_read_models_filled(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_postgres(url)
    try:
        _store_orders(store)
    finally:
        store.close()
    schema = sql.Identifier(schema_of(url))
    for statement in (
        "DROP TABLE {}.order_digests",
        "DROP TABLE {}.order_holds",
        "DROP TABLE {}.order_backorders",
        "ALTER TABLE {}.orders DROP COLUMN status_since",
        "UPDATE {}.schema_version SET version = 4",
    ):
        admin.execute(sql.SQL(statement).format(schema))
    store = open_postgres(url, migrate=True)
    try:
        _check_read_models(store)
    finally:
        store.close()
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [
        (12,)
    ]
