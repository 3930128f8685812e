"""Stock positions and available-to-promise: every operation, every refusal, idempotency, soft expiry,
earliest dates, network ATP, replaying the ledger, and random operation sequences checked against the
invariants after every step."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, multiple, rule

from ordercore.errors import (
    InsufficientStock,
    InvalidQuantity,
    InvalidTimestamp,
    InvalidValue,
    NotFound,
    OrderCoreError,
    ReservationConflict,
    ValidationFailed,
)
from ordercore.inventory import (
    Availability,
    EntryKind,
    LedgerEntry,
    NetworkAvailability,
    Reservation,
    ReservationKind,
    StockPosition,
    Supply,
    SupplyKind,
    network_availability,
    network_available,
    network_earliest,
)
from ordercore.serialization import from_json, to_json
from ordercore.values import Sku

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TODAY = AT.date()
SKU = Sku("SKU-1")
LATER = AT + timedelta(minutes=15)


def position(on_hand: int = 10, **kwargs: object) -> StockPosition:
    return StockPosition.open("WH-1", SKU, at=AT, on_hand=on_hand, **kwargs)  # type: ignore[arg-type]


def state(p: StockPosition) -> tuple[str, list[LedgerEntry], int, int]:
    """Everything a refused operation must leave as it was."""
    return to_json(p), p.new_entries(), p.version, p.persisted_version


def refused(p: StockPosition, error: type[Exception], call: Callable[[], object]) -> Exception:
    """Run ``call``; it must raise ``error`` and leave ``p`` exactly as it was."""
    before = state(p)
    with pytest.raises(error) as info:
        call()
    assert state(p) == before
    return info.value


def kinds(p: StockPosition) -> list[EntryKind]:
    return [e.kind for e in p.new_entries()]


# -- opening ----------------------------------------------------------------------------------------------
def test_open_records_the_opening_and_its_safety_stock() -> None:
    p = position(10, safety_stock=2, backorderable=True, reason="go live")
    assert (p.node_id, p.sku, p.on_hand, p.safety_stock, p.backorderable) == ("WH-1", SKU, 10, 2, True)
    assert (p.version, p.persisted_version) == (2, 0)
    opened, safety = p.new_entries()
    assert (opened.kind, opened.quantity, opened.sequence, opened.backorderable) == (
        EntryKind.OPENED,
        10,
        1,
        True,
    )
    assert (safety.kind, safety.quantity, safety.sequence) == (EntryKind.SAFETY_STOCK_SET, 2, 2)
    assert opened.reason == safety.reason == "go live" and opened.at == AT
    assert p.available(AT) == 8 and p.reserved(AT) == 0 and p.shortfall(AT) == 0
    assert kinds(position(0)) == [EntryKind.OPENED]


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        ({"node_id": ""}, "node_id", InvalidValue),
        ({"node_id": " WH"}, "node_id", InvalidValue),
        ({"node_id": "x" * 65}, "node_id", InvalidValue),
        ({"sku": "SKU-1"}, "sku", InvalidValue),
        ({"at": datetime(2026, 3, 2)}, "at", InvalidTimestamp),
        ({"on_hand": -1}, "on_hand", InvalidQuantity),
        ({"safety_stock": 1.5}, "safety_stock", InvalidQuantity),
        ({"backorderable": "yes"}, "backorderable", InvalidValue),
        ({"reason": "x" * 1001}, "reason", InvalidValue),
    ],
)
def test_open_refuses_invalid_input_naming_the_field(
    kwargs: dict[str, object], field: str, error: type[InvalidValue]
) -> None:
    args: dict[str, object] = {"node_id": "WH-1", "sku": SKU, "at": AT, **kwargs}
    with pytest.raises(error) as info:
        StockPosition.open(**args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_open_reports_every_problem_at_once() -> None:
    with pytest.raises(ValidationFailed) as info:
        StockPosition.open("", "SKU-1", at=AT, on_hand=-1)  # type: ignore[arg-type]
    assert set(info.value.fields) == {"node_id", "sku", "on_hand"}


def test_a_position_built_directly_is_checked() -> None:
    with pytest.raises(ValidationFailed) as info:
        StockPosition("WH-1", SKU, on_hand=-1, safety_stock=0, backorderable=False, reservations={"a": 1})  # type: ignore[dict-item]
    assert set(info.value.fields) == {"on_hand", "reservations"}


# -- available-to-promise ---------------------------------------------------------------------------------
def test_available_is_on_hand_minus_safety_stock_minus_live_reservations() -> None:
    p = position(10, safety_stock=2)
    p.reserve("H", 3, reference="O-1", at=AT)
    p.reserve("S", 2, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    assert p.reserved(AT) == 5 and p.available(AT) == 3
    # the soft reservation stops counting when it lapses, even before it is expired in the ledger
    assert p.reserved(LATER - timedelta(seconds=1)) == 5
    assert p.reserved(LATER) == 3 and p.available(LATER) == 5
    assert p.availability(AT) == Availability("WH-1", SKU, AT, 10, 2, 5, 3, 0, False, ())


def test_available_never_drops_below_zero() -> None:
    p = position(2, safety_stock=5)
    assert p.available(AT) == 0
    assert p.availability(AT).net == -3


@pytest.mark.parametrize("method", ["available", "reserved", "shortfall", "expire", "availability"])
def test_reading_at_a_naive_time_is_refused(method: str) -> None:
    with pytest.raises(InvalidTimestamp):
        getattr(position(), method)(datetime(2026, 3, 2))


# -- reserving --------------------------------------------------------------------------------------------
def test_a_hard_reservation_holds_units_for_an_order() -> None:
    p = position(10)
    r = p.reserve("O-1/1", 4, reference="O-1", at=AT, reason="order placed")
    assert r == Reservation("O-1/1", "O-1", 4, ReservationKind.HARD, AT)
    assert r.hard and r.live(AT + timedelta(days=365)) and r.sequence == 2
    assert p.reservations == {"O-1/1": r} and p.reservation("O-1/1") is r
    entry = p.new_entries()[-1]
    assert (entry.kind, entry.key, entry.reference, entry.quantity, entry.expires_at) == (
        EntryKind.RESERVED,
        "O-1/1",
        "O-1",
        4,
        None,
    )
    assert entry.reason == "order placed" and p.version == 2 and p.available(AT) == 6


def test_a_soft_reservation_lapses_at_its_expiry() -> None:
    p = position(10)
    r = p.reserve("CART-1", 3, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    assert r.kind is ReservationKind.SOFT and not r.hard
    assert r.live(LATER - timedelta(microseconds=1)) and not r.live(LATER)
    assert p.new_entries()[-1].expires_at == LATER


def test_reserving_again_with_the_same_key_is_idempotent() -> None:
    p = position(10)
    first = p.reserve("K", 4, reference="O-1", at=AT)
    before = state(p)
    assert p.reserve("K", 4, reference="O-1", at=AT + timedelta(hours=1), reason="retry") is first
    assert state(p) == before
    soft = p.reserve("C", 1, reference="CART", at=AT, hard=False, expires_at=LATER)
    # a retry computes a new expiry: it is ignored, the first one counts
    assert (
        p.reserve("C", 1, reference="CART", at=AT, hard=False, expires_at=LATER + timedelta(hours=1)) is soft
    )
    assert p.reservations["C"].expires_at == LATER


@pytest.mark.parametrize(
    "change",
    [{"quantity": 5}, {"reference": "O-2"}, {"hard": False, "expires_at": LATER}],
    ids=["quantity", "reference", "kind"],
)
def test_the_same_key_for_another_reservation_conflicts(change: dict[str, object]) -> None:
    p = position(10)
    p.reserve("K", 4, reference="O-1", at=AT)
    args: dict[str, object] = {"quantity": 4, "reference": "O-1", "at": AT, **change}
    e = refused(p, ReservationConflict, lambda: p.reserve("K", **args))  # type: ignore[arg-type]
    assert isinstance(e, ReservationConflict) and e.key == "K" and e.code == "reservation_conflict"


def test_reserving_more_than_available_is_refused() -> None:
    p = position(10, safety_stock=2)
    p.reserve("K-1", 5, reference="O-1", at=AT)
    e = refused(p, InsufficientStock, lambda: p.reserve("K-2", 4, reference="O-2", at=AT))
    assert isinstance(e, InsufficientStock)
    assert (e.requested, e.available, e.node_id, e.sku) == (4, 3, "WH-1", SKU)
    p.reserve("K-2", 3, reference="O-2", at=AT)
    assert p.available(AT) == 0


def test_a_backorderable_sku_may_be_reserved_beyond_stock() -> None:
    p = position(2, backorderable=True)
    p.reserve("K", 5, reference="O-1", at=AT)
    assert (p.reserved(AT), p.available(AT), p.shortfall(AT), p.on_hand) == (5, 0, 3, 2)


def test_a_lapsed_soft_reservation_frees_its_key() -> None:
    p = position(4)
    p.reserve("CART-1", 3, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    # after the expiry, the key is reserved anew: the lapsed reservation expires first
    r = p.reserve(
        "CART-1", 4, reference="CART-1", at=LATER, hard=False, expires_at=LATER + timedelta(minutes=15)
    )
    assert r.quantity == 4 and r.created_at == LATER
    expired, reserved = p.new_entries()[-2:]
    assert (expired.kind, expired.compensates, expired.quantity) == (EntryKind.EXPIRED, 2, 3)
    assert (reserved.kind, reserved.sequence, r.sequence) == (EntryKind.RESERVED, 4, 4)


def test_a_lapsed_key_reserved_beyond_stock_records_nothing() -> None:
    p = position(4)
    p.reserve("CART-1", 3, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    refused(p, InsufficientStock, lambda: p.reserve("CART-1", 5, reference="CART-1", at=LATER))


@pytest.mark.parametrize(
    ("kwargs", "field", "error"),
    [
        ({"key": ""}, "key", InvalidValue),
        ({"key": " K"}, "key", InvalidValue),
        ({"key": "K" * 201}, "key", InvalidValue),
        ({"key": 7}, "key", InvalidValue),
        ({"quantity": 0}, "quantity", InvalidQuantity),
        ({"quantity": -1}, "quantity", InvalidQuantity),
        ({"quantity": 1.0}, "quantity", InvalidQuantity),
        ({"quantity": True}, "quantity", InvalidQuantity),
        ({"reference": ""}, "reference", InvalidValue),
        ({"at": datetime(2026, 3, 2)}, "at", InvalidTimestamp),
        ({"hard": 1}, "hard", InvalidValue),
        ({"expires_at": LATER}, "expires_at", InvalidValue),
        ({"hard": False}, "expires_at", InvalidTimestamp),
        ({"hard": False, "expires_at": AT}, "expires_at", InvalidValue),
        ({"hard": False, "expires_at": datetime(2026, 3, 3)}, "expires_at", InvalidTimestamp),
        ({"reason": None}, "reason", InvalidValue),
    ],
)
def test_reserve_refuses_invalid_input_naming_the_field(
    kwargs: dict[str, object], field: str, error: type[InvalidValue]
) -> None:
    p = position(10)
    args: dict[str, object] = {"key": "K", "quantity": 1, "reference": "O-1", "at": AT, **kwargs}
    e = refused(p, error, lambda: p.reserve(**args))  # type: ignore[arg-type]
    assert isinstance(e, InvalidValue) and e.field == field


class _Text(str):
    """A ``str`` subclass: taken where a string is, checked in full."""


_KEYS = st.text(st.sampled_from("K1-/ \t\u00a0\u2003"), max_size=6) | st.sampled_from(
    ["K" * 200, "K" * 201, " ", "\u3000K", "K\u3000", _Text("K"), _Text(" K")]
)


@given(key=_KEYS, reference=_KEYS)
def test_a_key_or_reference_is_taken_exactly_when_it_is_valid(key: str, reference: str) -> None:
    """Every way a reservation comes to be (reserving, the ledger entry, the reservation itself) takes
    the keys the rules allow and refuses the rest, with or without the quick path for plain values."""

    def valid(value: str) -> bool:
        return 0 < len(value) <= 200 and value == value.strip()

    ok = valid(key) and valid(reference)
    p = position(10)
    makers: list[Callable[[], object]] = [
        lambda: p.reserve(key, 1, reference=reference, at=AT),
        lambda: LedgerEntry("WH-1", SKU, 2, EntryKind.RESERVED, 1, AT, key=key, reference=reference),
        lambda: Reservation(key, reference, 1, ReservationKind.HARD, AT, sequence=2),
    ]
    for make in makers:
        if ok:
            make()
        else:
            with pytest.raises((InvalidValue, ValidationFailed)):
                make()


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 3, 2, 10, 0, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    ],
)
def test_a_reservation_at_any_aware_time_is_taken(at: datetime) -> None:
    p = position(10)
    held = p.reserve("K", 2, reference="O-1", at=at)
    assert held.created_at == AT and p.available(AT) == 8


def test_a_ledger_entry_with_a_bad_node_or_reason_is_refused_however_plain_the_rest() -> None:
    for node_id in ("", " WH", "W" * 65, _Text(" WH")):
        with pytest.raises((InvalidValue, ValidationFailed)):
            LedgerEntry(node_id, SKU, 2, EntryKind.RESERVED, 1, AT, key="K", reference="O-1")
    with pytest.raises((InvalidValue, ValidationFailed)):
        LedgerEntry("WH-1", SKU, 2, EntryKind.RESERVED, 1, AT, "r" * 1001, key="K", reference="O-1")
    with pytest.raises((InvalidValue, ValidationFailed)):
        LedgerEntry("WH-1", "SKU-1", 2, EntryKind.RESERVED, 1, AT, key="K", reference="O-1")  # type: ignore[arg-type]
    with pytest.raises((InvalidValue, ValidationFailed)):
        Reservation("K", "O-1", 1, ReservationKind.HARD, AT, sequence=-1)


def test_reserve_reports_every_problem_at_once() -> None:
    p = position(10)
    e = refused(p, ValidationFailed, lambda: p.reserve("", 0, reference="", at=AT))
    assert isinstance(e, ValidationFailed) and e.fields == ("key", "quantity", "reference")


# -- confirming -------------------------------------------------------------------------------------------
def test_confirming_makes_a_soft_reservation_hard() -> None:
    p = position(10)
    p.reserve("C", 3, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    r = p.confirm("C", at=AT + timedelta(minutes=5), reason="checkout")
    assert r.kind is ReservationKind.HARD and r.expires_at is None and r.sequence == 2
    assert p.reserved(LATER + timedelta(days=1)) == 3
    entry = p.new_entries()[-1]
    assert (entry.kind, entry.key, entry.quantity, entry.reference) == (EntryKind.CONFIRMED, "C", 3, "CART-1")
    before = state(p)
    assert p.confirm("C", at=LATER) is r  # idempotent: a hard reservation is confirmed already
    assert state(p) == before


def test_confirming_an_unknown_or_lapsed_reservation_is_refused() -> None:
    p = position(10)
    p.reserve("C", 3, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    assert "no reservation 'X'" in str(refused(p, NotFound, lambda: p.confirm("X", at=AT)))
    e = refused(p, ReservationConflict, lambda: p.confirm("C", at=LATER))
    assert isinstance(e, ReservationConflict) and e.key == "C" and "expired" in str(e)
    p.expire(LATER)
    refused(p, NotFound, lambda: p.confirm("C", at=LATER))


# -- releasing --------------------------------------------------------------------------------------------
def test_releasing_gives_units_back_and_compensates_the_reservation() -> None:
    p = position(10)
    p.reserve("K", 5, reference="O-1", at=AT)
    assert p.release("K", 2, at=AT, reason="line cut") == 2
    assert p.reservations["K"].quantity == 3 and p.reservations["K"].sequence == 2 and p.available(AT) == 7
    assert p.release("K", at=AT, reason="order cancelled") == 3
    assert p.reservations == {} and p.available(AT) == 10
    partial, rest = p.new_entries()[-2:]
    assert (partial.kind, partial.quantity, partial.compensates, partial.reference) == (
        EntryKind.RELEASED,
        2,
        2,
        "O-1",
    )
    assert (rest.quantity, rest.compensates, rest.reason) == (3, 2, "order cancelled")


def test_releasing_an_unknown_or_released_key_releases_nothing() -> None:
    p = position(10)
    p.reserve("K", 5, reference="O-1", at=AT)
    p.release("K", at=AT, reason="cancelled")
    before = state(p)
    assert p.release("K", at=AT, reason="cancelled") == 0
    assert p.release("nope", 3, at=AT, reason="x") == 0
    assert state(p) == before


def test_releasing_more_than_held_is_refused() -> None:
    p = position(10)
    p.reserve("K", 2, reference="O-1", at=AT)
    e = refused(p, InvalidQuantity, lambda: p.release("K", 3, at=AT, reason="x"))
    assert isinstance(e, InvalidQuantity) and e.field == "quantity"
    refused(p, InvalidQuantity, lambda: p.release("K", 0, at=AT, reason="x"))
    refused(p, InvalidValue, lambda: p.release("K", at=AT, reason=None))  # type: ignore[arg-type]


def test_releasing_a_lapsed_soft_reservation_gives_back_nothing_and_records_its_expiry() -> None:
    p = position(10)
    p.reserve("C", 2, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    later = LATER + timedelta(hours=1)
    available = p.available(later)
    assert p.release("C", 1, at=later, reason="cart emptied") == 0  # the units were free already
    assert p.reservations == {} and p.available(later) == available == 10
    last = p.new_entries()[-1]
    assert (last.kind, last.key, last.quantity, last.compensates) == (EntryKind.EXPIRED, "C", 2, 2)
    assert StockPosition.replay(p.new_entries()) == p
    assert p.release("C", at=later, reason="again") == 0  # the key is free: nothing more is recorded
    assert p.new_entries()[-1] == last


# -- consuming --------------------------------------------------------------------------------------------
def test_consuming_ships_reserved_units() -> None:
    p = position(10)
    p.reserve("K", 5, reference="O-1", at=AT)
    p.consume("K", 2, at=AT, reason="shipment S-1")
    assert (p.on_hand, p.reserved(AT), p.available(AT)) == (8, 3, 5)
    p.consume("K", 3, at=AT, reason="shipment S-2")
    assert (p.on_hand, p.reservations, p.available(AT)) == (5, {}, 5)
    entry = p.new_entries()[-1]
    assert (entry.kind, entry.key, entry.quantity, entry.compensates) == (EntryKind.CONSUMED, "K", 3, None)


def test_consuming_is_refused_beyond_the_reservation_or_the_stock() -> None:
    p = position(2, backorderable=True)
    p.reserve("K", 5, reference="O-1", at=AT)
    p.reserve("C", 1, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    refused(p, NotFound, lambda: p.consume("X", 1, at=AT, reason="x"))
    e = refused(p, InvalidQuantity, lambda: p.consume("K", 6, at=AT, reason="x"))
    assert isinstance(e, InvalidQuantity) and e.field == "quantity"
    e = refused(p, InsufficientStock, lambda: p.consume("K", 3, at=AT, reason="x"))  # only 2 on hand
    assert isinstance(e, InsufficientStock) and (e.requested, e.available) == (3, 2)
    refused(p, ReservationConflict, lambda: p.consume("C", 1, at=LATER, reason="x"))
    refused(p, InvalidQuantity, lambda: p.consume("K", 0, at=AT, reason="x"))


# -- expiring ---------------------------------------------------------------------------------------------
def test_expire_records_every_lapsed_soft_reservation() -> None:
    p = position(10)
    p.reserve("B", 1, reference="CART-B", at=AT, hard=False, expires_at=LATER)
    p.reserve("A", 2, reference="CART-A", at=AT, hard=False, expires_at=LATER + timedelta(minutes=5))
    p.reserve("H", 3, reference="O-1", at=AT)
    p.reserve("Z", 1, reference="CART-Z", at=AT, hard=False, expires_at=AT + timedelta(minutes=5))
    assert p.expire(AT) == []
    assert p.expire(LATER + timedelta(minutes=5)) == ["Z", "B", "A"]
    assert set(p.reservations) == {"H"}
    entries = p.new_entries()[-3:]
    assert [(e.kind, e.key, e.compensates, e.quantity) for e in entries] == [
        (EntryKind.EXPIRED, "Z", 5, 1),
        (EntryKind.EXPIRED, "B", 2, 1),
        (EntryKind.EXPIRED, "A", 3, 2),
    ]
    before = state(p)
    assert p.expire(LATER + timedelta(days=1)) == []
    assert state(p) == before


# -- stock on hand ----------------------------------------------------------------------------------------
def test_receiving_adds_stock_and_draws_down_the_expected_supply() -> None:
    p = position(1)
    p.expect(Supply("PO-1", 10, date(2026, 3, 9)), at=AT)
    p.receive(4, at=AT, reason="dock 3", supply_ref="PO-1")
    assert p.on_hand == 5 and p.supply["PO-1"].quantity == 6 and p.supply["PO-1"].sequence == 2
    p.receive(7, at=AT, supply_ref="PO-1")  # more than expected: the supply is done
    assert p.on_hand == 12 and p.supply == {}
    p.receive(1, at=AT, supply_ref="PO-1")  # a receipt is a fact: recorded, nothing to draw down
    p.receive(2, at=AT)
    assert p.on_hand == 15
    assert [(e.kind, e.key, e.quantity) for e in p.new_entries()[-4:]] == [
        (EntryKind.RECEIVED, "PO-1", 4),
        (EntryKind.RECEIVED, "PO-1", 7),
        (EntryKind.RECEIVED, "PO-1", 1),
        (EntryKind.RECEIVED, "", 2),
    ]


def test_receiving_refuses_invalid_input() -> None:
    p = position(1)
    refused(p, InvalidQuantity, lambda: p.receive(0, at=AT))
    e = refused(p, InvalidValue, lambda: p.receive(1, at=AT, supply_ref=""))
    assert isinstance(e, InvalidValue) and e.field == "supply_ref"


def test_a_count_sets_on_hand_and_records_the_difference() -> None:
    p = position(10)
    p.adjust(7, at=AT, reason="cycle count")
    p.adjust(7, at=AT, reason="recount")  # a count that confirms the books is still a fact
    p.adjust(9, at=AT, reason="found two")
    assert p.on_hand == 9
    assert [(e.kind, e.quantity) for e in p.new_entries()[1:]] == [
        (EntryKind.ADJUSTED, -3),
        (EntryKind.ADJUSTED, 0),
        (EntryKind.ADJUSTED, 2),
    ]
    assert "-3" in p.new_entries()[1].describe()


def test_a_count_below_the_reservations_is_recorded_and_reported_as_shortfall() -> None:
    p = position(10)
    p.reserve("K", 8, reference="O-1", at=AT)
    p.adjust(5, at=AT, reason="damaged pallet")
    assert (p.on_hand, p.reserved(AT), p.available(AT), p.shortfall(AT)) == (5, 8, 0, 3)
    refused(p, InsufficientStock, lambda: p.reserve("K-2", 1, reference="O-2", at=AT))
    refused(p, InvalidQuantity, lambda: p.adjust(-1, at=AT, reason="x"))


def test_safety_stock_is_kept_back_and_setting_it_again_records_nothing() -> None:
    p = position(10)
    p.set_safety_stock(3, at=AT, reason="peak season")
    assert p.available(AT) == 7 and kinds(p)[-1] is EntryKind.SAFETY_STOCK_SET
    before = state(p)
    p.set_safety_stock(3, at=AT)
    assert state(p) == before
    refused(p, InvalidQuantity, lambda: p.set_safety_stock(-1, at=AT))


# -- supply -----------------------------------------------------------------------------------------------
def test_expected_supply_is_idempotent_by_reference() -> None:
    p = position(0)
    po = Supply("PO-1", 10, date(2026, 3, 9))
    p.expect(po, at=AT, reason="ERP")
    assert p.supply == {"PO-1": po} and p.supply["PO-1"].sequence == 2
    entry = p.new_entries()[-1]
    assert (entry.kind, entry.key, entry.quantity, entry.expected_on, entry.supply_kind) == (
        EntryKind.SUPPLY_EXPECTED,
        "PO-1",
        10,
        date(2026, 3, 9),
        SupplyKind.PURCHASE_ORDER,
    )
    before = state(p)
    p.expect(Supply("PO-1", 10, date(2026, 3, 9)), at=AT)
    assert state(p) == before
    e = refused(p, InvalidValue, lambda: p.expect(Supply("PO-1", 10, date(2026, 3, 10)), at=AT))
    assert isinstance(e, InvalidValue) and (e.code, e.field) == ("supply_conflict", "supply")
    e = refused(p, InvalidValue, lambda: p.expect("PO-2", at=AT))  # type: ignore[arg-type]
    assert isinstance(e, InvalidValue) and e.field == "supply"


def test_cancelled_supply_compensates_its_expectation() -> None:
    p = position(0)
    p.expect(Supply("PO-1", 10, date(2026, 3, 9)), at=AT)
    p.receive(4, at=AT, supply_ref="PO-1")
    p.cancel_supply("PO-1", at=AT, reason="vendor short")
    assert p.supply == {}
    entry = p.new_entries()[-1]
    assert (entry.kind, entry.key, entry.quantity, entry.compensates) == (
        EntryKind.SUPPLY_CANCELLED,
        "PO-1",
        6,
        2,
    )
    before = state(p)
    p.cancel_supply("PO-1", at=AT, reason="again")  # an unknown reference: nothing to cancel
    assert state(p) == before


def test_incoming_supply_is_summed_by_date() -> None:
    p = position(0)
    p.expect(Supply("TR-1", 3, date(2026, 3, 5), SupplyKind.TRANSFER), at=AT)
    p.expect(Supply("PO-2", 7, date(2026, 3, 9)), at=AT)
    p.expect(Supply("PO-1", 2, date(2026, 3, 5)), at=AT)
    assert p.incoming() == ((date(2026, 3, 5), 5), (date(2026, 3, 9), 7))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ref": ""}, "ref"),
        ({"quantity": 0}, "quantity"),
        ({"expected_on": datetime(2026, 3, 5, tzinfo=UTC)}, "expected_on"),
        ({"kind": "po"}, "kind"),
    ],
)
def test_invalid_supply_is_refused(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"ref": "PO-1", "quantity": 1, "expected_on": TODAY, **kwargs}
    with pytest.raises(ValidationFailed) as info:
        Supply(**args)  # type: ignore[arg-type]
    assert info.value.fields == (field,)


# -- the earliest date ------------------------------------------------------------------------------------
def test_earliest_is_today_when_available_then_follows_the_supply() -> None:
    p = position(5, safety_stock=1)
    p.expect(Supply("PO-2", 10, date(2026, 3, 20)), at=AT)
    p.expect(Supply("PO-1", 3, date(2026, 3, 9)), at=AT)
    assert p.earliest(4, AT) == TODAY
    assert p.earliest(5, AT) == date(2026, 3, 9)
    assert p.earliest(7, AT) == date(2026, 3, 9)
    assert p.earliest(17, AT) == date(2026, 3, 20)
    assert p.earliest(18, AT) is None


def test_supply_first_covers_a_shortfall() -> None:
    p = position(0, backorderable=True)
    p.reserve("K", 4, reference="O-1", at=AT)
    p.expect(Supply("PO-1", 5, date(2026, 3, 9)), at=AT)
    assert p.earliest(1, AT) == date(2026, 3, 9)
    assert p.earliest(2, AT) is None


def test_overdue_supply_counts_from_today_and_today_is_in_the_zone_of_at() -> None:
    p = position(0)
    p.expect(Supply("PO-1", 5, date(2026, 2, 20)), at=AT)
    assert p.earliest(5, AT) == TODAY
    tokyo = AT.astimezone(timezone(timedelta(hours=9))).replace(hour=8)
    assert position(1).earliest(1, tokyo) == tokyo.date() != tokyo.astimezone(UTC).date()


def test_earliest_refuses_invalid_input() -> None:
    with pytest.raises(InvalidQuantity):
        position().earliest(0, AT)
    with pytest.raises(InvalidTimestamp):
        position().earliest(1, datetime(2026, 3, 2))


# -- the network ------------------------------------------------------------------------------------------
def network() -> list[StockPosition]:
    north = StockPosition.open("WH-N", SKU, at=AT, on_hand=5, safety_stock=1)
    north.expect(Supply("PO-N", 4, date(2026, 3, 10)), at=AT)
    south = StockPosition.open("WH-S", SKU, at=AT, on_hand=1, backorderable=True)
    south.reserve("K", 3, reference="O-1", at=AT)  # 2 short
    south.expect(Supply("PO-S", 6, date(2026, 3, 6)), at=AT)
    other = StockPosition.open("WH-N", Sku("SKU-2"), at=AT, on_hand=50)
    return [south, other, north]


def test_network_available_sums_each_nodes_atp() -> None:
    assert network_available(network(), SKU, AT) == 4  # the south node's shortfall takes nothing from north
    assert network_available(network(), Sku("SKU-2"), AT) == 50
    assert network_available([], SKU, AT) == 0


def test_network_earliest_pools_stock_and_supply() -> None:
    positions = network()
    assert network_earliest(positions, SKU, 4, AT) == TODAY
    assert network_earliest(positions, SKU, 5, AT) == date(2026, 3, 6)  # south: 6 arrive, 2 of them owed
    assert network_earliest(positions, SKU, 8, AT) == date(2026, 3, 6)
    assert network_earliest(positions, SKU, 12, AT) == date(2026, 3, 10)
    assert network_earliest(positions, SKU, 13, AT) is None


def test_network_availability_summarises_every_node() -> None:
    view = network_availability(network(), SKU, AT)
    assert isinstance(view, NetworkAvailability)
    assert (view.available, [n.node_id for n in view.nodes]) == (4, ["WH-N", "WH-S"])
    assert view.incoming == ((date(2026, 3, 6), 6), (date(2026, 3, 10), 4))
    south = view.node("WH-S")
    assert south is not None and (south.available, south.shortfall, south.net) == (0, 2, -2)
    assert view.node("WH-X") is None
    assert view.earliest(12) == date(2026, 3, 10) and view.earliest(13) is None
    assert south.earliest(4) == date(2026, 3, 6)


def test_network_functions_refuse_bad_positions() -> None:
    positions = network()
    with pytest.raises(InvalidValue, match="twice") as info:
        network_available([*positions, positions[2].clone()], SKU, AT)
    assert info.value.field == "positions[3]"
    with pytest.raises(InvalidValue):
        network_available("WH-1", SKU, AT)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue) as info:
        network_available([object()], SKU, AT)  # type: ignore[list-item]
    assert info.value.field == "positions[0]"
    with pytest.raises(InvalidValue):
        network_available(network(), "SKU-1", AT)  # type: ignore[arg-type]
    with pytest.raises(InvalidQuantity):
        network_earliest(network(), SKU, 0, AT)


# -- the ledger -------------------------------------------------------------------------------------------
def busy_position() -> StockPosition:
    p = position(10, safety_stock=1)
    p.reserve("K-1", 3, reference="O-1", at=AT)
    p.reserve("C-1", 2, reference="CART-1", at=AT, hard=False, expires_at=LATER)
    p.reserve("C-2", 1, reference="CART-2", at=AT, hard=False, expires_at=LATER)
    p.confirm("C-1", at=AT)
    p.release("K-1", 1, at=AT, reason="line cut")
    p.consume("K-1", 2, at=AT, reason="shipped")
    p.expect(Supply("PO-1", 10, date(2026, 3, 9)), at=AT)
    p.expect(Supply("TR-1", 4, date(2026, 3, 4), SupplyKind.TRANSFER), at=AT)
    p.receive(3, at=AT, supply_ref="PO-1")
    p.cancel_supply("TR-1", at=AT, reason="truck cancelled")
    p.adjust(9, at=AT, reason="count")
    p.expire(LATER)
    return p


def test_replaying_the_ledger_rebuilds_the_position() -> None:
    p = busy_position()
    entries = p.new_entries()
    assert [e.sequence for e in entries] == list(range(1, p.version + 1))
    replayed = StockPosition.replay(entries)
    assert replayed == p
    assert {k: r.sequence for k, r in replayed.reservations.items()} == {"C-1": 4}
    assert replayed.new_entries() == entries and replayed.persisted_version == 0
    assert [from_json(to_json(e), LedgerEntry) for e in entries] == entries


def test_new_entries_are_those_not_yet_stored() -> None:
    p = busy_position()
    p.mark_persisted()
    assert p.new_entries() == [] and p.persisted_version == p.version
    p.receive(1, at=AT)
    assert [e.sequence for e in p.new_entries()] == [p.version]
    copy = p.clone()
    assert copy == p and copy.new_entries() == p.new_entries()
    copy.receive(1, at=AT)
    assert copy != p and len(p.new_entries()) == 1


@pytest.mark.parametrize("split", [1, 3, 7, 12])
def test_a_stored_position_advanced_by_the_entries_after_it_equals_the_replay_of_them_all(split: int) -> None:
    entries = busy_position().new_entries()
    earlier = StockPosition.replay(entries[:split])
    earlier.mark_persisted()
    before = earlier.clone()
    advanced = earlier.advanced(entries[split:])
    assert advanced == StockPosition.replay(entries)
    assert advanced.new_entries() == [] and advanced.persisted_version == advanced.version == len(entries)
    assert earlier == before and earlier.version == split  # the position itself is unchanged
    assert earlier.advanced([]) == earlier


def test_advancing_refuses_a_gap_another_position_an_inapplicable_entry_or_unstored_entries() -> None:
    entries = busy_position().new_entries()
    earlier = StockPosition.replay(entries[:3])
    with pytest.raises(InvalidValue, match="not yet stored"):
        earlier.advanced(entries[3:])  # it has entries of its own not stored yet
    earlier.mark_persisted()
    with pytest.raises(InvalidValue, match="expected entry 4") as info:
        earlier.advanced(entries[4:])
    assert info.value.field == "entries[0]"
    with pytest.raises(InvalidValue, match="expected entry 5") as info:
        earlier.advanced([entries[3], LedgerEntry("WH-2", SKU, 5, EntryKind.RECEIVED, 1, AT)])
    assert info.value.field == "entries[1]"
    release_unknown = LedgerEntry("WH-1", SKU, 4, EntryKind.RELEASED, 1, AT, key="nope", compensates=1)
    with pytest.raises(InvalidValue, match="cannot be applied"):
        earlier.advanced([release_unknown])
    assert earlier == StockPosition.replay(entries[:3])


def test_replay_refuses_a_broken_ledger() -> None:
    entries = busy_position().new_entries()
    with pytest.raises(InvalidValue) as info:
        StockPosition.replay([])
    assert info.value.field == "entries[0]"
    with pytest.raises(InvalidValue) as info:
        StockPosition.replay(entries[1:])
    assert info.value.field == "entries[0]"
    with pytest.raises(InvalidValue) as info:
        StockPosition.replay([entries[0], entries[2]])
    assert info.value.field == "entries[1]"
    other = StockPosition.open("WH-2", SKU, at=AT).new_entries()[0]
    with pytest.raises(InvalidValue) as info:
        StockPosition.replay([entries[0], LedgerEntry("WH-2", SKU, 2, EntryKind.RECEIVED, 1, AT), other])
    assert info.value.field == "entries[1]"
    release_unknown = LedgerEntry("WH-1", SKU, 2, EntryKind.RELEASED, 1, AT, key="nope", compensates=1)
    with pytest.raises(InvalidValue, match="cannot be applied") as info:
        StockPosition.replay([entries[0], release_unknown])
    assert info.value.field == "entries[1]"
    with pytest.raises(InvalidValue, match="cannot be applied"):
        StockPosition.replay([entries[0], LedgerEntry("WH-1", SKU, 2, EntryKind.ADJUSTED, -11, AT)])


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"kind": EntryKind.RELEASED, "key": "K"}, {"compensates"}),
        ({"kind": EntryKind.RELEASED, "key": "K", "compensates": 2}, {"compensates"}),
        ({"kind": EntryKind.RESERVED, "key": "K"}, {"reference"}),
        ({"kind": EntryKind.RESERVED, "reference": "O-1"}, {"key"}),
        ({"kind": EntryKind.RECEIVED, "quantity": 0}, {"quantity"}),
        ({"kind": EntryKind.RECEIVED, "compensates": 1}, {"compensates"}),
        ({"kind": EntryKind.RECEIVED, "expires_at": LATER}, {"expires_at"}),
        ({"kind": EntryKind.RECEIVED, "reference": "O-1"}, {"reference"}),
        ({"kind": EntryKind.RECEIVED, "backorderable": True}, {"backorderable"}),
        ({"kind": EntryKind.SUPPLY_EXPECTED, "key": "PO"}, {"expected_on", "supply_kind"}),
        ({"kind": EntryKind.RECEIVED, "expected_on": TODAY}, {"expected_on"}),
        ({"kind": "received"}, {"kind"}),
        ({"sequence": 0, "at": datetime(2026, 3, 2), "node_id": ""}, {"sequence", "at", "node_id"}),
    ],
)
def test_an_inconsistent_ledger_entry_is_refused(kwargs: dict[str, object], fields: set[str]) -> None:
    args: dict[str, object] = {
        "node_id": "WH-1",
        "sku": SKU,
        "sequence": 2,
        "kind": EntryKind.RECEIVED,
        "quantity": 1,
        "at": AT,
        **kwargs,
    }
    with pytest.raises(ValidationFailed) as info:
        LedgerEntry(**args)  # type: ignore[arg-type]
    assert set(info.value.fields) == fields


def test_an_adjustment_may_be_negative_and_entries_describe_themselves() -> None:
    entry = LedgerEntry("WH-1", SKU, 5, EntryKind.ADJUSTED, -2, AT, "count")
    assert entry.describe() == "2026-03-02T09:00:00+00:00  #5    adjusted         -2 - count"
    released = LedgerEntry("WH-1", SKU, 6, EntryKind.RELEASED, 1, AT, key="K", compensates=3, reference="O-1")
    assert "key=K for O-1 undoes #3" in released.describe()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"expires_at": LATER}, "expires_at"),
        ({"kind": ReservationKind.SOFT}, "expires_at"),
        ({"kind": ReservationKind.SOFT, "expires_at": AT}, "expires_at"),
        ({"quantity": 0}, "quantity"),
        ({"created_at": datetime(2026, 3, 2)}, "created_at"),
        ({"kind": "hard"}, "kind"),
    ],
)
def test_an_invalid_reservation_is_refused(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "key": "K",
        "reference": "O-1",
        "quantity": 1,
        "kind": ReservationKind.HARD,
        "created_at": AT,
        **kwargs,
    }
    with pytest.raises(ValidationFailed) as info:
        Reservation(**args)  # type: ignore[arg-type]
    assert field in info.value.fields


# -- random operations, checked after every step ----------------------------------------------------------
KEYS = st.sampled_from([f"k{n}" for n in range(1, 9)])
SUPPLY_REFS = st.sampled_from(["PO-1", "PO-2", "TR-1"])
UNITS = st.integers(-1, 8)
DELTAS = st.sampled_from([0, 0, 0, -1, 1, -2])


class StockMachine(RuleBasedStateMachine):
    """Drives one position through random operations. A refused operation must change nothing; after
    every step on hand and ATP are never negative, and replaying every entry rebuilds the position."""

    keys_held = Bundle("keys_held")

    def __init__(self) -> None:
        super().__init__()
        self.p = position()
        self.now = AT

    @initialize(on_hand=st.integers(0, 30), safety=st.integers(0, 5), backorderable=st.booleans())
    def open(self, on_hand: int, safety: int, backorderable: bool) -> None:
        self.p = StockPosition.open(
            "WH-1", SKU, at=self.now, on_hand=on_hand, safety_stock=safety, backorderable=backorderable
        )

    def attempt(self, call: Callable[[], object]) -> tuple[bool, object]:
        """``(True, result)``, or ``(False, None)`` when refused, which must change nothing."""
        before = state(self.p)
        try:
            return True, call()
        except OrderCoreError:
            assert state(self.p) == before
            return False, None

    @rule(
        target=keys_held,
        key=KEYS,
        quantity=UNITS,
        other=st.booleans(),
        soft=st.booleans(),
        minutes=st.integers(1, 60),
        retry=st.booleans(),
    )
    def reserve(self, key: str, quantity: int, other: bool, soft: bool, minutes: int, retry: bool) -> object:
        reference = "OTHER" if other else f"ref-{key}"
        held = self.p.reservations.get(key)
        if retry and held is not None:  # the same request again
            quantity, reference, soft = held.quantity, held.reference, not held.hard
        available = self.p.available(self.now)
        entries = len(self.p.new_entries())
        expires = self.now + timedelta(minutes=minutes) if soft else None
        ok, _ = self.attempt(
            lambda: self.p.reserve(
                key, quantity, reference=reference, at=self.now, hard=not soft, expires_at=expires
            )
        )
        if ok and len(self.p.new_entries()) > entries and not self.p.backorderable:
            assert quantity <= available  # nothing is promised beyond what was available
        if not ok and 1 <= quantity <= available:
            assert held is not None and held.live(self.now)  # only a key conflict refuses a possible reserve
        return key if ok else multiple()

    @rule(key=keys_held | KEYS)
    def confirm(self, key: str) -> None:
        self.attempt(lambda: self.p.confirm(key, at=self.now))

    def units_of(self, key: str, delta: int) -> int:
        """About as many units as ``key`` holds (``delta`` off), so that most draws are possible."""
        held = self.p.reservations.get(key)
        return (1 if held is None else held.quantity) + delta

    @rule(key=keys_held | KEYS, everything=st.booleans(), delta=DELTAS)
    def release(self, key: str, everything: bool, delta: int) -> None:
        held = self.p.reservations.get(key)
        quantity = None if everything else self.units_of(key, delta)
        ok, released = self.attempt(lambda: self.p.release(key, quantity, at=self.now, reason="test"))
        if ok:
            if held is None or not held.live(self.now):  # nothing held (a lapsed one is recorded EXPIRED)
                assert released == 0
            else:
                assert released == (held.quantity if quantity is None else quantity)

    @rule(key=keys_held, delta=DELTAS)
    def consume(self, key: str, delta: int) -> None:
        quantity = self.units_of(key, delta)
        on_hand, reserved = self.p.on_hand, self.p.reserved(self.now)
        ok, _ = self.attempt(lambda: self.p.consume(key, quantity, at=self.now, reason="shipped"))
        if ok:
            assert self.p.on_hand == on_hand - quantity
            assert self.p.reserved(self.now) == reserved - quantity

    @rule(quantity=UNITS, ref=st.none() | SUPPLY_REFS)
    def receive(self, quantity: int, ref: str | None) -> None:
        self.attempt(lambda: self.p.receive(quantity, at=self.now, supply_ref=ref))

    @rule(on_hand=st.integers(-1, 25))
    def adjust(self, on_hand: int) -> None:
        self.attempt(lambda: self.p.adjust(on_hand, at=self.now, reason="count"))
        if on_hand >= 0:
            assert self.p.on_hand == on_hand

    @rule(quantity=st.integers(-1, 6))
    def set_safety_stock(self, quantity: int) -> None:
        self.attempt(lambda: self.p.set_safety_stock(quantity, at=self.now))

    @rule(ref=SUPPLY_REFS, quantity=UNITS, days=st.integers(-3, 20))
    def expect(self, ref: str, quantity: int, days: int) -> None:
        self.attempt(
            lambda: self.p.expect(Supply(ref, quantity, self.now.date() + timedelta(days=days)), at=self.now)
        )

    @rule(ref=SUPPLY_REFS)
    def cancel_supply(self, ref: str) -> None:
        self.attempt(lambda: self.p.cancel_supply(ref, at=self.now, reason="cancelled"))

    @rule()
    def expire(self) -> None:
        keys = self.p.expire(self.now)
        assert all(k not in self.p.reservations for k in keys)
        assert all(r.live(self.now) for r in self.p.reservations.values())

    @rule(minutes=st.integers(0, 40))
    def wait(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(quantity=st.integers(1, 30))
    def earliest(self, quantity: int) -> None:
        day = self.p.earliest(quantity, self.now)
        if quantity <= self.p.available(self.now):
            assert day == self.now.date()
        elif day is not None:
            assert day >= self.now.date()

    @invariant()
    def stock_is_never_negative(self) -> None:
        assert self.p.on_hand >= 0
        assert self.p.available(self.now) >= 0
        assert self.p.safety_stock >= 0
        assert all(r.quantity >= 1 for r in self.p.reservations.values())

    @invariant()
    def reserved_units_are_those_of_the_live_reservations(self) -> None:
        # the position keeps its reserved units up to date as entries come (it does not add them up
        # again at each change): they must be what adding up its live reservations gives
        for at in (self.now, self.now + timedelta(hours=2), self.now + timedelta(days=30)):
            live = sum(r.quantity for r in self.p.reservations.values() if r.live(at))
            assert self.p.reserved(at) == live
            assert self.p.clone().reserved(at) == live

    @invariant()
    def the_ledger_rebuilds_the_position(self) -> None:
        entries = self.p.new_entries()
        assert [e.sequence for e in entries] == list(range(1, self.p.version + 1))
        assert StockPosition.replay(entries) == self.p
        assert from_json(to_json(self.p), StockPosition) == self.p


TestStockMachine = StockMachine.TestCase
TestStockMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_a_clone_and_its_original_never_see_each_others_changes() -> None:
    # clones share their dictionaries until one of them records an entry (copy on write)
    original = position(on_hand=10)
    original.reserve("R-1", 2, at=AT, reference="O-1")
    original.mark_persisted()
    copy = original.clone()
    assert copy == original and copy.reserved(AT) == original.reserved(AT) == 2
    copy.reserve("R-2", 3, at=AT, reference="O-2")
    assert set(original.reservations) == {"R-1"} and original.reserved(AT) == 2
    assert set(copy.reservations) == {"R-1", "R-2"} and copy.reserved(AT) == 5
    again = copy.clone()
    original.release("R-1", at=LATER, reason="cancelled")
    assert original.reserved(LATER) == 0 and copy.reserved(LATER) == again.reserved(LATER) == 5
    assert again.reservation("R-1") is not None and again.new_entries() == copy.new_entries()


_CLONE_OPS = st.lists(
    st.tuples(
        st.integers(0, 7),  # which member of the family acts (modulo its size)
        st.sampled_from(["reserve", "release", "expect", "receive", "cancel", "clone"]),
        st.integers(0, 3),  # a key or a supply reference
        st.integers(1, 4),  # units
    ),
    max_size=30,
)


def _act(p: StockPosition, op: str, n: int, units: int) -> None:
    try:
        if op == "reserve":
            p.reserve(f"R-{n}", units, reference=f"O-{n}", at=AT)
        elif op == "release":
            p.release(f"R-{n}", at=AT, reason="cancelled")
        elif op == "expect":
            p.expect(Supply(f"PO-{n}", units, TODAY + timedelta(days=n), SupplyKind.PURCHASE_ORDER), at=AT)
        elif op == "receive":
            p.receive(units, at=AT, supply_ref=f"PO-{n}")
        elif op == "cancel":
            p.cancel_supply(f"PO-{n}", at=AT, reason="late")
    except OrderCoreError:
        pass  # refused, and nothing changed


@settings(max_examples=200, deadline=None)
@given(ops=_CLONE_OPS)
def test_a_family_of_clones_changed_in_turn_each_holds_only_what_it_was_told(
    ops: list[tuple[int, str, int, int]],
) -> None:
    # each member's own history (its parent's up to the clone, then its own) applied to a position that
    # was never cloned gives the same position: no clone sees another's reservations or supply
    family = [position(on_hand=20)]
    histories: list[list[tuple[str, int, int]]] = [[]]
    for who, op, n, units in ops:
        i = who % len(family)
        if op == "clone":
            family.append(family[i].clone())
            histories.append(list(histories[i]))
            continue
        _act(family[i], op, n, units)
        histories[i].append((op, n, units))
    for member, history in zip(family, histories, strict=True):
        alone = position(on_hand=20)
        for op, n, units in history:
            _act(alone, op, n, units)
        assert member == alone
        assert member.supply == alone.supply and dict(member.reservations) == dict(alone.reservations)
