"""Fulfilment nodes: calendars and cut-offs, the shipping cost model, transit times, the network registry."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from dateutil.tz import gettz
from hypothesis import given
from hypothesis import strategies as st

from ordercore import GeoPoint, InvalidTimestamp, InvalidValue, UnknownNode, ValidationFailed
from ordercore.inventory import (
    Capability,
    FulfilmentNetwork,
    FulfilmentNode,
    NodeKind,
    ShippingCost,
    TransitTime,
    WorkingCalendar,
    Zone,
)

EUR = ShippingCost("EUR", per_shipment=Decimal(8), per_unit=Decimal("0.40"), per_unit_km=Decimal("0.01"))


def node(node_id: str = "W1", cost: ShippingCost = EUR, **kw: object) -> FulfilmentNode:
    return FulfilmentNode(node_id, NodeKind.WAREHOUSE, GeoPoint(52.5, 13.4), cost, **kw)  # type: ignore[arg-type]


# -- calendar -------------------------------------------------------------------------------------------------
BERLIN = WorkingCalendar(
    timezone="Europe/Berlin", cutoff=time(15, 0), holidays=frozenset({date(2026, 12, 25)})
)


@pytest.mark.parametrize(
    ("at", "dispatch"),
    [
        (
            datetime(2026, 11, 24, 13, 59, tzinfo=UTC),
            date(2026, 11, 24),
        ),  # 14:59 in Berlin: before the cut-off
        (datetime(2026, 11, 24, 14, 0, tzinfo=UTC), date(2026, 11, 25)),  # 15:00 in Berlin: tomorrow
        (datetime(2026, 11, 27, 16, 0, tzinfo=UTC), date(2026, 11, 30)),  # Friday after the cut-off: Monday
        (datetime(2026, 11, 28, 9, 0, tzinfo=UTC), date(2026, 11, 30)),  # Saturday: Monday
        (datetime(2026, 12, 24, 15, 0, tzinfo=UTC), date(2026, 12, 28)),  # Christmas holiday, then a weekend
        (datetime(2026, 11, 24, 23, 30, tzinfo=timezone(timedelta(hours=-5))), date(2026, 11, 25)),
    ],
)
def test_dispatch_date_follows_the_cutoff_the_workdays_and_the_holidays(at: datetime, dispatch: date) -> None:
    assert BERLIN.dispatch_date(at) == dispatch


def _dispatch_by_definition(calendar: WorkingCalendar, at: datetime) -> date:
    """Today in the calendar's zone before the cut-off on a working day, else the next working day."""
    local = at.astimezone(gettz(calendar.timezone))
    day = local.date()
    if calendar.is_working_day(day) and local.time() < calendar.cutoff:
        return day
    day += timedelta(days=1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


#: zones whose clocks jump at midnight (Santiago), by half an hour (Lord Howe), at 02:00 (New York), or never
_WINDOW_CALENDARS = [
    WorkingCalendar("America/Santiago", time(0, 30)),
    WorkingCalendar(
        "Australia/Lord_Howe", time(2, 15), frozenset({0, 2, 4, 6}), frozenset({date(2026, 10, 4)})
    ),
    WorkingCalendar("America/New_York", time(1, 30)),
    WorkingCalendar("Asia/Kathmandu", time(0, 0)),
    BERLIN,
]


@given(
    calendar=st.sampled_from(_WINDOW_CALENDARS),
    at=st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC))
    | st.sampled_from(
        [  # an hour before each zone's offset changes in 2026
            datetime(2026, 4, 5, 2, tzinfo=UTC),  # Santiago back
            datetime(2026, 9, 6, 3, 6, tzinfo=UTC),  # Santiago forward, at midnight
            datetime(2026, 4, 4, 14, tzinfo=UTC),  # Lord Howe back half an hour
            datetime(2026, 10, 3, 14, 30, tzinfo=UTC),  # Lord Howe forward
            datetime(2026, 3, 8, 6, tzinfo=UTC),  # New York forward
            datetime(2026, 11, 1, 5, tzinfo=UTC),  # New York back: 01:30 twice
        ]
    ),
    later=st.floats(min_value=0.0, max_value=1.0),
)
def test_the_dispatch_day_holds_throughout_the_window_the_calendar_gives(
    calendar: WorkingCalendar, at: datetime, later: float
) -> None:
    day, until = calendar.dispatch_window(at)
    assert day == calendar.dispatch_date(at) == _dispatch_by_definition(calendar, at)
    assert at < until <= at + timedelta(hours=1)
    moment = at + (until - at - timedelta(microseconds=1)) * later
    assert _dispatch_by_definition(calendar, moment) == day


def test_working_days_skip_weekends_and_holidays() -> None:
    assert BERLIN.working_days(date(2026, 12, 24), 3) == [
        date(2026, 12, 24),
        date(2026, 12, 28),
        date(2026, 12, 29),
    ]
    assert WorkingCalendar(workdays=frozenset({5})).working_days(date(2026, 11, 24), 2) == [
        date(2026, 11, 28),
        date(2026, 12, 5),
    ]


def test_a_bad_calendar_reports_every_problem() -> None:
    with pytest.raises(ValidationFailed) as info:
        WorkingCalendar(
            timezone="Mars/Olympus",
            cutoff="16:00",  # type: ignore[arg-type]
            workdays=frozenset({7}),
            holidays=frozenset({"2026-12-25"}),  # type: ignore[arg-type]
        )
    assert set(info.value.fields) == {"timezone", "cutoff", "workdays", "holidays"}
    with pytest.raises(InvalidTimestamp):
        BERLIN.dispatch_date(datetime(2026, 11, 24, 9, 0))  # naive


# -- cost and transit -------------------------------------------------------------------------------------------
def test_the_cost_of_a_shipment_is_exact_and_matches_its_float_rates() -> None:
    assert EUR.cost(3, 100.0) == Decimal("8") + 3 * (Decimal("0.40") + Decimal("0.01") * Decimal("100.0"))
    fixed, unit = EUR.rates(100.0)  # type: ignore[misc]
    assert fixed == 8.0 and unit == pytest.approx(1.40)


@given(units=st.integers(1, 50), km=st.floats(0, 3000, allow_nan=False))
def test_float_rates_agree_with_the_exact_cost(units: int, km: float) -> None:
    rates = EUR.rates(km)
    assert rates is not None
    assert float(EUR.cost(units, km)) == pytest.approx(rates[0] + units * rates[1], rel=1e-9, abs=1e-9)


def test_zones_add_charges_and_bound_the_range() -> None:
    zoned = ShippingCost(
        "EUR",
        per_shipment=Decimal(5),
        zones=(Zone(Decimal(100), Decimal(1)), Zone(Decimal(500), Decimal(4), Decimal("0.5"))),
    )
    assert zoned.cost(2, 50.0) == Decimal(6)
    assert zoned.cost(2, 300.0) == Decimal(10)
    assert zoned.rates(600.0) is None and not zoned.in_range(600.0)
    with pytest.raises(InvalidValue):
        zoned.cost(1, 600.0)
    with pytest.raises(ValidationFailed) as info:
        ShippingCost("EUR", per_shipment=Decimal(5), zones=(Zone(Decimal(500)), Zone(Decimal(100))))
    assert info.value.fields == ("zones",)


def test_a_bad_cost_model_reports_every_problem() -> None:
    with pytest.raises(ValidationFailed) as info:
        ShippingCost("XXX", per_shipment=Decimal(-1), per_unit=8, per_km=Decimal("NaN"))  # type: ignore[arg-type]
    assert set(info.value.fields) == {"currency", "per_shipment", "per_unit", "per_km"}


def test_transit_time_grows_with_distance() -> None:
    transit = TransitTime(base_days=1, km_per_day=500)
    assert [transit.days(km) for km in (0, 499, 500, 1200)] == [1, 1, 2, 3]
    for bad in ({"base_days": -1}, {"km_per_day": 0}, {"km_per_day": float("inf")}, {"base_days": True}):
        with pytest.raises(InvalidValue):
            TransitTime(**bad)  # type: ignore[arg-type]


# -- nodes and the network --------------------------------------------------------------------------------------
def test_a_bad_node_reports_every_problem() -> None:
    with pytest.raises(ValidationFailed) as info:
        FulfilmentNode(
            " W1",
            "warehouse",  # type: ignore[arg-type]
            (52.5, 13.4),  # type: ignore[arg-type]
            EUR,
            priority="high",  # type: ignore[arg-type]
            daily_capacity=-1,
        )
    assert set(info.value.fields) == {"node_id", "kind", "location", "priority", "daily_capacity"}


def test_capabilities_say_what_a_node_does() -> None:
    store = node("S1", capabilities={Capability.PICKUP})
    assert store.offers_pickup and not store.ships
    assert node("S2", capabilities=[Capability.SHIP_FROM_STORE]).ships


def test_the_network_knows_its_nodes_and_which_are_online() -> None:
    network = FulfilmentNetwork([node("W2"), node("W1")])
    assert [n.node_id for n in network.nodes] == ["W1", "W2"] and network.currency == "EUR"
    assert network.is_online("W1") and network.offline_ids == frozenset()
    assert network.set_online("W1", False) and not network.is_online("W1")
    assert network.offline_ids == {"W1"}
    assert not network.set_online("W1", False)  # no change
    assert network.set_online("W1", True) and network.is_online("W1")
    assert network.offline_ids == frozenset()
    with pytest.raises(UnknownNode):
        network.get("W9")
    with pytest.raises(InvalidValue):
        network.set_online("W1", "no")  # type: ignore[arg-type]


def test_a_network_refuses_duplicate_nodes_and_mixed_currencies() -> None:
    usd = ShippingCost("USD", per_shipment=Decimal(8))
    with pytest.raises(ValidationFailed) as info:
        FulfilmentNetwork([node("W1"), node("W1"), node("W2", cost=usd), "W3"])  # type: ignore[list-item]
    assert set(info.value.fields) == {"nodes[1].node_id", "nodes[3]", "nodes"}
