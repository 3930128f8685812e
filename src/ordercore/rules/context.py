"""What a rule can see: the order and its context, as a checked schema and as the objects rules read.

The schema (:data:`ORDER_SCHEMA`) is what rule conditions are type-checked against when a rule set loads:
an unknown field or a type mismatch is a load error. :func:`order_context` builds the matching run-time
objects from an order and :class:`RuleInputs` (the ports that know about customers, products, stock,
payments and fraud). Values served by ports are fetched on first use, once per evaluation: a rule set that
never reads ``fraud.score`` never calls the fraud service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import attrs

from ordercore.errors import RuleEvaluationFailed
from ordercore.money import Money
from ordercore.order import Order
from ordercore.ports import (
    AddressValidator,
    CustomerDirectory,
    CustomerProfile,
    ErpGateway,
    FraudScorer,
    OrderDigest,
    PaymentRecords,
    ProductCatalog,
    ProductInfo,
    RecentOrders,
)
from ordercore.rules.language import (
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    INT,
    MONEY,
    STRING,
    ListOf,
    Nullable,
    Record,
    Schema,
)
from ordercore.values import Address, Sku

__all__ = [
    "ORDER_SCHEMA",
    "RuleInputs",
    "is_po_box",
    "order_context",
]

LINE = Record(
    "line",
    {
        "id": STRING,
        "sku": STRING,
        "quantity": INT,
        "unallocated": INT,
        "unit_price": MONEY,
        "total": MONEY,
        "description": STRING,
        "uom": STRING,
        "hazmat": BOOL,
        "hazmat_class": STRING,
        "weight_kg": Nullable(DECIMAL),
        "longest_side_cm": Nullable(DECIMAL),
        "tags": ListOf(STRING),
        "known_product": BOOL,
        "available": INT,
    },
)

ADDRESS = Record(
    "address",
    {
        "country": STRING,
        "postal_code": STRING,
        "city": STRING,
        "line1": STRING,
        "line2": STRING,
        "region": STRING,
        "name": STRING,
        "company": STRING,
        "is_po_box": BOOL,
        "has_coordinates": BOOL,
    },
)

ORDER = Record(
    "order",
    {
        "id": STRING,
        "channel": STRING,
        "currency": STRING,
        "status": STRING,
        "external_ref": Nullable(STRING),
        "service_level": STRING,
        "subtotal": MONEY,
        "discount_total": MONEY,
        "tax_total": MONEY,
        "shipping_total": MONEY,
        "total": MONEY,
        "line_count": INT,
        "units": INT,
        "weight_kg": DECIMAL,
        "hazmat": BOOL,
        "created_at": DATETIME,
        "placed_at": Nullable(DATETIME),
        "requested_delivery_date": Nullable(DATE),
        "lines": ListOf(LINE),
    },
)

CUSTOMER = Record(
    "customer",
    {
        "id": STRING,
        "segment": STRING,
        "email": STRING,
        "known": BOOL,
        "is_new": BOOL,
        "orders_placed": INT,
        "tags": ListOf(STRING),
        "credit_limit": Nullable(MONEY),
        "open_balance": MONEY,
        "first_order_at": Nullable(DATETIME),
    },
)

PAYMENT = Record(
    "payment",
    {"authorised": BOOL, "authorised_amount": Nullable(MONEY), "covers_total": BOOL},
)

FRAUD = Record("fraud", {"score": Nullable(DECIMAL)})

#: The fields every rule condition can read, checked when a rule set loads.
ORDER_SCHEMA = Schema(
    Record(
        "context",
        {
            "order": ORDER,
            "customer": CUSTOMER,
            "ship_to": ADDRESS,
            "payment": PAYMENT,
            "fraud": FRAUD,
            "now": DATETIME,
            "today": DATE,
        },
    )
)

_PO_BOX = re.compile(
    r"\b(p\.?\s*o\.?\s*box|post\s*office\s*box|postfach|packstation|postbus|bo[iî]te\s+postale|b\.?p\.?\s+\d"
    r"|apartado(\s+de\s+correos)?|casella\s+postale|skrytka\s+pocztowa|gpo\s+box|locked\s+bag)\b",
    re.IGNORECASE,
)


def is_po_box(address: Address) -> bool:
    """Whether an address is a post office box or parcel locker (which many services cannot deliver to),
    by the words post offices use across Europe and North America in its street lines."""
    return bool(_PO_BOX.search(address.line1) or _PO_BOX.search(address.line2))


@attrs.frozen
class RuleInputs:
    """The ports rules read through, and the moment of the evaluation. Each is optional: a rule that reads
    a value whose port is missing fails with :class:`ordercore.RuleEvaluationFailed` (recorded as the
    rule's error), so a misconfigured application is visible, never silently lenient."""

    now: datetime
    customers: CustomerDirectory | None = None
    erp: ErpGateway | None = None
    catalog: ProductCatalog | None = None
    fraud: FraudScorer | None = None
    payments: PaymentRecords | None = None
    recent_orders: RecentOrders | None = None
    available: Callable[[Sku], int] | None = None
    address_validator: AddressValidator | None = None


def _missing(what: str, port: str) -> RuleEvaluationFailed:
    return RuleEvaluationFailed(f"{what} needs a {port}, and none is configured")


class _Lazy:
    """Fields in ``__slots__`` that are not set yet are fetched by ``_load`` on first read."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in type(self).__slots__:
            raise AttributeError(name)
        self._load(name)
        return object.__getattribute__(self, name)

    def _load(self, name: str) -> None:  # pragma: no cover - every subclass overrides it
        raise AttributeError(name)


class LineView(_Lazy):
    _ctx: OrderContext
    available: int
    description: str
    hazmat: bool
    hazmat_class: str
    id: str
    known_product: bool
    longest_side_cm: Decimal | None
    quantity: int
    sku: str
    tags: list[str]
    total: Money
    unallocated: int
    unit_price: Money
    uom: str
    weight_kg: Decimal | None

    __slots__ = (
        "_ctx",
        "available",
        "description",
        "hazmat",
        "hazmat_class",
        "id",
        "known_product",
        "longest_side_cm",
        "quantity",
        "sku",
        "tags",
        "total",
        "unallocated",
        "unit_price",
        "uom",
        "weight_kg",
    )

    def _load(self, name: str) -> None:
        ctx: OrderContext = self._ctx
        if name == "available":
            if ctx._inputs.available is None:
                raise _missing("line.available", "stock view")
            self.available = ctx._inputs.available(Sku(self.sku))
            return
        info = ctx._products().get(self.sku)
        self.known_product = info is not None
        info = info or ProductInfo(Sku(self.sku))
        self.hazmat = info.hazmat
        self.hazmat_class = info.hazmat_class
        self.weight_kg = info.weight_kg
        sides = [s for s in (info.length_cm, info.width_cm, info.height_cm) if s is not None]
        self.longest_side_cm = max(sides) if sides else None
        self.tags = sorted(info.tags)


class OrderView(_Lazy):
    _ctx: OrderContext
    channel: str
    created_at: datetime
    currency: str
    discount_total: Money
    external_ref: str | None
    hazmat: bool
    id: str
    line_count: int
    lines: list[LineView]
    placed_at: datetime | None
    requested_delivery_date: date | None
    service_level: str
    shipping_total: Money
    status: str
    subtotal: Money
    tax_total: Money
    total: Money
    units: int
    weight_kg: Decimal

    __slots__ = (
        "_ctx",
        "channel",
        "created_at",
        "currency",
        "discount_total",
        "external_ref",
        "hazmat",
        "id",
        "line_count",
        "lines",
        "placed_at",
        "requested_delivery_date",
        "service_level",
        "shipping_total",
        "status",
        "subtotal",
        "tax_total",
        "total",
        "units",
        "weight_kg",
    )

    def _load(self, name: str) -> None:
        if name == "hazmat":
            self.hazmat = any(line.hazmat for line in self.lines)
        elif name == "weight_kg":
            self.weight_kg = sum(
                (line.weight_kg * line.quantity for line in self.lines if line.weight_kg is not None),
                Decimal(0),
            )
        else:
            raise AttributeError(name)


class CustomerView(_Lazy):
    _ctx: OrderContext
    credit_limit: Money | None
    email: str
    first_order_at: datetime | None
    id: str
    is_new: bool
    known: bool
    open_balance: Money
    orders_placed: int
    segment: str
    tags: list[str]

    __slots__ = (
        "_ctx",
        "credit_limit",
        "email",
        "first_order_at",
        "id",
        "is_new",
        "known",
        "open_balance",
        "orders_placed",
        "segment",
        "tags",
    )

    def _load(self, name: str) -> None:
        ctx: OrderContext = self._ctx
        if name == "open_balance":
            if ctx._inputs.erp is None:
                raise _missing("customer.open_balance", "ERP gateway")
            self.open_balance = ctx._inputs.erp.open_balance(ctx._order.customer.id, ctx._order.currency)
            return
        if ctx._inputs.customers is None:
            raise _missing(f"customer.{name}", "customer directory")
        profile = ctx._inputs.customers.profile(ctx._order.customer.id)
        self.known = profile is not None
        profile = profile or CustomerProfile(ctx._order.customer.id)
        self.orders_placed = profile.orders_placed
        self.is_new = profile.orders_placed == 0
        self.credit_limit = profile.credit_limit
        self.tags = sorted(profile.tags)
        self.first_order_at = profile.first_order_at


class AddressView:
    country: str
    postal_code: str
    city: str
    line1: str
    line2: str
    region: str
    name: str
    company: str
    is_po_box: bool
    has_coordinates: bool

    __slots__ = tuple(ADDRESS.fields)

    def __init__(self, address: Address) -> None:
        for name in ("country", "postal_code", "city", "line1", "line2", "region", "name", "company"):
            setattr(self, name, getattr(address, name))
        self.is_po_box = is_po_box(address)
        self.has_coordinates = address.coordinates is not None


class PaymentView(_Lazy):
    _ctx: OrderContext
    authorised: bool
    authorised_amount: Money | None
    covers_total: bool

    __slots__ = ("_ctx", "authorised", "authorised_amount", "covers_total")

    def _load(self, name: str) -> None:
        ctx: OrderContext = self._ctx
        if ctx._inputs.payments is None:
            raise _missing(f"payment.{name}", "payment records port")
        amount = ctx._inputs.payments.authorised(ctx._order.id)
        self.authorised_amount = amount
        self.authorised = amount is not None and not amount.is_zero
        total = ctx.order.total
        self.covers_total = amount is not None and amount.currency == total.currency and amount >= total


class FraudView(_Lazy):
    _ctx: OrderContext
    score: Decimal | None

    __slots__ = ("_ctx", "score")

    def _load(self, name: str) -> None:
        ctx: OrderContext = self._ctx
        if ctx._inputs.fraud is None:
            raise _missing("fraud.score", "fraud scorer")
        self.score = ctx._inputs.fraud.score(ctx._order)


class OrderContext:
    """The run-time object rule conditions read (its fields are :data:`ORDER_SCHEMA`'s), plus what Python
    rules may need: the :class:`~ordercore.Order` itself and the ports."""

    _inputs: RuleInputs
    _order: Order
    _product_cache: Mapping[str, ProductInfo] | None
    customer: CustomerView
    fraud: FraudView
    now: datetime
    order: OrderView
    payment: PaymentView
    ship_to: AddressView
    today: date

    __slots__ = (
        "_inputs",
        "_order",
        "_product_cache",
        "customer",
        "fraud",
        "now",
        "order",
        "payment",
        "ship_to",
        "today",
    )

    def __init__(self, order: Order, inputs: RuleInputs) -> None:
        self._order = order
        self._inputs = inputs
        self._product_cache = None
        self.now = inputs.now
        self.today = inputs.now.date()

    @property
    def source_order(self) -> Order:
        return self._order

    @property
    def inputs(self) -> RuleInputs:
        return self._inputs

    def recent_orders(self, since: datetime) -> list[OrderDigest]:
        """The customer's other orders placed since ``since`` (for duplicate detection)."""
        if self._inputs.recent_orders is None:
            raise _missing("duplicate detection", "recent orders port")
        own = self._order.id
        return [
            d
            for d in self._inputs.recent_orders.placed_since(self._order.customer.id, since)
            if d.order_id != own
        ]

    def address_problems(self) -> list[str]:
        """What the configured address validator finds wrong with the shipping address."""
        if self._inputs.address_validator is None:
            raise _missing("address validation", "address validator")
        return list(self._inputs.address_validator.problems(self._order.shipping_address))

    def _products(self) -> Mapping[str, ProductInfo]:
        if self._product_cache is None:
            if self._inputs.catalog is None:
                raise _missing("product data (hazmat, weight, size, tags)", "product catalog")
            skus = {line.sku for line in self._order.lines}
            found = self._inputs.catalog.products(skus)
            self._product_cache = {str(sku): info for sku, info in found.items()}
        return self._product_cache


def order_context(order: Order, inputs: RuleInputs) -> OrderContext:
    """The context rules evaluate ``order`` in. Cheap to build: port-backed values load on first read."""
    ctx = OrderContext(order, inputs)
    totals = order.totals()
    ov = OrderView()
    ov._ctx = ctx
    ov.id = str(order.id)
    ov.channel = str(order.channel)
    ov.currency = order.currency
    ov.status = order.status.name
    ov.external_ref = order.external_ref
    ov.service_level = order.service_level
    ov.subtotal = totals.subtotal
    ov.discount_total = totals.discount_total
    ov.tax_total = totals.tax_total
    ov.shipping_total = totals.shipping_total
    ov.total = totals.grand_total
    ov.created_at = order.created_at
    ov.placed_at = order.placed_at
    ov.requested_delivery_date = order.requested_delivery_date
    lines: list[LineView] = []
    units = 0
    for line in order.lines:
        q = line.qty
        live = q.ordered - q.cancelled
        if live <= 0:
            continue
        lv = LineView()
        lv._ctx = ctx
        lv.id = str(line.id)
        lv.sku = str(line.sku)
        lv.quantity = live
        lv.unallocated = q.open + q.backordered
        lv.unit_price = line.unit_price
        lv.total = line.net
        lv.description = line.description
        lv.uom = line.uom
        lines.append(lv)
        units += live
    ov.lines = lines
    ov.line_count = len(lines)
    ov.units = units
    ctx.order = ov
    cv = CustomerView()
    cv._ctx = ctx
    cv.id = str(order.customer.id)
    cv.segment = order.customer.segment
    cv.email = order.customer.email
    ctx.customer = cv
    ctx.ship_to = AddressView(order.shipping_address)
    pv = PaymentView()
    pv._ctx = ctx
    ctx.payment = pv
    fv = FraudView()
    fv._ctx = ctx
    ctx.fraud = fv
    return ctx


# keep the run-time types close to the schema's: a field the schema has and the views lack is a bug
def _check_views() -> None:
    pairs: list[tuple[Record, Any]] = [
        (LINE, LineView),
        (ORDER, OrderView),
        (CUSTOMER, CustomerView),
        (ADDRESS, AddressView),
        (PAYMENT, PaymentView),
        (FRAUD, FraudView),
    ]
    for record, view in pairs:
        missing = set(record.fields) - set(view.__slots__)
        assert not missing, f"{view.__name__} lacks {sorted(missing)}"


_check_views()
