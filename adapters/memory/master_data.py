"""In-memory adapters for the ports rules read through: customer profiles, product data, fraud scores,
payment authorisations and a customer's recent orders. Complete and thread-safe, for tests, demos and
applications that load such data at start-up."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import CustomerProfile, OrderDigest, ProductInfo
from ordercore.values import CustomerId, OrderId, Sku

__all__ = [
    "InMemoryCustomerDirectory",
    "InMemoryFraudScores",
    "InMemoryPaymentRecords",
    "InMemoryProductCatalog",
    "InMemoryRecentOrders",
]


class InMemoryCustomerDirectory:
    """Customer profiles by id; an unknown customer is a new one."""

    def __init__(self, profiles: Iterable[CustomerProfile] = ()) -> None:
        self._lock = threading.Lock()
        self._profiles = {p.customer_id: p for p in profiles}

    def put(self, profile: CustomerProfile) -> None:
        with self._lock:
            self._profiles[profile.customer_id] = profile

    def profile(self, customer_id: CustomerId) -> CustomerProfile | None:
        with self._lock:
            return self._profiles.get(customer_id)


class InMemoryProductCatalog:
    """Product data by SKU."""

    def __init__(self, products: Iterable[ProductInfo] = ()) -> None:
        self._lock = threading.Lock()
        self._products = {p.sku: p for p in products}

    def put(self, product: ProductInfo) -> None:
        with self._lock:
            self._products[product.sku] = product

    def products(self, skus: Iterable[Sku]) -> Mapping[Sku, ProductInfo]:
        with self._lock:
            return {sku: self._products[sku] for sku in skus if sku in self._products}


class InMemoryFraudScores:
    """Fraud scores set per order (a fraud service's answers recorded in advance), with a default."""

    def __init__(
        self, scores: Mapping[OrderId | str, Decimal | int] | None = None, default: Decimal | None = None
    ):
        self._lock = threading.Lock()
        self._scores = {str(k): Decimal(v) for k, v in (scores or {}).items()}
        self._default = default

    def set(self, order_id: OrderId | str, score: Decimal | int | None) -> None:
        with self._lock:
            if score is None:
                self._scores.pop(str(order_id), None)
            else:
                self._scores[str(order_id)] = Decimal(score)

    def score(self, order: Order) -> Decimal | None:
        with self._lock:
            return self._scores.get(str(order.id), self._default)


class InMemoryPaymentRecords:
    """Amounts authorised per order (fed from the payment provider's webhooks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._authorised: dict[str, Money] = {}

    def authorise(self, order_id: OrderId | str, amount: Money) -> None:
        """Record an authorisation (adds to what the order already has in that currency)."""
        with self._lock:
            key = str(order_id)
            before = self._authorised.get(key)
            self._authorised[key] = amount if before is None else before + amount

    def void(self, order_id: OrderId | str) -> None:
        with self._lock:
            self._authorised.pop(str(order_id), None)

    def authorised(self, order_id: OrderId) -> Money | None:
        with self._lock:
            return self._authorised.get(str(order_id))


class InMemoryRecentOrders:
    """A customer's recent orders, as recorded with :meth:`record` (and dropped with :meth:`forget`). The
    stores answer this from their own tables; this one is for applications that keep orders elsewhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_customer: dict[CustomerId, dict[OrderId, OrderDigest]] = {}

    def record(self, order: Order) -> None:
        if order.placed_at is None:
            return
        digest = OrderDigest(
            order.id,
            order.customer.id,
            order.placed_at,
            frozenset((str(line.sku), line.qty.ordered - line.qty.cancelled) for line in order.lines),
            order.totals().grand_total,
        )
        with self._lock:
            self._by_customer.setdefault(order.customer.id, {})[order.id] = digest

    def forget(self, order_id: OrderId) -> None:
        with self._lock:
            for orders in self._by_customer.values():
                orders.pop(order_id, None)

    def placed_since(self, customer_id: CustomerId, since: datetime) -> Sequence[OrderDigest]:
        with self._lock:
            found = [d for d in self._by_customer.get(customer_id, {}).values() if d.placed_at >= since]
        return sorted(found, key=lambda d: d.placed_at, reverse=True)
