"""Carts racing for the last units: soft reservations through ReserveStock, from many threads at once, on
every shipped store. Exactly as many carts get their units as the stock holds, the rest are told there
is not enough, and the position's reserved units are exactly those of the carts that got them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from ordercore import ConcurrencyConflict, InsufficientStock, ManualClock, OrderCore, SequentialIds, bootstrap
from ordercore.service.commands import ReceiveStock, ReserveStock
from tests.integration._every_store import store_url
from tests.integration.test_postgres_store import admin, url
from tests.unit.factories import AT

__all__ = ["admin", "store_url", "url"]  # fixtures: every store, and the PostgreSQL tests' schema

CARTS = 20
STOCK = 7
EACH = 2


@pytest.fixture
def app(store_url: str) -> Iterator[OrderCore]:
    found = bootstrap(store_url, clock=ManualClock(AT), ids=SequentialIds(), conflict_retries=200)
    found.handle(ReceiveStock(node_id="WH-1", sku="LAST", quantity=STOCK, reason="opening"))
    yield found
    found.close()


def test_carts_racing_for_the_last_units_never_hold_more_than_the_stock(app: OrderCore) -> None:
    start = threading.Barrier(CARTS)
    outcomes: dict[int, str] = {}

    def cart(n: int) -> None:
        start.wait()
        try:
            app.handle(
                ReserveStock(
                    node_id="WH-1",
                    sku="LAST",
                    key=f"cart-{n}",
                    quantity=EACH,
                    reference=f"cart {n}",
                    expires_at=AT + timedelta(minutes=30),
                )
            )
            outcomes[n] = "held"
        except InsufficientStock:
            outcomes[n] = "short"
        except ConcurrencyConflict:
            outcomes[n] = "gave up"

    threads = [threading.Thread(target=cart, args=(n,)) for n in range(CARTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    held = sorted(n for n, outcome in outcomes.items() if outcome == "held")
    assert len(outcomes) == CARTS and "gave up" not in outcomes.values()
    assert len(held) == STOCK // EACH
    position = app.stock("WH-1", "LAST")
    assert position is not None
    assert position.reserved(AT) == EACH * len(held) <= position.on_hand
    assert sorted(position.reservations) == sorted(f"cart-{n}" for n in held)
