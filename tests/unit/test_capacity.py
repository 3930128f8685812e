"""Shipment capacity per node and day (NodeDay): every method, every refusal, idempotency, and random
sequences of takes and give-backs that never go beyond the limit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ordercore
from ordercore.errors import (
    CapacityExhausted,
    InvalidQuantity,
    InvalidValue,
    OrderCoreError,
    ValidationFailed,
)
from ordercore.inventory import NodeDay

DAY = date(2026, 3, 2)


def day_with(*keys: str, limit: int | None = None) -> NodeDay:
    node_day = NodeDay.open("WH-1", DAY)
    for key in keys:
        assert node_day.take(key, limit=limit)
    return node_day


def snapshot(node_day: NodeDay) -> tuple[dict[str, int], int, int]:
    return dict(node_day.taken), node_day.version, node_day.persisted_version


# -- opening and building ---------------------------------------------------------------------------------
def test_open_gives_an_empty_day_not_stored_yet() -> None:
    node_day = NodeDay.open("WH-1", DAY)
    assert (node_day.node_id, node_day.day, node_day.taken) == ("WH-1", DAY, {})
    assert (node_day.used, node_day.version, node_day.persisted_version, node_day.changed) == (0, 0, 0, False)
    assert node_day == NodeDay("WH-1", DAY, {})


@pytest.mark.parametrize(
    ("node_id", "day", "fields"),
    [
        ("", DAY, ("node_id",)),
        (" WH-1", DAY, ("node_id",)),
        ("WH-1", datetime(2026, 3, 2, tzinfo=UTC), ("day",)),
        ("WH-1", "2026-03-02", ("day",)),
        (None, None, ("node_id", "day")),
    ],
)
def test_open_refuses_a_bad_node_or_day(node_id: Any, day: Any, fields: tuple[str, ...]) -> None:
    with pytest.raises(InvalidValue if len(fields) == 1 else ValidationFailed) as info:
        NodeDay.open(node_id, day)
    if isinstance(info.value, ValidationFailed):
        assert info.value.fields == fields
    else:
        assert isinstance(info.value, InvalidValue) and info.value.field == fields[0]


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"taken": [("K", 1)]}, ("taken",)),
        ({"taken": {"": 1}}, ("taken",)),
        ({"taken": {"K": 0}}, ("taken['K']",)),
        ({"taken": {"K": True}}, ("taken['K']",)),
        ({"version": -1}, ("version",)),
        ({"version": 1, "persisted_version": 2}, ("persisted_version",)),
        ({"node_id": "", "day": None, "taken": None}, ("node_id", "day", "taken")),
    ],
)
def test_building_a_day_checks_every_field(kwargs: dict[str, Any], fields: tuple[str, ...]) -> None:
    values: dict[str, Any] = {"node_id": "WH-1", "day": DAY, "taken": {}, **kwargs}
    with pytest.raises(ValidationFailed) as info:
        NodeDay(**values)
    assert info.value.fields == fields


def test_a_clone_is_independent_and_equality_ignores_the_stored_version() -> None:
    node_day = day_with("K-1")
    copy = node_day.clone()
    assert copy == node_day and copy is not node_day and copy.taken is not node_day.taken
    copy.take("K-2", limit=None)
    assert node_day.taken == {"K-1": 1} and copy.used == 2
    stored = node_day.clone()
    stored.mark_persisted()
    assert stored == node_day and (stored.persisted_version, node_day.persisted_version) == (1, 0)
    assert not stored.changed and node_day.changed


# -- reading ----------------------------------------------------------------------------------------------
def test_used_and_left() -> None:
    node_day = day_with("K-1")
    node_day.take("K-2", limit=None, shipments=3)
    assert node_day.used == 4
    assert node_day.left(None) is None
    assert (node_day.left(10), node_day.left(4), node_day.left(2), node_day.left(0)) == (6, 0, 0, 0)


@pytest.mark.parametrize("limit", [-1, True, 2.0, "3"])
def test_left_refuses_a_bad_limit(limit: Any) -> None:
    with pytest.raises(InvalidQuantity) as info:
        day_with("K-1").left(limit)
    assert info.value.field == "limit"


# -- taking -----------------------------------------------------------------------------------------------
def test_take_records_the_key_and_counts_a_change() -> None:
    node_day = NodeDay.open("WH-1", DAY)
    assert node_day.take("O-1/WH-1", limit=3)
    assert node_day.take("O-2/WH-1", limit=3, shipments=2)
    assert node_day.taken == {"O-1/WH-1": 1, "O-2/WH-1": 2}
    assert (node_day.used, node_day.version, node_day.changed) == (3, 2, True)
    assert node_day.left(3) == 0


def test_take_without_a_limit_never_refuses() -> None:
    node_day = NodeDay.open("WH-1", DAY)
    for k in range(50):
        node_day.take(f"K-{k}", limit=None, shipments=1000)
    assert node_day.used == 50_000


def test_taking_the_same_key_again_changes_nothing() -> None:
    node_day = day_with("K-1", limit=1)
    before = snapshot(node_day)
    assert not node_day.take("K-1", limit=1)
    assert not node_day.take("K-1", limit=0)  # a retry succeeds even once the day is full, or the limit cut
    assert snapshot(node_day) == before


def test_the_same_key_with_other_shipments_is_refused() -> None:
    node_day = day_with("K-1")
    before = snapshot(node_day)
    with pytest.raises(InvalidValue) as info:
        node_day.take("K-1", limit=None, shipments=2)
    assert (info.value.field, info.value.value) == ("shipments", 2)
    assert "give it back" in info.value.reason
    assert snapshot(node_day) == before


def test_taking_beyond_the_limit_is_capacity_exhausted_and_changes_nothing() -> None:
    node_day = day_with("K-1", "K-2", limit=3)
    before = snapshot(node_day)
    with pytest.raises(CapacityExhausted) as info:
        node_day.take("K-3", limit=3, shipments=2)
    e = info.value
    assert (e.node_id, e.day, e.limit, e.used, e.requested) == ("WH-1", DAY, 3, 2, 2)
    assert e.code == "capacity_exhausted" and isinstance(e, OrderCoreError)
    assert e.to_dict() == {
        "code": "capacity_exhausted",
        "message": "WH-1 has taken on 2 of 3 shipment(s) for 2026-03-02; 2 more requested",
        "node_id": "WH-1",
        "day": "2026-03-02",
        "limit": 3,
        "used": 2,
        "requested": 2,
    }
    assert snapshot(node_day) == before
    assert node_day.take("K-3", limit=3)  # one still fits


def test_a_limit_of_zero_refuses_everything() -> None:
    with pytest.raises(CapacityExhausted) as info:
        NodeDay.open("WH-1", DAY).take("K-1", limit=0)
    assert (info.value.limit, info.value.used, info.value.requested) == (0, 0, 1)


@pytest.mark.parametrize(
    ("key", "limit", "shipments", "field", "error"),
    [
        ("", None, 1, "key", InvalidValue),
        ("x" * 201, None, 1, "key", InvalidValue),
        (" K", None, 1, "key", InvalidValue),
        (7, None, 1, "key", InvalidValue),
        ("K", -1, 1, "limit", InvalidQuantity),
        ("K", True, 1, "limit", InvalidQuantity),
        ("K", "5", 1, "limit", InvalidQuantity),
        ("K", None, 0, "shipments", InvalidQuantity),
        ("K", None, -2, "shipments", InvalidQuantity),
        ("K", None, 1.0, "shipments", InvalidQuantity),
        ("K", None, True, "shipments", InvalidQuantity),
    ],
)
def test_take_refuses_bad_input_naming_the_field(
    key: Any, limit: Any, shipments: Any, field: str, error: type[InvalidValue]
) -> None:
    node_day = day_with("K-0")
    before = snapshot(node_day)
    with pytest.raises(error) as info:
        node_day.take(key, limit=limit, shipments=shipments)
    assert type(info.value) is error and info.value.field == field
    assert snapshot(node_day) == before


def test_take_reports_every_bad_input_at_once() -> None:
    node_day = day_with("K-0")
    with pytest.raises(ValidationFailed) as info:
        node_day.take("", limit=-1, shipments=0)
    assert info.value.fields == ("key", "limit", "shipments")
    assert snapshot(node_day) == ({"K-0": 1}, 1, 0)


def test_a_key_of_200_characters_is_fine() -> None:
    assert NodeDay.open("WH-1", DAY).take("k" * 200, limit=1)


# -- giving back ------------------------------------------------------------------------------------------
def test_give_back_removes_the_key_and_frees_its_shipments() -> None:
    node_day = day_with("K-1", limit=1)
    assert node_day.give_back("K-1")
    assert (node_day.taken, node_day.used, node_day.version) == ({}, 0, 2)
    assert node_day.take("K-2", limit=1)  # the freed shipment can be taken again
    assert node_day.version == 3


def test_giving_back_an_unknown_key_changes_nothing() -> None:
    node_day = day_with("K-1")
    before = snapshot(node_day)
    assert not node_day.give_back("K-2")
    assert node_day.give_back("K-1") and not node_day.give_back("K-1")
    assert node_day.version == before[1] + 1


@pytest.mark.parametrize("key", ["", "x" * 201, None, " K"])
def test_give_back_refuses_a_bad_key(key: Any) -> None:
    node_day = day_with("K-1")
    with pytest.raises(InvalidValue) as info:
        node_day.give_back(key)
    assert info.value.field == "key"
    assert snapshot(node_day) == ({"K-1": 1}, 1, 0)


def test_the_error_is_exported_and_named_in_the_error_list() -> None:
    assert ordercore.CapacityExhausted is CapacityExhausted
    assert "CapacityExhausted" in ordercore.__all__ and "CapacityExhausted" in ordercore.errors.__all__


# -- random sequences ---------------------------------------------------------------------------------------
_KEYS = st.sampled_from(["A", "B", "C", "D", "E", "F"])
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("take"), _KEYS, st.integers(1, 3)),
        st.tuples(st.just("give_back"), _KEYS, st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(limit=st.none() | st.integers(0, 8), steps=_STEPS)
def test_used_never_exceeds_the_limit_whatever_the_sequence(
    limit: int | None, steps: list[tuple[str, str, int]]
) -> None:
    node_day = NodeDay.open("WH-1", DAY)
    model: dict[str, int] = {}
    changes = 0
    for op, key, shipments in steps:
        before = snapshot(node_day)
        if op == "give_back":
            expected = key in model
            assert node_day.give_back(key) is expected
            model.pop(key, None)
        elif key in model:
            if model[key] == shipments:
                assert node_day.take(key, limit=limit, shipments=shipments) is False
            else:
                with pytest.raises(InvalidValue):
                    node_day.take(key, limit=limit, shipments=shipments)
            expected = False
        elif limit is not None and sum(model.values()) + shipments > limit:
            with pytest.raises(CapacityExhausted):
                node_day.take(key, limit=limit, shipments=shipments)
            expected = False
        else:
            assert node_day.take(key, limit=limit, shipments=shipments) is True
            model[key] = shipments
            expected = True
        changes += expected
        if not expected:
            assert snapshot(node_day) == before  # a refused or repeated call changes nothing
        assert node_day.taken == model and node_day.version == changes
        assert node_day.used == sum(model.values())
        if limit is not None:
            assert node_day.used <= limit and node_day.left(limit) == limit - node_day.used


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["take", "give_back"]), _KEYS, st.integers(0, 6)),
        max_size=40,
    )
)
def test_a_take_that_succeeds_stays_within_its_own_limit(steps: list[tuple[str, str, int]]) -> None:
    # the limit may change from call to call (a node's capacity edited during the day)
    node_day = NodeDay.open("WH-1", DAY)
    for op, key, limit in steps:
        if op == "give_back":
            node_day.give_back(key)
            continue
        try:
            if node_day.take(key, limit=limit):
                assert node_day.used <= limit
        except CapacityExhausted as e:
            assert e.used == node_day.used and e.used + e.requested > limit
