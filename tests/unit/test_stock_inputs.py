"""Stock positions given what they cannot use: a lapsed reservation to release, a ledger that is not one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ordercore.errors import InvalidValue, ReservationConflict
from ordercore.inventory import EntryKind, StockPosition
from ordercore.values import Sku

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EXPIRY = AT + timedelta(minutes=15)
LATER = AT + timedelta(hours=1)


def cart(quantity: int = 4) -> StockPosition:
    p = StockPosition.open("WH", Sku("MUG"), at=AT, on_hand=10)
    p.reserve("CART-1", quantity, reference="CART", at=AT, hard=False, expires_at=EXPIRY)
    return p


@pytest.mark.parametrize("quantity", [None, 1, 4])
def test_releasing_a_lapsed_cart_returns_nothing_and_records_the_lapse(quantity: int | None) -> None:
    p = cart()
    with pytest.raises(ReservationConflict):
        p.consume("CART-1", 1, at=LATER, reason="ship")  # as consume sees it: lapsed, holding nothing
    assert p.release("CART-1", quantity, at=LATER, reason="cart emptied") == 0
    assert p.available(LATER) == 10 and "CART-1" not in p.reservations
    entries = p.new_entries()
    assert [e.kind for e in entries] == [EntryKind.OPENED, EntryKind.RESERVED, EntryKind.EXPIRED]
    assert (entries[-1].quantity, entries[-1].compensates) == (4, entries[1].sequence)
    assert StockPosition.replay(entries) == p  # the ledger still rebuilds the position


def test_the_key_of_a_released_lapsed_cart_can_be_reserved_again() -> None:
    p = cart()
    p.release("CART-1", at=EXPIRY, reason="cart emptied")  # lapsed at its expiry exactly
    assert p.reserve("CART-1", 2, reference="CART", at=LATER).quantity == 2
    assert [e.kind for e in p.new_entries()][-2:] == [EntryKind.EXPIRED, EntryKind.RESERVED]


def test_a_live_cart_is_still_released_as_before() -> None:
    p = cart()
    assert p.release("CART-1", 1, at=AT + timedelta(minutes=5), reason="one fewer") == 1
    assert p.new_entries()[-1].kind is EntryKind.RELEASED and p.reservations["CART-1"].quantity == 3


@pytest.mark.parametrize("entries", [None, 5, object()])
def test_a_ledger_that_is_not_iterable_is_refused_naming_entries(entries: object) -> None:
    with pytest.raises(InvalidValue) as info:
        StockPosition.replay(entries)  # type: ignore[arg-type]
    assert info.value.field == "entries"
    stored = cart()
    stored.mark_persisted()
    before = (stored.version, dict(stored.reservations), stored.on_hand)
    with pytest.raises(InvalidValue) as info:
        stored.advanced(entries)  # type: ignore[arg-type]
    assert info.value.field == "entries"
    assert (stored.version, dict(stored.reservations), stored.on_hand) == before
