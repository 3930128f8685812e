"""Ports: what the core needs from the outside world, as ``typing.Protocol`` classes.

An integrator implements these without inheriting from anything of ours. Storage ports (repositories, the
outbox, the unit of work, the store) have complete in-memory adapters in ``ordercore_adapters.memory``; the
contract suites in :mod:`ordercore.testing` check any implementation.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import attrs

from ordercore.events import LineQty, OrderEvent
from ordercore.inventory import LedgerEntry, NodeDay, NodeStates, StockPosition
from ordercore.lifecycle import State
from ordercore.lines import TaxLine
from ordercore.money import Money
from ordercore.order import Order
from ordercore.values import Actor, Address, Channel, CustomerId, CustomerRef, GeoPoint, LineId, OrderId, Sku

__all__ = [
    "AddressValidator",
    "BackorderSummary",
    "BackorderedLine",
    "CapacityRepository",
    "Clock",
    "CrmGateway",
    "CustomerDirectory",
    "CustomerProfile",
    "ErpGateway",
    "EventPublisher",
    "FraudScorer",
    "FulfilmentRequest",
    "Geocoder",
    "HeldOrder",
    "Housekeeping",
    "LapsedReservations",
    "IdGenerator",
    "IdempotencyRecord",
    "IdempotencyRepository",
    "InventoryRepository",
    "Notification",
    "Notifier",
    "OrderAge",
    "OrderDigest",
    "OrderReports",
    "OrderRepository",
    "NodeStateRepository",
    "Outbox",
    "OutboxRecord",
    "PaymentGateway",
    "PaymentRecords",
    "PaymentRequest",
    "PaymentResult",
    "PaymentStatus",
    "ProductCatalog",
    "ProductInfo",
    "RecentOrders",
    "ShipmentBooking",
    "ShipmentRequest",
    "Store",
    "TaxCalculator",
    "TaxRequest",
    "TaxRequestLine",
    "TmsGateway",
    "TrackingUpdate",
    "UnitOfWork",
    "WmsGateway",
]


# -- infrastructure ---------------------------------------------------------------------------------------
@runtime_checkable
class Clock(Protocol):
    """The time. Must return timezone-aware datetimes."""

    def now(self) -> datetime: ...


@runtime_checkable
class IdGenerator(Protocol):
    """New identifiers for orders and other records."""

    def new_order_id(self) -> OrderId: ...

    def new_id(self, prefix: str) -> str: ...


# -- storage ----------------------------------------------------------------------------------------------
class OrderRepository(Protocol):
    """Orders inside a unit of work. Changes become visible to others only when the unit commits."""

    def add(self, order: Order) -> None:
        """Stage a new order. Raises DuplicateOrder if its id, or its channel and external reference,
        is taken."""
        ...

    def get(self, order_id: OrderId) -> Order:
        """The order, or OrderNotFound."""
        ...

    def find(self, order_id: OrderId) -> Order | None: ...

    def find_by_external_ref(self, channel: Channel, external_ref: str) -> Order | None: ...

    def save(self, order: Order) -> None:
        """Stage a changed order. At commit, ConcurrencyConflict if the stored version is no longer the
        one the order was loaded at (``order.persisted_version``)."""
        ...

    def list_ids(
        self, *, status: State | None = None, after: OrderId | None = None, limit: int = 100
    ) -> list[OrderId]:
        """Order ids in ascending order, optionally only those in ``status``, starting after ``after``."""
        ...


# -- read models: what operators ask of the stored orders ---------------------------------------------------
@attrs.frozen
class OrderAge:
    """An order in ``status`` since ``since``: when the order entered that status (the first event of the
    latest run of events leaving it there), not when it last changed."""

    order_id: OrderId
    status: State
    since: datetime


@attrs.frozen
class HeldOrder:
    """An active hold on an order: its ``code`` and ``message``, placed at ``placed_at``."""

    order_id: OrderId
    code: str
    message: str
    placed_at: datetime


@attrs.frozen
class BackorderedLine:
    """Units of one order line waiting for stock; ``placed_at`` is when the order was placed."""

    order_id: OrderId
    line_id: LineId
    quantity: int
    placed_at: datetime


@attrs.frozen
class BackorderSummary:
    """What waits for ``sku``: ``units`` backordered over ``orders`` orders, the oldest placed at
    ``oldest_placed_at``, and the ``lines`` themselves, oldest order first."""

    sku: Sku
    units: int
    orders: int
    oldest_placed_at: datetime
    lines: tuple[BackorderedLine, ...]


@runtime_checkable
class OrderReports(Protocol):
    """Read models over committed orders, kept by the store in the same transaction as the orders (an
    order repository that has them implements this too). Staged, uncommitted changes are not seen."""

    def orders_by_status(
        self, status: State, *, older_than: datetime | None = None, limit: int = 100
    ) -> list[OrderAge]:
        """Orders in ``status``, oldest ``since`` first (then by id); with ``older_than``, only those in
        it since strictly before that time."""
        ...

    def held_orders(self, code: str | None = None, *, limit: int = 100) -> list[HeldOrder]:
        """Active holds (only those of ``code``, if given), oldest first, then by order id and code."""
        ...

    def backorders_by_sku(self, sku: Sku | None = None) -> list[BackorderSummary]:
        """Backordered units per SKU (only ``sku``, if given), sorted by SKU."""
        ...


class InventoryRepository(Protocol):
    """Stock positions per fulfilment node and SKU, and their append-only ledgers, inside a unit of work.
    Positions read in a unit are kept (later reads return the same object); changes become visible to
    others only when the unit commits."""

    def get(self, node_id: str, sku: Sku) -> StockPosition | None:
        """The position of ``sku`` at ``node_id``, or None."""
        ...

    def for_sku(self, sku: Sku) -> list[StockPosition]:
        """Every position of ``sku``, sorted by node id."""
        ...

    def for_skus(self, skus: Iterable[Sku]) -> list[StockPosition]:
        """Every position of any of ``skus``, read in one query, sorted by SKU then node id."""
        ...

    def for_node(self, node_id: str) -> list[StockPosition]:
        """Every position at ``node_id``, read in one query, sorted by SKU: what the node holds, and the
        reservations (hence the orders) held there."""
        ...

    def save(self, position: StockPosition) -> None:
        """Stage ``position``. At commit its new ledger entries are appended and the position stored;
        ConcurrencyConflict unless the stored position is still at ``position.persisted_version`` (absent,
        for a new one)."""
        ...

    def ledger(self, node_id: str, sku: Sku) -> list[LedgerEntry]:
        """The committed ledger of the position, in sequence order (empty when there is none)."""
        ...


class CapacityRepository(Protocol):
    """Shipments each fulfilment node has taken on per dispatch day (:class:`NodeDay`), inside a unit of
    work. Days read in a unit are kept (later reads return the same object); changes become visible to
    others only when the unit commits."""

    def get(self, node_id: str, day: date) -> NodeDay:
        """The stored day of ``node_id``, or a fresh empty one (``NodeDay.open``) when none is stored."""
        ...

    def for_day(self, day: date, node_ids: Iterable[str]) -> list[NodeDay]:
        """The days of ``node_ids`` (each once), read in one query, sorted by node id; fresh empty ones for
        nodes with nothing stored."""
        ...

    def save(self, node_day: NodeDay) -> None:
        """Stage ``node_day``. At commit it is stored if it changed; ConcurrencyConflict unless the stored
        day is still at ``node_day.persisted_version`` (absent, when that is 0)."""
        ...


class NodeStateRepository(Protocol):
    """Which fulfilment nodes are online, as the store keeps them for every worker (see
    :mod:`ordercore.inventory.status`), inside a unit of work."""

    def current(self) -> NodeStates:
        """The stored states, with this unit's staged changes. Read once per unit: later calls return what
        was read then. A unit that read them and commits changes of any kind fails with
        ConcurrencyConflict if the stored states changed in between (the bus then runs its command again):
        no order is sourced at a node taken offline after the unit looked."""
        ...

    def set_online(self, node_id: str, online: bool, *, actor: Actor, at: datetime, reason: str = "") -> bool:
        """Stage ``node_id`` going online or offline; returns whether that changes its stored state. At
        commit the version of the states grows by one; ConcurrencyConflict if another unit changed them
        first."""
        ...


@attrs.frozen
class OutboxRecord:
    """An event waiting to be published, in commit order (``position``)."""

    position: int
    event: OrderEvent


class Outbox(Protocol):
    """Events written in the same transaction as the state that produced them."""

    def pending(self, limit: int = 100) -> list[OutboxRecord]: ...

    def mark_published(self, event_ids: Sequence[str]) -> None: ...


@attrs.frozen
class IdempotencyRecord:
    """A request's idempotency ``key``, the order it placed and the ``fingerprint`` of its payload (a
    hash, so that the same key sent with another payload is recognised), from ``created_at``."""

    key: str
    order_id: OrderId
    fingerprint: str
    created_at: datetime


class IdempotencyRepository(Protocol):
    """Idempotency keys inside a unit of work, stored in the same transaction as the order they placed."""

    def get(self, key: str) -> IdempotencyRecord | None:
        """The record of ``key`` (staged in this unit or committed), or None."""
        ...

    def add(self, record: IdempotencyRecord) -> None:
        """Stage a new record. ConcurrencyConflict if its key is taken, now or at commit (another unit
        committed it first): the loser runs again and finds the winner's record."""
        ...


class UnitOfWork(Protocol):
    """One atomic change. Nothing is stored unless :meth:`commit` is called; leaving the ``with`` block
    without committing rolls back."""

    orders: OrderRepository
    inventory: InventoryRepository
    capacity: CapacityRepository
    outbox: Outbox
    idempotency: IdempotencyRepository
    nodes: NodeStateRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Store every staged change and its events atomically, or raise and store nothing."""
        ...

    def rollback(self) -> None: ...


@runtime_checkable
class Housekeeping(Protocol):
    """What a unit of work may offer to keep a store from growing without bound: delete idempotency keys
    recorded before ``keys_before`` and node capacity rows of days before ``days_before`` (None: keep
    them), at once and in a transaction of its own; returns how many keys and days went."""

    def purge(self, *, keys_before: datetime | None, days_before: date | None) -> tuple[int, int]: ...


@runtime_checkable
class LapsedReservations(Protocol):
    """What a unit of work may offer to find the carts nobody checked out: the stock positions holding a
    soft reservation whose expiry is at or before ``at``, as ``(node id, SKU)`` in that order, at most
    ``limit`` of them (a positive number). An ``at`` without a time zone is an ``InvalidTimestamp``. A
    store with many open reservations should find these without reading every one (the SQL stores keep
    each soft reservation's expiry in an indexed column, ``memory://`` in a sorted list)."""

    def lapsed_positions(self, at: datetime, limit: int) -> list[tuple[str, Sku]]: ...


class Store(Protocol):
    """An opened storage backend: where units of work come from."""

    def unit_of_work(self) -> UnitOfWork: ...

    def close(self) -> None: ...


class EventPublisher(Protocol):
    """Sends events to the outside (a broker, a webhook...). Must be idempotent by ``event.event_id``.

    ``publish`` stores the events in the order given, or raises. An event refused for good (not a
    failure another attempt may get past) is :class:`~ordercore.errors.PublishRefused` naming it, once
    every event before it is stored: the relay marks those published and stops at it."""

    def publish(self, events: Sequence[OrderEvent]) -> None: ...


# -- payments ---------------------------------------------------------------------------------------------
class PaymentStatus(enum.Enum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    VOIDED = "voided"
    DECLINED = "declined"
    FAILED = "failed"


@attrs.frozen
class PaymentRequest:
    order_id: OrderId
    amount: Money
    idempotency_key: str
    payment_method: str = ""


@attrs.frozen
class PaymentResult:
    status: PaymentStatus
    reference: str
    amount: Money
    message: str = ""


class PaymentGateway(Protocol):
    """A payment service provider. Every call is idempotent by its key."""

    def authorize(self, request: PaymentRequest) -> PaymentResult: ...

    def capture(self, reference: str, amount: Money, idempotency_key: str) -> PaymentResult: ...

    def refund(self, reference: str, amount: Money, idempotency_key: str) -> PaymentResult: ...

    def void(self, reference: str, idempotency_key: str) -> PaymentResult: ...


# -- ERP, WMS, TMS, CRM -----------------------------------------------------------------------------------
class ErpGateway(Protocol):
    """The ERP: receives sales orders, and knows customers' open balances."""

    def post_sales_order(self, order: Order) -> str:
        """Send the order; returns the ERP's document number. Idempotent by order id."""
        ...

    def open_balance(self, customer_id: CustomerId, currency: str) -> Money: ...


@attrs.frozen
class FulfilmentRequest:
    order_id: OrderId
    release_id: str
    node_id: str
    lines: tuple[LineQty, ...]
    ship_to: Address
    service_level: str


class WmsGateway(Protocol):
    """A warehouse (or store) system that picks and packs released lines."""

    def release(self, request: FulfilmentRequest) -> None: ...

    def cancel_release(self, release_id: str) -> bool:
        """Try to call back a release; False when picking is too far along."""
        ...


@attrs.frozen
class ShipmentRequest:
    order_id: OrderId
    shipment_id: str
    origin_node_id: str
    ship_to: Address
    service_level: str
    weight_grams: int
    lines: tuple[LineQty, ...]


@attrs.frozen
class ShipmentBooking:
    shipment_id: str
    carrier: str
    tracking_number: str
    estimated_delivery: date | None = None


@attrs.frozen
class TrackingUpdate:
    tracking_number: str
    status: str
    occurred_at: datetime
    location: str = ""
    delivered: bool = False


class TmsGateway(Protocol):
    """A transport system or carrier: books shipments and reports tracking."""

    def book(self, request: ShipmentRequest) -> ShipmentBooking: ...

    def track(self, tracking_number: str) -> Sequence[TrackingUpdate]: ...


class CrmGateway(Protocol):
    """The CRM: kept informed of customers and of what happens to their orders."""

    def upsert_customer(self, customer: CustomerRef, address: Address | None) -> None: ...

    def record_order_event(self, customer_id: CustomerId, event: OrderEvent) -> None: ...


# -- tax, notifications -----------------------------------------------------------------------------------
@attrs.frozen
class TaxRequestLine:
    line_id: LineId
    sku: Sku
    quantity: int
    net_amount: Money


@attrs.frozen
class TaxRequest:
    currency: str
    ship_to: Address
    lines: tuple[TaxRequestLine, ...]
    shipping: Money | None = None


class TaxCalculator(Protocol):
    """Computes taxes for lines shipped to an address; returns tax lines keyed by line id."""

    def calculate(self, request: TaxRequest) -> Mapping[LineId, tuple[TaxLine, ...]]: ...


@attrs.frozen
class Notification:
    recipient: str
    template: str
    order_id: OrderId
    data: Mapping[str, str] = attrs.field(factory=dict, hash=False)


class Notifier(Protocol):
    """Sends messages to customers (e-mail, SMS, push)."""

    def notify(self, notification: Notification) -> None: ...


class Geocoder(Protocol):
    """Coordinates of an address, for distance-based sourcing of addresses that arrive without them.
    Returns None when the address cannot be located."""

    def locate(self, address: Address) -> GeoPoint | None: ...


# -- what the rule engine asks about ------------------------------------------------------------------------


@attrs.frozen
class CustomerProfile:
    """What the business knows about a customer, for rules: ``orders_placed`` before this one (0 for a new
    customer), an optional credit limit, and free-form tags (``"vip"``, ``"watchlist"``)."""

    customer_id: CustomerId
    orders_placed: int = 0
    credit_limit: Money | None = None
    tags: frozenset[str] = frozenset()
    first_order_at: datetime | None = None


class CustomerDirectory(Protocol):
    """Customer profiles from the CRM or the ERP. None for a customer it does not know (a new customer)."""

    def profile(self, customer_id: CustomerId) -> CustomerProfile | None: ...


@attrs.frozen
class ProductInfo:
    """Product master data rules need: hazardous goods (with their UN class), weight and size per unit."""

    sku: Sku
    hazmat: bool = False
    hazmat_class: str = ""
    weight_kg: Decimal | None = None
    length_cm: Decimal | None = None
    width_cm: Decimal | None = None
    height_cm: Decimal | None = None
    tags: frozenset[str] = frozenset()


class ProductCatalog(Protocol):
    """Product master data (PIM or ERP). SKUs it does not know are left out of the answer."""

    def products(self, skus: Iterable[Sku]) -> Mapping[Sku, ProductInfo]: ...


class FraudScorer(Protocol):
    """A fraud service: a risk score from 0 (safe) to 100 (certain fraud), or None when it cannot tell."""

    def score(self, order: Order) -> Decimal | None: ...


class PaymentRecords(Protocol):
    """What has been authorised for an order so far (None when nothing is)."""

    def authorised(self, order_id: OrderId) -> Money | None: ...


class AddressValidator(Protocol):
    """Checks a postal address for delivery (required fields, postal code formats, regions) and returns
    what is wrong with it, one readable problem per entry; empty when the address is fine."""

    def problems(self, address: Address) -> list[str]: ...


@attrs.frozen
class OrderDigest:
    """A short form of a placed order, for duplicate detection: who, when, and which SKUs in what quantity."""

    order_id: OrderId
    customer_id: CustomerId
    placed_at: datetime
    items: frozenset[tuple[str, int]]
    total: Money


@runtime_checkable
class RecentOrders(Protocol):
    """Orders a customer placed since a moment (for duplicate detection), newest first."""

    def placed_since(self, customer_id: CustomerId, since: datetime) -> Sequence[OrderDigest]: ...
