"""A position's open reservations: an immutable mapping whose changed copies share what did not change; and
its expected supply, an immutable mapping too."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordercore.errors import OrderCoreError
from ordercore.inventory import Reservation, ReservationKind, Reservations, StockPosition, Supplies, Supply
from ordercore.serialization import from_json, to_json
from ordercore.values import Sku
from tests.unit.factories import AT


def held(key: str, quantity: int = 1) -> Reservation:
    return Reservation(key, f"ref-{key}", quantity, ReservationKind.HARD, AT)


def bare(**maps: object) -> StockPosition:
    """A position built directly, with any plain mappings given for its reservations or supply."""
    return StockPosition("WH-1", Sku("SKU-1"), on_hand=5, safety_stock=0, backorderable=False, **maps)  # type: ignore[arg-type]


# a change: hold (key, units) or give up key
changes = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), st.integers(min_value=0, max_value=80), st.integers(1, 5)),
        st.tuples(st.just("drop"), st.integers(min_value=0, max_value=80), st.just(0)),
    ),
    max_size=400,
)


@given(start=st.integers(min_value=0, max_value=150), steps=changes)
def test_it_holds_what_a_dict_changed_the_same_way_holds(
    start: int, steps: list[tuple[str, int, int]]
) -> None:
    model = {f"K-{i}": held(f"K-{i}") for i in range(start)}
    now = Reservations(model)
    copies = [(now, dict(model))]
    for op, i, units in steps:
        key = f"K-{i}"
        if op == "hold":
            now, model[key] = now.with_(key, held(key, units)), held(key, units)
        elif key in model:
            now = now.without(key)
            del model[key]
        else:
            with pytest.raises(KeyError):
                now.without(key)
        copies.append((now, dict(model)))
    for copy, expected in [*copies[:: max(len(copies) // 20, 1)], copies[-1]]:
        # every copy still holds what it held when it was made: the later changes never reach it
        assert copy == expected and expected == copy
        assert len(copy) == len(expected)
        assert sorted(copy) == sorted(expected)
        assert dict(copy.items()) == expected and sorted(copy.values(), key=lambda r: r.key) == sorted(
            expected.values(), key=lambda r: r.key
        )
        for i in range(81):
            key = f"K-{i}"
            assert (key in copy) is (key in expected)
            assert copy.get(key) == expected.get(key)
            if key in expected:
                assert copy[key] == expected[key]
            else:
                with pytest.raises(KeyError):
                    copy[key]


def test_a_change_leaves_the_original_as_it_was() -> None:
    start = Reservations({"A": held("A")})
    changed = start.with_("B", held("B")).without("A")
    assert start == {"A": held("A")} and changed == {"B": held("B")}
    assert start != changed


def test_it_is_a_read_only_mapping() -> None:
    reservations = Reservations({"A": held("A")})
    with pytest.raises(TypeError):
        reservations["B"] = held("B")  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(reservations)
    assert pickle.loads(pickle.dumps(reservations)) == reservations
    assert repr(Reservations()) == "Reservations({})"


def test_a_position_takes_a_plain_dict_and_serializes_its_reservations_as_an_object() -> None:
    position = bare()
    position.reserve("K-1", 2, reference="O-1", at=AT)
    text = to_json(position)
    assert '"reservations": {"K-1": {' in text
    back = from_json(text, StockPosition)
    assert type(back.reservations) is Reservations and back == position
    given_dict = bare(reservations={"K-1": position.reservations["K-1"]})
    assert type(given_dict.reservations) is Reservations and given_dict.reservations == position.reservations


def test_a_clone_that_reserves_leaves_the_position_it_was_cloned_from_unchanged() -> None:
    position = StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=1_000)
    for i in range(300):
        position.reserve(f"K-{i}", 1, reference=f"O-{i}", at=AT)
    before = position.reservations.as_dict()
    copy = position.clone()
    copy.reserve("NEW", 3, reference="O-new", at=AT)
    copy.release("K-7", 1, at=AT, reason="cancelled")
    assert position.reservations == before and position.available(AT) == 700
    assert "NEW" in copy.reservations and "K-7" not in copy.reservations and copy.available(AT) == 698


# -- reserved units at a moment: kept by span, checked against a count from scratch ------------------------
def live_units(position: StockPosition, at: datetime) -> int:
    return sum(
        r.quantity for r in position.reservations.values() if r.expires_at is None or at < r.expires_at
    )


steps_in_time = st.lists(
    st.tuples(
        st.sampled_from(["soft", "hard", "confirm", "release", "consume", "read", "clone"]),
        st.integers(min_value=0, max_value=12),  # the key
        st.integers(min_value=-30, max_value=90),  # seconds the clock moves (back, sometimes)
        st.integers(min_value=1, max_value=120),  # a soft reservation's life, in seconds
    ),
    max_size=120,
)


@given(steps=steps_in_time)
def test_reserved_units_are_those_of_the_reservations_live_at_the_moment_asked(
    steps: list[tuple[str, int, int, int]],
) -> None:
    position = StockPosition.open("WH-1", Sku("SKU-1"), at=AT, on_hand=10_000)
    now = AT
    for op, k, moved, life in steps:
        now += timedelta(seconds=moved)
        key = f"K-{k}"
        held = position.reservations.get(key)
        try:
            if op == "soft":
                position.reserve(
                    key, k + 1, reference=key, at=now, hard=False, expires_at=now + timedelta(seconds=life)
                )
            elif op == "hard":
                position.reserve(key, k + 1, reference=key, at=now)
            elif op == "confirm" and held is not None:
                position.confirm(key, at=now)
            elif op == "release" and held is not None:
                position.release(key, 1, at=now, reason="")
            elif op == "consume" and held is not None:
                position.consume(key, 1, at=now, reason="")
            elif op == "clone":
                position = position.clone()
        except OrderCoreError:
            pass  # refused (a conflict, a lapsed reservation): nothing changed, which the next check sees
        for at in (now, now - timedelta(seconds=life), now + timedelta(seconds=life)):
            assert position.reserved(at) == live_units(position, at)


# -- the expected supply: an immutable mapping too -----------------------------------------------------------
def due(ref: str, quantity: int = 5) -> Supply:
    return Supply(ref, quantity, AT.date() + timedelta(days=3))


def test_supplies_are_a_read_only_mapping_whose_changes_are_copies() -> None:
    start = Supplies({"PO-1": due("PO-1")})
    changed = start.with_("PO-2", due("PO-2")).without("PO-1")
    assert start == {"PO-1": due("PO-1")} and changed == {"PO-2": due("PO-2")} and start != changed
    with pytest.raises(TypeError):
        start["PO-3"] = due("PO-3")  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(start)
    with pytest.raises(KeyError):
        start.without("PO-9")
    assert pickle.loads(pickle.dumps(start)) == start
    assert repr(Supplies()) == "Supplies({})"


def test_a_position_takes_a_plain_dict_of_supply_and_its_changes_replace_it() -> None:
    given_dict = bare(supply={"PO-1": due("PO-1")})
    assert type(given_dict.supply) is Supplies and given_dict.supply == {"PO-1": due("PO-1")}
    text = to_json(given_dict)
    assert '"supply": {"PO-1": {' in text
    back = from_json(text, StockPosition)
    assert type(back.supply) is Supplies and back == given_dict
    copy = back.clone()
    assert copy.supply is back.supply  # shared until either changes it
    copy.receive(2, at=AT, supply_ref="PO-1")
    assert copy.supply["PO-1"].quantity == 3 and back.supply["PO-1"].quantity == 5
    with pytest.raises(OrderCoreError):
        bare(supply={"PO-1": due("PO-2")})  # under another reference
