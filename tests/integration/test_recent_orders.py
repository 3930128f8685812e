"""A customer's recent orders from the stores: the duplicate-order rule reads them from the store's own read
model (no recent orders port given), digests are rewritten only when they change, and upgrading a schema 5
database (SQLite, PostgreSQL) to schema 6 fills them from the stored orders."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ordercore import (
    CancelOrder,
    CustomerId,
    CustomerRef,
    ManualClock,
    NewLine,
    OrderCore,
    OrderId,
    SequentialIds,
    Sku,
    bootstrap,
)
from ordercore.errors import StoreUnavailable
from ordercore.order import Order
from ordercore.ports import RecentOrders, Store
from ordercore.rules import load_rules
from ordercore_adapters.postgres import open_store as open_postgres
from ordercore_adapters.sqlite import open_store as open_sqlite
from tests.integration.test_postgres_store import admin, schema_of, url
from tests.unit.factories import ACTOR, AT, eur, make_order, place_command

__all__ = ["admin", "url"]  # fixtures from the PostgreSQL tests

RULES = """
name = "duplicates"
version = "1"

[[rules]]
id = "duplicates"
builtin = "duplicate_order"
params = { window = "24h" }
"""
H = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "memory"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[OrderCore, ManualClock]]:
    """An application with the duplicate-order rule and no recent orders port: the store answers."""
    store = f"sqlite:///{tmp_path / 'orders.db'}" if request.param == "sqlite" else "memory://"
    clock = ManualClock(AT)
    application = bootstrap(store, clock=clock, ids=SequentialIds(), rules=load_rules(RULES))
    yield application, clock
    application.close()


def _place(app: OrderCore, customer: str = "C-1", units: int = 2) -> str:
    order_id = app.handle(
        place_command(
            customer=CustomerRef(CustomerId(customer)), lines=[NewLine(Sku("MUG"), units, eur("9.99"))]
        )
    ).order_id
    assert order_id is not None
    return str(order_id)


def _held_as_duplicate(app: OrderCore) -> list[str]:
    return [str(h.order_id) for h in app.held_orders("possible_duplicate")]


def test_a_second_identical_order_is_held_as_a_possible_duplicate(app: tuple[OrderCore, ManualClock]) -> None:
    application, clock = app
    first = _place(application)
    assert _held_as_duplicate(application) == []
    clock.advance(H)
    second = _place(application)
    assert _held_as_duplicate(application) == [second]
    [hold] = application.get_order(second).holds
    assert hold.code == "possible_duplicate" and first in str(application.history(second))  # same_items_as
    # other items, another customer, or after the window: not a duplicate
    clock.advance(H)
    assert _place(application, units=3) not in _held_as_duplicate(application)
    assert _place(application, customer="C-2") not in _held_as_duplicate(application)
    clock.advance(30 * H)
    assert _place(application) not in _held_as_duplicate(application)


def test_a_cancelled_order_is_not_a_duplicate(app: tuple[OrderCore, ManualClock]) -> None:
    application, clock = app
    first = _place(application)
    application.handle(CancelOrder(order_id=first, reason="changed my mind"))
    clock.advance(H)
    assert _held_as_duplicate(application) == []
    _place(application)
    assert _held_as_duplicate(application) == []


def test_the_store_is_the_rules_recent_orders(tmp_path: Path) -> None:
    store = open_sqlite(f"sqlite:///{tmp_path / 'orders.db'}")
    try:
        with store.unit_of_work() as uow:
            assert isinstance(uow.orders, RecentOrders)
    finally:
        store.close()


# -- digests are written with their order, and only when they change -----------------------------------------
def test_a_digest_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    store = open_sqlite(f"sqlite:///{path}")
    try:
        with closing(sqlite3.connect(path)) as raw:  # count the writes to order_digests
            raw.executescript(
                """
                CREATE TABLE digest_writes (what TEXT);
                CREATE TRIGGER digest_inserted AFTER INSERT ON order_digests
                BEGIN INSERT INTO digest_writes VALUES ('insert'); END;
                CREATE TRIGGER digest_deleted AFTER DELETE ON order_digests
                BEGIN INSERT INTO digest_writes VALUES ('delete'); END;
                """
            )

        def writes() -> list[str]:
            with closing(sqlite3.connect(path)) as raw:
                return [w for (w,) in raw.execute("SELECT what FROM digest_writes ORDER BY rowid")]

        with store.unit_of_work() as uow:
            uow.orders.add(make_order(order_id="O-1"))
            uow.commit()
        assert writes() == ["insert"]
        for change in ("accept", "allocate", "hold"):  # neither its items nor its total change
            with store.unit_of_work() as uow:
                order = uow.orders.get(OrderId("O-1"))
                if change == "accept":
                    order.accept(actor=ACTOR, at=AT + H)
                elif change == "allocate":
                    order.allocate(actor=ACTOR, at=AT + 2 * H)
                else:
                    order.hold("credit", actor=ACTOR, at=AT + 3 * H)
                uow.orders.save(order)
                uow.commit()
        assert writes() == ["insert", "delete", "insert"]  # the hold rewrote the read models
        with store.unit_of_work() as uow:
            order = uow.orders.get(OrderId("O-1"))
            order.cancel(actor=ACTOR, at=AT + 4 * H, reason="no")
            uow.orders.save(order)
            uow.commit()
            assert uow.orders.placed_since(CustomerId("C-1"), AT) == []  # type: ignore[attr-defined]
        assert writes()[-1] == "delete"
    finally:
        store.close()


# -- upgrading schema 5 ------------------------------------------------------------------------------------
def _orders() -> list[Order]:
    live = make_order(order_id="O-1")
    cancelled = make_order(order_id="O-2")
    cancelled.cancel(actor=ACTOR, at=AT + H, reason="no")
    other = make_order(order_id="O-3", customer=CustomerRef(CustomerId("C-2")))
    draft = make_order(order_id="O-4", placed=False)
    return [live, cancelled, other, draft]


def _store_orders(store: Store) -> None:
    with store.unit_of_work() as uow:
        for order in _orders():
            uow.orders.add(order)
        uow.commit()


def _check_digests(store: Store) -> None:
    live, _, other, _ = _orders()
    with store.unit_of_work() as uow:
        recent = uow.orders
        assert isinstance(recent, RecentOrders)
        [digest] = recent.placed_since(CustomerId("C-1"), AT - H)
        assert (digest.order_id, digest.placed_at, digest.total) == (
            live.id,
            live.placed_at,
            live.totals().grand_total,
        )
        assert digest.items == frozenset((str(line.sku), line.qty.live) for line in live.lines)
        assert [d.order_id for d in recent.placed_since(CustomerId("C-2"), AT - H)] == [other.id]


def test_a_schema_5_sqlite_database_is_refused_then_upgraded_and_its_digests_filled(tmp_path: Path) -> None:
    url_ = f"sqlite:///{tmp_path / 'orders.db'}"
    store = open_sqlite(url_)
    try:
        _store_orders(store)
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:  # back to what schema 5 had
        raw.execute("DROP TABLE order_digests")
        raw.execute("PRAGMA user_version = 5")
        raw.commit()
    with pytest.raises(StoreUnavailable, match="schema version 5"):
        open_sqlite(url_)
    store = open_sqlite(url_, migrate=True)
    try:
        assert store.migration.steps[0] == (
            6,
            "recent orders: order_digests, each customer's placed orders, filled from every order",
        )
        _check_digests(store)
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 11
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT order_id FROM order_digests WHERE customer_id = 'C-1'"
            " AND placed_at >= '2026' ORDER BY placed_at DESC, order_id DESC"
        ).fetchall()
        assert any("order_digests_by_customer" in str(row) for row in plan)


def test_a_schema_5_postgres_schema_is_refused_then_upgraded_and_its_digests_filled(
    url: str, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    store = open_postgres(url)
    try:
        _store_orders(store)
    finally:
        store.close()
    schema = sql.Identifier(schema_of(url))
    admin.execute(sql.SQL("DROP TABLE {}.order_digests").format(schema))
    admin.execute(sql.SQL("UPDATE {}.schema_version SET version = 5").format(schema))
    with pytest.raises(StoreUnavailable, match="schema version 5"):
        open_postgres(url)
    store = open_postgres(url, migrate=True)
    try:
        _check_digests(store)
    finally:
        store.close()
    assert admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema)).fetchall() == [
        (12,)
    ]
