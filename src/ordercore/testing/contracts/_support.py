"""What the contract suite's parts share: the fixtures an adapter's test provides, the orders and
stock the tests build, and helpers running attempts on threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import attrs
import pytest

from ordercore.errors import (
    ConcurrencyConflict,
)
from ordercore.inventory import (
    ShippingCost,
    StockPosition,
)
from ordercore.lines import NewLine
from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import (
    OrderReports,
    RecentOrders,
    Store,
    UnitOfWork,
)
from ordercore.service.commands import PlaceOrder
from ordercore.values import (
    Actor,
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    GeoPoint,
    OrderId,
    Sku,
)

_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_DAY = date(2026, 3, 2)
_ACTOR = Actor.system("contract")
_ADDRESS = Address(country="DE", postal_code="10115", city="Berlin", line1="Str. 1")
_SHIPPING = ShippingCost("EUR", per_shipment=Decimal(5), per_unit_km=Decimal("0.01"))


def _together(threads: int, each: int, attempt: Callable[[int, int], object]) -> None:
    """Run ``attempt(n, k)`` for ``k`` in ``range(each)`` on ``threads`` threads released at once by a
    barrier; an attempt that raises ConcurrencyConflict is made again, as a caller would on a fresh read.
    Anything else a thread raises fails the calling test."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for k in range(each):
                while True:
                    try:
                        attempt(n, k)
                        break
                    except ConcurrencyConflict:
                        continue
        except BaseException as e:  # reported below, from the test's own thread
            errors.append(e)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == [], errors


def _order(order_id: str = "O-1", *, external_ref: str | None = None, channel: str = "web") -> Order:
    order = Order.create(
        order_id=OrderId(order_id),
        channel=Channel(channel),
        customer=CustomerRef(CustomerId("C-1")),
        currency="EUR",
        shipping_address=_ADDRESS,
        lines=[
            NewLine(Sku("SKU-1"), 2, Money.of("9.99", "EUR")),
            NewLine(Sku("SKU-2"), 1, Money.of("5", "EUR")),
        ],
        external_ref=external_ref,
        actor=_ACTOR,
        at=_AT,
    )
    order.place(actor=_ACTOR, at=_AT + timedelta(seconds=1))
    return order


def _one_unit() -> PlaceOrder:
    """An order of customer C-1 for one unit of SKU-1, at the contract's address (no coordinates)."""
    return PlaceOrder(
        channel=Channel("web"),
        customer=CustomerRef(CustomerId("C-1")),
        currency="EUR",
        shipping_address=_ADDRESS,
        lines=[NewLine(Sku("SKU-1"), 1, Money.of("9.99", "EUR"))],
    )


def _placement() -> PlaceOrder:
    """An order of 4 units of SKU-1 to Berlin."""
    return PlaceOrder(
        channel=Channel("web"),
        customer=CustomerRef(CustomerId("C-9")),
        currency="EUR",
        shipping_address=attrs.evolve(_ADDRESS, coordinates=GeoPoint(52.52, 13.40)),
        lines=[NewLine(Sku("SKU-1"), 4, Money.of("9.99", "EUR"))],
    )


def _placed_at(order_id: str, placed: datetime, customer: str = "C-1") -> Order:
    """A placed order (SKU-1 x 2 on line 1, SKU-2 x 1 on line 2), created a minute before ``placed``."""
    order = Order.create(
        order_id=OrderId(order_id),
        channel=Channel("web"),
        customer=CustomerRef(CustomerId(customer)),
        currency="EUR",
        shipping_address=_ADDRESS,
        lines=[
            NewLine(Sku("SKU-1"), 2, Money.of("9.99", "EUR")),
            NewLine(Sku("SKU-2"), 1, Money.of("5", "EUR")),
        ],
        actor=_ACTOR,
        at=placed - timedelta(minutes=1),
    )
    order.place(actor=_ACTOR, at=placed)
    return order


def _reports(uow: UnitOfWork) -> OrderReports:
    assert isinstance(uow.orders, OrderReports), "the order repository keeps no read models"
    return uow.orders


def _recent(uow: UnitOfWork, customer: str, since: datetime) -> list[tuple[str, datetime]]:
    """(order id, placed at) of the customer's recent orders, as the store lists them."""
    recent = uow.orders
    assert isinstance(recent, RecentOrders), "the order repository keeps no recent orders"
    return [(d.order_id.value, d.placed_at) for d in recent.placed_since(CustomerId(customer), since)]


class ContractBase:
    """Fixtures and helpers every part of the contract uses."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("provide a `store` fixture that yields a fresh, empty store")

    def _add(self, store: Store, order: Order) -> None:
        with store.unit_of_work() as uow:
            uow.orders.add(order)
            uow.commit()

    def _stale_change(self, store: Store, stale: UnitOfWork) -> None:
        """Stage in ``stale`` a hold on O-1 as read there, after another unit accepted it and committed:
        ``stale`` then fails to commit."""
        old = stale.orders.get(OrderId("O-1"))
        with store.unit_of_work() as other:
            fresh = other.orders.get(OrderId("O-1"))
            fresh.accept(actor=_ACTOR, at=_AT)
            other.orders.save(fresh)
            other.commit()
        old.hold("CHECK", actor=_ACTOR, at=_AT)
        stale.orders.save(old)

    def _stock(self, store: Store, *positions: StockPosition) -> None:
        with store.unit_of_work() as uow:
            for position in positions:
                uow.inventory.save(position)
            uow.commit()

    def _capacity(self, store: Store, node_id: str, day: date, *keys: str, limit: int | None = None) -> None:
        with store.unit_of_work() as uow:
            node_day = uow.capacity.get(node_id, day)
            for key in keys:
                node_day.take(key, limit=limit)
            uow.commit()
