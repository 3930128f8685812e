"""The in-memory store against the shipped store contract."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordercore.errors import ConcurrencyConflict, OrderCoreError
from ordercore.inventory import StockPosition
from ordercore.ports import Store
from ordercore.testing.contracts import StoreContract
from ordercore.values import Sku
from ordercore_adapters.memory import MemoryStore


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        s = MemoryStore()
        yield s
        s.close()


# -- the index of soft reservations by expiry ---------------------------------------------------------------
AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))])
MINUTES = st.integers(1, 90)
KEYS = st.sampled_from(["K1", "K2", "K3"])
PLACES = st.sampled_from([("WH-1", "A"), ("WH-1", "B"), ("WH-2", "A")])
OPS = st.one_of(
    st.tuples(st.just("soft"), PLACES, KEYS, st.integers(1, 3), MINUTES, ZONES),
    st.tuples(st.just("hard"), PLACES, KEYS, st.integers(1, 3)),
    st.tuples(st.just("confirm"), PLACES, KEYS),
    st.tuples(st.just("release"), PLACES, KEYS, st.none() | st.just(1)),
    st.tuples(st.just("consume"), PLACES, KEYS),
    st.tuples(st.just("expire"), PLACES, MINUTES),
    st.tuples(st.just("stale"), PLACES, KEYS, MINUTES),
)


def _brute_force(store: MemoryStore, at: datetime) -> list[tuple[str, Sku]]:
    """What the index must give: every committed position holding a soft reservation lapsed by ``at``."""
    return sorted(
        (key for key, p in store.stock.items() if any(not r.live(at) for r in p.reservations.values())),
        key=lambda k: (k[0], k[1].value),
    )


def _apply(position: StockPosition, op: tuple[Any, ...]) -> None:
    kind, _, *args = op
    if kind == "soft":
        key, qty, minutes, zone = args
        position.reserve(
            key,
            qty,
            reference=key,
            at=AT,
            hard=False,
            expires_at=(AT + timedelta(minutes=minutes)).astimezone(zone),
        )
    elif kind == "hard":
        key, qty = args
        position.reserve(key, qty, reference=key, at=AT)
    elif kind == "confirm":
        position.confirm(args[0], at=AT)
    elif kind == "release":
        position.release(args[0], args[1], at=AT, reason="test")
    elif kind == "consume":
        position.consume(args[0], 1, at=AT, reason="test")
    elif kind == "expire":
        position.expire(AT + timedelta(minutes=args[0]))


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, max_size=25))
def test_the_lapsed_positions_are_those_a_scan_of_every_reservation_finds(ops: list[tuple[Any, ...]]) -> None:
    store = MemoryStore()
    with store.unit_of_work() as uow:
        for node_id, sku in [("WH-1", "A"), ("WH-1", "B"), ("WH-2", "A")]:
            uow.inventory.save(StockPosition.open(node_id, Sku(sku), at=AT - timedelta(days=1), on_hand=20))
        uow.commit()
    for op in ops:
        node_id, sku = op[1]
        with store.unit_of_work() as uow:
            position = uow.inventory.get(node_id, Sku(sku))
            assert position is not None
            try:
                if op[0] == "stale":  # a commit refused for a concurrent change leaves the index as it was
                    with store.unit_of_work() as other:
                        theirs = other.inventory.get(node_id, Sku(sku))
                        assert theirs is not None
                        theirs.adjust(theirs.on_hand + 1, at=AT, reason="count")
                        other.inventory.save(theirs)
                        other.commit()
                    _apply(position, ("soft", op[1], op[2], 1, op[3], UTC))
                else:
                    _apply(position, op)
                uow.inventory.save(position)
                uow.commit()
            except (OrderCoreError, ConcurrencyConflict):
                pass
        for minutes in (0, 1, 30, 45, 60, 91):
            moment = AT + timedelta(minutes=minutes)
            with store.unit_of_work() as uow:
                assert uow.lapsed_positions(moment, 10) == _brute_force(store, moment)
                assert uow.lapsed_positions(moment, 1) == _brute_force(store, moment)[:1]
    held = {
        (n, s.value, k)
        for (n, s), p in store.stock.items()
        for k, r in p.reservations.items()
        if r.expires_at
    }
    assert {(n, s, k) for _, n, s, k in store.expiries} == held  # nothing left behind, nothing missing
    assert len(store.expiries) == len(held)
