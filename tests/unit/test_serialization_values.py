"""Every public value and command round-trips through JSON exactly."""

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ordercore import (
    DEFAULT_LIFECYCLE,
    AcceptOrder,
    Adjustment,
    AllocateLines,
    CancelLines,
    ChangeLineQuantity,
    ChangeShippingAddress,
    Channel,
    CustomerId,
    GeoPoint,
    Hold,
    HoldOrder,
    LineId,
    LineQuantities,
    Money,
    OrderId,
    OrderTotals,
    RecordShipment,
    RejectOrder,
    Sku,
    StockLevel,
    TaxLine,
)
from ordercore.serialization import from_json, to_json
from ordercore.testing.strategies import actors, addresses, aware_datetimes, identifiers, money

codes = identifiers(12)


@st.composite
def line_quantities(draw: st.DrawFn) -> LineQuantities:
    buckets = draw(st.lists(st.integers(0, 50), min_size=8, max_size=8))
    return LineQuantities(sum(buckets), *buckets)


@st.composite
def totals(draw: st.DrawFn) -> OrderTotals:
    cur = draw(st.sampled_from(["EUR", "JPY", "KWD"]))
    parts = [draw(money(cur)) for _ in range(6)]
    return OrderTotals(*parts, grand_total=parts[0])


VALUES: st.SearchStrategy[Any] = st.one_of(
    identifiers().map(OrderId),
    identifiers().map(LineId),
    identifiers().map(CustomerId),
    identifiers().map(Channel),
    identifiers().map(Sku),
    st.builds(GeoPoint, st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False)),
    actors(),
    st.builds(Adjustment, codes, money("EUR")),
    st.builds(TaxLine, codes, st.decimals(0, 1, places=4), money("EUR")),
    st.builds(Hold, codes, st.text(max_size=20), actors(), aware_datetimes()),
    st.builds(
        StockLevel,
        node_id=codes,
        sku=identifiers().map(Sku),
        on_hand=st.integers(0, 1000),
        reserved=st.just(0),
        safety_stock=st.integers(0, 10),
        version=st.integers(1, 50),
    ),
    line_quantities(),
    totals(),
    st.sampled_from(sorted(DEFAULT_LIFECYCLE.states, key=str)),
    st.sampled_from(sorted(DEFAULT_LIFECYCLE.triggers, key=str)),
    addresses(),
)

ORDER_IDS = identifiers().map(OrderId)
LINE_MAPS = st.dictionaries(st.sampled_from(["1", "2", "3"]), st.integers(1, 9), min_size=1)
COMMANDS: st.SearchStrategy[Any] = st.one_of(
    st.builds(AcceptOrder, order_id=ORDER_IDS, actor=actors(), reason=st.text(max_size=20)),
    st.builds(RejectOrder, order_id=ORDER_IDS, code=codes, expected_version=st.none() | st.integers(1, 9)),
    st.builds(HoldOrder, order_id=ORDER_IDS, code=codes, message=st.text(max_size=20)),
    st.builds(CancelLines, order_id=ORDER_IDS, lines=LINE_MAPS),
    st.builds(
        ChangeLineQuantity, order_id=ORDER_IDS, line_id=identifiers().map(LineId), quantity=st.integers(1, 9)
    ),
    st.builds(ChangeShippingAddress, order_id=ORDER_IDS, address=addresses()),
    st.builds(AllocateLines, order_id=ORDER_IDS, lines=st.none() | LINE_MAPS),
    st.builds(
        RecordShipment, order_id=ORDER_IDS, shipment_id=codes, lines=st.none() | LINE_MAPS, carrier=codes
    ),
)


@settings(max_examples=200)
@given(VALUES)
def test_every_public_value_round_trips(value: Any) -> None:
    assert from_json(to_json(value), type(value)) == value


@settings(max_examples=100)
@given(COMMANDS)
def test_commands_round_trip(command: Any) -> None:
    assert from_json(to_json(command), type(command)) == command


def test_tax_rates_stay_decimal_strings() -> None:
    text = to_json(TaxLine("VAT", Decimal("0.19"), Money.of("1.90", "EUR")))
    assert '"rate": "0.19"' in text
