"""Concurrent commits on PostgreSQL lock the rows they change in one order: no deadlock.

Orders of two SKUs at one node, their lines given in both orders, are sourced by several threads at once;
each commit updates both stock rows. Rows locked in the order the lines come in would deadlock (the server
aborts one transaction, the bus retries it); in (node, SKU) order they only wait for each other.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from decimal import Decimal

import attrs
import psycopg
import pytest
from psycopg import sql

from ordercore import (
    AcceptOrder,
    GeoPoint,
    ManualClock,
    NewLine,
    OrderStatus,
    ReceiveStock,
    SequentialIds,
    Sku,
    SourceOrder,
    bootstrap,
)
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from tests.integration.test_postgres_store import admin, schema_of, url
from tests.unit.factories import AT, BERLIN, eur, place_command

HOME = attrs.evolve(BERLIN, coordinates=GeoPoint(52.53, 13.38))

__all__ = ["admin", "url"]  # fixtures from the PostgreSQL tests

THREADS = 4
ORDERS_EACH = 25
NODE = FulfilmentNode(
    "BER", NodeKind.WAREHOUSE, GeoPoint(52.52, 13.40), ShippingCost("EUR", per_shipment=Decimal(5))
)


def test_concurrent_commits_touching_two_stock_rows_never_deadlock(
    url: str, admin: psycopg.Connection[tuple[object, ...]], caplog: pytest.LogCaptureFixture
) -> None:
    # four threads on the same two positions conflict often: retried until each goes through, so that
    # what is checked is how the rows are locked, not how often versions clash
    app = bootstrap(
        url,
        clock=ManualClock(AT, tick=timedelta(milliseconds=1)),
        ids=SequentialIds(),
        network=[NODE],
        conflict_retries=100,
    )
    for sku in ("A", "B"):
        app.handle(ReceiveStock(node_id="BER", sku=sku, quantity=10_000, reason="opening"))
    # each stock row update takes a few milliseconds: two commits that lock the rows in opposite orders
    # would then hold one each and wait for the other
    schema = sql.Identifier(schema_of(url))
    admin.execute(
        sql.SQL(
            "CREATE FUNCTION {}.slow_stock() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(0.005); RETURN NEW; END $$"
        ).format(schema)
    )
    admin.execute(
        sql.SQL(
            "CREATE TRIGGER slow_stock BEFORE UPDATE ON {}.stock FOR EACH ROW EXECUTE FUNCTION {}.slow_stock()"
        ).format(schema, schema)
    )
    start = threading.Barrier(THREADS)
    placed: list[str] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        skus = ("A", "B") if n % 2 else ("B", "A")
        try:
            start.wait()
            for _ in range(ORDERS_EACH):
                lines = [NewLine(Sku(s), 1, eur("1.00")) for s in skus]
                order_id = app.handle(place_command(lines=lines, shipping_address=HOME)).order_id
                app.handle(AcceptOrder(order_id=order_id))
                app.handle(SourceOrder(order_id=order_id))
                placed.append(str(order_id))
        except BaseException as e:
            errors.append(e)

    with caplog.at_level(logging.DEBUG, logger="ordercore"):
        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    try:
        assert errors == []
        assert len(placed) == THREADS * ORDERS_EACH
        deadlocks = [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage().lower()]
        assert deadlocks == []
        assert all(app.get_order(o).status is OrderStatus.ALLOCATED for o in placed)
        for sku in ("A", "B"):
            position = app.stock("BER", sku)
            assert position is not None and position.reserved(AT) == THREADS * ORDERS_EACH
    finally:
        app.close()
