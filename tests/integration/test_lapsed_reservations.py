"""Carts nobody checked out are swept: ``OrderCore.expire_reservations`` finds the stock positions holding
soft reservations past their expiry, on every store, records their lapse (EXPIRED) and so takes them out
of the store, leaving hard reservations and live carts alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from ordercore import ManualClock, OrderCore, ReceiveStock, ReserveStock, SequentialIds, Sku, bootstrap
from ordercore.errors import InvalidValue
from ordercore.inventory import EntryKind
from ordercore.ports import LapsedReservations
from tests.integration._every_store import store_url
from tests.integration.test_postgres_store import admin, url
from tests.unit.factories import AT

__all__ = ["admin", "store_url", "url"]  # fixtures: every store, and the PostgreSQL tests' schema


@pytest.fixture
def app(store_url: str) -> Iterator[tuple[OrderCore, ManualClock]]:
    clock = ManualClock(AT)
    application = bootstrap(store_url, clock=clock, ids=SequentialIds())
    for node, sku in (("WH-1", "MUG"), ("WH-2", "MUG"), ("WH-1", "CUP")):
        application.handle(ReceiveStock(node_id=node, sku=sku, quantity=100, reason="opening stock"))
    yield application, clock
    application.close()


def cart(app: OrderCore, node: str, sku: str, key: str, expires_in: timedelta) -> None:
    app.handle(
        ReserveStock(node_id=node, sku=sku, key=key, quantity=2, reference=key, expires_at=AT + expires_in)
    )


def test_lapsed_carts_are_expired_position_by_position(
    app: tuple[OrderCore, ManualClock], store_url: str
) -> None:
    application, clock = app
    cart(application, "WH-1", "MUG", "CART-1", timedelta(minutes=10))
    cart(application, "WH-2", "MUG", "CART-2", timedelta(minutes=30))
    cart(application, "WH-1", "CUP", "CART-3", timedelta(minutes=10))
    application.handle(ReserveStock(node_id="WH-1", sku="MUG", key="O-1/1", quantity=1, reference="O-1"))
    assert application.expire_reservations() == 0  # nothing has lapsed yet

    clock.advance(timedelta(minutes=10))  # CART-1 and CART-3 lapse: their expiry is now
    assert application.expire_reservations(limit=1) == 1  # one position per call: WH-1/CUP comes first
    assert "CART-3" not in application.stock("WH-1", "CUP").reservations  # type: ignore[union-attr]
    assert application.expire_reservations(limit=1) == 1
    assert application.expire_reservations() == 0

    mug = application.stock("WH-1", "MUG")
    assert mug is not None and set(mug.reservations) == {"O-1/1"} and mug.available(clock.now()) == 99
    with application.store.unit_of_work() as uow:
        kinds = [e.kind for e in uow.inventory.ledger("WH-1", Sku("MUG"))]
    assert kinds[-2:] == [
        EntryKind.RESERVED,
        EntryKind.EXPIRED,
    ]  # the order's hard one, then the cart's lapse
    assert set(application.stock("WH-2", "MUG").reservations) == {"CART-2"}  # type: ignore[union-attr]
    if store_url != "memory://":  # what was committed is what the store holds, read anew
        reopened = bootstrap(store_url, clock=clock, ids=SequentialIds())
        try:
            assert set(reopened.stock("WH-1", "MUG").reservations) == {"O-1/1"}  # type: ignore[union-attr]
        finally:
            reopened.close()


def test_a_cart_lapses_at_its_expiry_to_the_microsecond(app: tuple[OrderCore, ManualClock]) -> None:
    # SQLite works out times to the millisecond: its store compares each candidate's expiry exactly
    application, clock = app
    cart(application, "WH-1", "MUG", "CART-1", timedelta(minutes=10, microseconds=400))
    clock.advance(timedelta(minutes=10))
    assert lapsed(application, clock) == []
    assert application.expire_reservations() == 0
    assert application.stock("WH-1", "MUG").reserved(clock.now()) == 2  # type: ignore[union-attr]
    clock.advance(timedelta(microseconds=400))
    assert lapsed(application, clock) == [("WH-1", Sku("MUG"))]
    assert application.expire_reservations() == 1
    assert lapsed(application, clock) == []


def lapsed(app: OrderCore, clock: ManualClock) -> list[tuple[str, Sku]]:
    """What the store's unit of work says holds lapsed carts now."""
    with app.store.unit_of_work() as uow:
        assert isinstance(uow, LapsedReservations)
        return uow.lapsed_positions(clock.now(), 10)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "10"])
def test_a_limit_that_is_not_a_positive_integer_is_refused(
    app: tuple[OrderCore, ManualClock], limit: object
) -> None:
    application, clock = app
    cart(application, "WH-1", "MUG", "CART-1", timedelta(minutes=1))
    clock.advance(timedelta(minutes=5))
    with pytest.raises(InvalidValue) as e:
        application.expire_reservations(limit=limit)  # type: ignore[arg-type]
    assert e.value.field == "limit"
    assert set(application.stock("WH-1", "MUG").reservations) == {"CART-1"}  # type: ignore[union-attr]
