"""Hypothesis strategies for ordercore values, orders and commands (requires ``hypothesis``).

Use them in your own tests::

    from hypothesis import given
    from ordercore.testing.strategies import orders

    @given(orders())
    def test_my_projection(order): ...
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import strategies as st

from ordercore.lines import Adjustment, NewLine, TaxLine
from ordercore.money import CURRENCY_MINOR_UNITS, Money
from ordercore.order import Order
from ordercore.service.commands import PlaceOrder
from ordercore.values import (
    COUNTRY_CODES,
    Actor,
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    GeoPoint,
    LineId,
    OrderId,
    Sku,
)

__all__ = [
    "actors",
    "addresses",
    "aware_datetimes",
    "channels",
    "currencies",
    "customer_refs",
    "identifiers",
    "money",
    "new_lines",
    "order_ids",
    "orders",
    "place_order_commands",
    "skus",
]

_ID_HEAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_ID_TAIL = _ID_HEAD + "._:-/#"


def identifiers(max_size: int = 24) -> st.SearchStrategy[str]:
    """Strings valid as any ordercore identifier."""
    return st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(_ID_HEAD),
        st.text(alphabet=_ID_TAIL, max_size=max_size - 1),
    )


def order_ids() -> st.SearchStrategy[OrderId]:
    return identifiers().map(OrderId)


def skus() -> st.SearchStrategy[Sku]:
    return identifiers(16).map(Sku)


def channels() -> st.SearchStrategy[Channel]:
    return st.sampled_from(["web", "edi", "pos-1", "amazon-de", "b2b-portal"]).map(Channel)


def currencies() -> st.SearchStrategy[str]:
    """ISO 4217 codes, with currencies of 0, 2 and 3 minor digits all well represented."""
    common = st.sampled_from(["EUR", "USD", "JPY", "KWD", "GBP", "CLF"])
    return st.one_of(common, st.sampled_from(sorted(CURRENCY_MINOR_UNITS)))


def money(
    currency: str | None = None, *, min_minor: int = 0, max_minor: int = 10_000_000
) -> st.SearchStrategy[Money]:
    """Money between ``min_minor`` and ``max_minor`` minor units (cents)."""
    cur = st.just(currency) if currency else currencies()
    return st.builds(Money.from_minor, st.integers(min_minor, max_minor), cur)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """Timezone-aware datetimes with whole-minute offsets, between 2000 and 2100."""
    offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    return st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC) | offsets
    )


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
_required = _text.filter(lambda s: s.strip() != "")


def addresses() -> st.SearchStrategy[Address]:
    return st.builds(
        Address,
        country=st.sampled_from(sorted(COUNTRY_CODES)),
        postal_code=st.from_regex(r"[A-Z0-9][A-Z0-9 \-]{0,9}", fullmatch=True),
        city=_required,
        line1=_required,
        line2=_text,
        name=_text,
        coordinates=st.none()
        | st.builds(
            GeoPoint,
            st.floats(-90, 90, allow_nan=False),
            st.floats(-180, 180, allow_nan=False),
        ),
    )


def customer_refs() -> st.SearchStrategy[CustomerRef]:
    return st.builds(
        CustomerRef, identifiers().map(CustomerId), st.sampled_from(["", "retail", "b2b", "vip"])
    )


def actors() -> st.SearchStrategy[Actor]:
    return st.builds(Actor, st.sampled_from(["user", "system", "channel"]), identifiers(12))


@st.composite
def new_lines(draw: st.DrawFn, currency: str, *, max_quantity: int = 20) -> NewLine:
    """A line whose discount never exceeds its gross amount."""
    quantity = draw(st.integers(1, max_quantity))
    price = draw(money(currency, max_minor=100_000))
    gross = (price * quantity).minor
    discounts = []
    if gross and draw(st.booleans()):
        discounts.append(Adjustment("PROMO", Money.from_minor(draw(st.integers(0, gross)), currency)))
    taxes = []
    if draw(st.booleans()):
        rate = draw(st.sampled_from([Decimal("0.07"), Decimal("0.19"), Decimal("0.2")]))
        taxes.append(TaxLine("VAT", rate, Money.rounded(price.amount * quantity * rate, currency)))
    return NewLine(
        sku=draw(skus()),
        quantity=quantity,
        unit_price=price,
        discounts=discounts,
        taxes=taxes,
        description=draw(_text),
    )


@st.composite
def place_order_commands(draw: st.DrawFn, *, max_lines: int = 5) -> PlaceOrder:
    """A valid PlaceOrder command."""
    currency = draw(currencies())
    lines = draw(st.lists(new_lines(currency), min_size=1, max_size=max_lines))
    lines = [
        NewLine(
            sku=ln.sku,
            quantity=ln.quantity,
            unit_price=ln.unit_price,
            line_id=LineId(str(i + 1)),
            discounts=ln.discounts,
            taxes=ln.taxes,
            description=ln.description,
        )
        for i, ln in enumerate(lines)
    ]
    net = sum((ln.unit_price * ln.quantity).minor - sum(d.amount.minor for d in ln.discounts) for ln in lines)
    discounts = []
    if net and draw(st.booleans()):
        discounts.append(Adjustment("ORDER10", Money.from_minor(draw(st.integers(0, net)), currency)))
    shipping = draw(
        st.lists(st.builds(Adjustment, st.just("shipping"), money(currency, max_minor=5000)), max_size=1)
    )
    return PlaceOrder(
        channel=draw(channels()),
        customer=draw(customer_refs()),
        currency=currency,
        shipping_address=draw(addresses()),
        billing_address=draw(st.none() | addresses()),
        lines=lines,
        external_ref=draw(st.none() | identifiers()),
        discounts=discounts,
        shipping_charges=shipping,
        service_level=draw(st.sampled_from(["standard", "express", "freight"])),
        requested_delivery_date=draw(st.none() | st.dates(date(2020, 1, 1), date(2030, 12, 31))),
        attributes=draw(st.dictionaries(identifiers(8), _text, max_size=3)),
        actor=draw(actors()),
    )


@st.composite
def orders(draw: st.DrawFn, *, placed: bool = True, max_lines: int = 5) -> Order:
    """A new order, placed (or left as a draft)."""
    cmd = draw(place_order_commands(max_lines=max_lines))
    at = draw(aware_datetimes())
    order = Order.create(
        order_id=draw(order_ids()),
        channel=cmd.channel,
        customer=cmd.customer,
        currency=cmd.currency,
        shipping_address=cmd.shipping_address,
        billing_address=cmd.billing_address,
        lines=cmd.lines,
        external_ref=cmd.external_ref,
        discounts=cmd.discounts,
        shipping_charges=cmd.shipping_charges,
        service_level=cmd.service_level,
        requested_delivery_date=cmd.requested_delivery_date,
        attributes=cmd.attributes,
        actor=cmd.actor,
        at=at,
    )
    if placed:
        order.place(actor=cmd.actor, at=at + timedelta(seconds=1))
    return order
