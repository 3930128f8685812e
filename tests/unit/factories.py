"""Small builders shared by the unit tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from ordercore import (
    DEFAULT_LIFECYCLE,
    Actor,
    Address,
    Adjustment,
    Channel,
    CustomerId,
    CustomerRef,
    Lifecycle,
    Money,
    NewLine,
    Order,
    OrderId,
    PlaceOrder,
    Sku,
    TaxLine,
)

AT = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)
ACTOR = Actor.system("test")
BERLIN = Address(country="DE", postal_code="10115", city="Berlin", line1="Invalidenstr. 1")
PARIS = Address(country="FR", postal_code="75001", city="Paris", line1="1 Rue de Rivoli")


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def lines(*quantities: int) -> list[NewLine]:
    """Lines of SKU-1, SKU-2... with the given quantities at 10.00 EUR each."""
    return [NewLine(Sku(f"SKU-{i + 1}"), q, eur("10.00")) for i, q in enumerate(quantities)]


def make_order(
    *,
    quantities: Sequence[int] = (2, 1),
    new_lines: Sequence[NewLine] | None = None,
    placed: bool = True,
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
    order_id: str = "O-1",
    **kwargs: object,
) -> Order:
    args: dict[str, object] = {
        "channel": Channel("web"),
        "customer": CustomerRef(CustomerId("C-1")),
        "currency": "EUR",
        "shipping_address": BERLIN,
    }
    args.update(kwargs)
    order = Order.create(
        order_id=OrderId(order_id),
        lines=list(new_lines) if new_lines is not None else lines(*quantities),
        actor=ACTOR,
        at=AT,
        lifecycle=lifecycle,
        **args,  # type: ignore[arg-type]
    )
    if placed:
        order.place(actor=ACTOR, at=AT)
    return order


def place_command(**overrides: object) -> PlaceOrder:
    args: dict[str, object] = {
        "channel": Channel("web"),
        "customer": CustomerRef(CustomerId("C-1")),
        "currency": "EUR",
        "shipping_address": BERLIN,
        "lines": [
            NewLine(Sku("MUG"), 2, eur("12.50"), taxes=[TaxLine("VAT", Decimal("0.19"), eur("4.75"))]),
            NewLine(Sku("TEA"), 3, eur("6.00"), discounts=[Adjustment("BUNDLE", eur("3.00"))]),
        ],
    }
    args.update(overrides)
    return PlaceOrder(**args)  # type: ignore[arg-type]
