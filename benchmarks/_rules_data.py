"""Data for ``benchmarks/rules.py``: the 20 rules on three sides, and seeded orders with their contexts.

Each rule is written three times, side by side in :data:`RULES`: in the condition language (``when`` and
``message``, loaded with :func:`ordercore.rules.load_rules`), as a plain Python lambda with an f-string
message (the floor), and in the syntax of the ``rule-engine`` package from PyPI (the peer). The three
conditions test the same thing on the same values; ``benchmarks/rules.py`` checks that every order gets
the same decision and the same messages from all three before it times anything.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ordercore import (
    Actor,
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    Money,
    NewLine,
    Order,
    OrderId,
    RuleEvaluationFailed,
    Sku,
)
from ordercore.ports import CustomerProfile, ProductInfo
from ordercore.rules import ORDER_SCHEMA, RuleInputs, order_context
from ordercore.rules.context import OrderContext
from ordercore_adapters.memory.master_data import (
    InMemoryCustomerDirectory,
    InMemoryFraudScores,
    InMemoryPaymentRecords,
    InMemoryProductCatalog,
)

SEED = 20240601
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ACTOR = Actor.system("bench")


def eur(amount: str | int) -> Money:
    return Money.of(amount, "EUR")


# -- constants the lambdas use (the compiled conditions bind the same values as their own constants) --------
EMBARGO = frozenset({"KP", "IR", "SY", "CU", "BY"})
HOME = frozenset({"DE", "AT", "FR", "NL", "BE", "IT", "ES", "PL"})
DE_POSTCODE = re.compile("^[0-9]{5}$").search
EUR150, EUR250, EUR400, EUR1500 = eur(150), eur(250), eur(400), eur(1500)
TWO_DAYS, THREE_DAYS = timedelta(days=2), timedelta(days=3)
WEB_MARKET = ["web", "marketplace"]

C = Any  # the context the lambdas read: the same OrderContext objects the engine evaluates


def _r(
    id: str,
    stage: str,
    priority: int,
    outcome: str,
    reason: str,
    when: str,
    message: str,
    check: Callable[[C], Any],
    render: Callable[[C], str],
    peer: str,
    channels: Sequence[str] = (),
    segments: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "id": id,
        "stage": stage,
        "priority": priority,
        "outcome": outcome,
        "reason": reason,
        "when": when,
        "message": message,
        "check": check,
        "render": render,
        "peer": peer,
        "channels": tuple(channels),
        "segments": tuple(segments),
    }


# fmt: off
RULES: list[dict[str, Any]] = [
    # -- intake ----------------------------------------------------------------------------------------------
    _r("embargo", "intake", 100, "reject", "embargoed_destination",
       'ship_to.country in ["KP", "IR", "SY", "CU", "BY"]',
       "cannot ship to {ship_to.country}",
       lambda c: c.ship_to.country in EMBARGO,
       lambda c: f"cannot ship to {c.ship_to.country!r}",
       'ship_to.country in ["KP", "IR", "SY", "CU", "BY"]'),
    _r("quantity-limit", "intake", 90, "reject", "quantity_limit",
       "sum(line in order.lines: line.quantity) > 40",
       "{order.units} units, more than 40",
       lambda c: sum(line.quantity for line in c.order.lines) > 40,
       lambda c: f"{c.order.units} units, more than 40",
       "$sum([line.quantity for line in order.lines]) > 40"),
    _r("pos-small-basket", "intake", 50, "accept", "",
       "order.total < 150 EUR",
       "",
       lambda c: c.order.total < EUR150,
       lambda c: "",
       "order.total < 150",
       channels=["pos"]),
    _r("de-postcode", "intake", 10, "hold", "bad_postal_code",
       'ship_to.country == "DE" and not matches(ship_to.postal_code, "^[0-9]{5}$")',
       "postal code {ship_to.postal_code} is not a German one",
       lambda c: c.ship_to.country == "DE" and DE_POSTCODE(c.ship_to.postal_code) is None,
       lambda c: f"postal code {c.ship_to.postal_code!r} is not a German one",
       'ship_to.country == "DE" and ship_to.postal_code !~ "^[0-9]{5}$"'),
    _r("po-box-express", "intake", 10, "hold", "po_box_service",
       'ship_to.is_po_box and order.service_level != "standard"',
       "{order.service_level} to a PO box",
       lambda c: c.ship_to.is_po_box and c.order.service_level != "standard",
       lambda c: f"{c.order.service_level!r} to a PO box",
       'ship_to.is_po_box and order.service_level != "standard"'),
    _r("stale-order", "intake", 0, "hold", "stale_order",
       "now - order.created_at > 2d",
       "created {now - order.created_at} ago",
       lambda c: c.now - c.order.created_at > TWO_DAYS,
       lambda c: f"created {c.now - c.order.created_at} ago",
       'now - order.created_at > t"P2D"'),
    # -- fraud -----------------------------------------------------------------------------------------------
    _r("vip-fast-track", "fraud", 100, "accept", "",
       '"watchlist" not in customer.tags and customer.orders_placed >= 20',
       "",
       lambda c: "watchlist" not in c.customer.tags and c.customer.orders_placed >= 20,
       lambda c: "",
       'not "watchlist" in customer.tags and customer.orders_placed >= 20',
       segments=["vip"]),
    _r("fraud-block", "fraud", 90, "reject", "fraud_suspected",
       "fraud.score != null and fraud.score >= 97",
       "fraud score {fraud.score}",
       lambda c: c.fraud.score is not None and c.fraud.score >= 97,
       lambda c: f"fraud score {c.fraud.score}",
       "fraud.score != null and fraud.score >= 97"),
    _r("fraud-review", "fraud", 50, "hold", "fraud_review",
       "fraud.score != null and fraud.score >= 85",
       "fraud score {fraud.score}",
       lambda c: c.fraud.score is not None and c.fraud.score >= 85,
       lambda c: f"fraud score {c.fraud.score}",
       "fraud.score != null and fraud.score >= 85"),
    _r("big-first-order", "fraud", 40, "hold", "review_large_new_customer",
       "customer.is_new and order.total > 1500 EUR",
       "first order of {order.total}",
       lambda c: c.customer.is_new and c.order.total > EUR1500,
       lambda c: f"first order of {c.order.total}",
       "customer.is_new and order.total > 1500"),
    _r("watchlist", "fraud", 30, "hold", "watchlist",
       '"watchlist" in customer.tags',
       "customer {customer.id} is on the watchlist",
       lambda c: "watchlist" in c.customer.tags,
       lambda c: f"customer {c.customer.id!r} is on the watchlist",
       '"watchlist" in customer.tags'),
    _r("disposable-email", "fraud", 20, "hold", "disposable_email",
       'ends_with(customer.email, "@mailinator.com") and order.total > 250 EUR',
       "{customer.email} for {order.total}",
       lambda c: c.customer.email.endswith("@mailinator.com") and c.order.total > EUR250,
       lambda c: f"{c.customer.email!r} for {c.order.total}",
       'customer.email =~~ "@mailinator\\\\.com$" and order.total > 250',
       channels=WEB_MARKET),
    # -- credit ----------------------------------------------------------------------------------------------
    _r("credit-limit", "credit", 50, "hold", "credit_limit",
       "customer.credit_limit != null and customer.open_balance + order.total > customer.credit_limit",
       "balance {customer.open_balance} + order {order.total} over limit {customer.credit_limit}",
       lambda c: c.customer.credit_limit is not None
       and c.customer.open_balance + c.order.total > c.customer.credit_limit,
       lambda c: f"balance {c.customer.open_balance} + order {c.order.total}"
       f" over limit {c.customer.credit_limit}",
       "customer.credit_limit != null and customer.open_balance + order.total > customer.credit_limit",
       segments=["b2b"]),
    _r("payment-pending", "credit", 40, "hold", "payment_pending",
       "not payment.authorised",
       "no payment authorised for {order.total}",
       lambda c: not c.payment.authorised,
       lambda c: f"no payment authorised for {c.order.total}",
       "not payment.authorised",
       channels=WEB_MARKET),
    _r("payment-short", "credit", 30, "hold", "payment_short",
       "payment.authorised and not payment.covers_total",
       "authorised {payment.authorised_amount} of {order.total}",
       lambda c: c.payment.authorised and not c.payment.covers_total,
       lambda c: f"authorised {c.payment.authorised_amount} of {c.order.total}",
       "payment.authorised and not payment.covers_total"),
    # -- inventory -------------------------------------------------------------------------------------------
    _r("unknown-sku", "inventory", 90, "reject", "unknown_sku",
       "any(line in order.lines: not line.known_product)",
       "{count(line in order.lines: not line.known_product)} unknown SKU(s)",
       lambda c: any(not line.known_product for line in c.order.lines),
       lambda c: f"{sum(1 for line in c.order.lines if not line.known_product)} unknown SKU(s)",
       "$any([not line.known_product for line in order.lines])"),
    _r("hazmat-express", "inventory", 50, "hold", "hazmat_air",
       'order.service_level == "express" and any(line in order.lines: line.hazmat)',
       "hazardous goods by {order.service_level}",
       lambda c: c.order.service_level == "express" and any(line.hazmat for line in c.order.lines),
       lambda c: f"hazardous goods by {c.order.service_level!r}",
       'order.service_level == "express" and $any([line.hazmat for line in order.lines])'),
    _r("high-value-export", "inventory", 40, "hold", "export_review",
       'ship_to.country not in ["DE", "AT", "FR", "NL", "BE", "IT", "ES", "PL"]'
       " and max_of(line in order.lines: line.unit_price) > 400 EUR",
       "{ship_to.country}: an item at {max_of(line in order.lines: line.unit_price)}",
       lambda c: c.ship_to.country not in HOME and max(line.unit_price for line in c.order.lines) > EUR400,
       lambda c: f"{c.ship_to.country!r}: an item at {max(line.unit_price for line in c.order.lines)}",
       'not ship_to.country in ["DE", "AT", "FR", "NL", "BE", "IT", "ES", "PL"]'
       " and $max([line.unit_price for line in order.lines]) > 400"),
    # -- fulfilment ------------------------------------------------------------------------------------------
    _r("freight", "fulfilment", 50, "hold", "freight_needed",
       "order.weight_kg > 70",
       "{order.weight_kg} kg needs freight",
       lambda c: c.order.weight_kg > 70,
       lambda c: f"{c.order.weight_kg} kg needs freight",
       "order.weight_kg > 70"),
    _r("tight-delivery", "fulfilment", 40, "hold", "delivery_date_tight",
       "order.requested_delivery_date != null and order.requested_delivery_date - today < 3d",
       "delivery requested for {order.requested_delivery_date}",
       lambda c: c.order.requested_delivery_date is not None
       and c.order.requested_delivery_date - c.today < THREE_DAYS,
       lambda c: f"delivery requested for {c.order.requested_delivery_date}",
       'order.requested_delivery_date != null and order.requested_delivery_date - today < t"P3D"'),
]
# fmt: on


def rules_toml() -> str:
    """The rule set in TOML, as an operations team would write it (strings quoted as JSON, which TOML reads)."""
    out = ['name = "bench"', 'version = "1"', ""]
    for rule in RULES:
        out.append("[[rules]]")
        for key in (
            "id",
            "stage",
            "priority",
            "when",
            "outcome",
            "reason",
            "message",
            "channels",
            "segments",
        ):
            value = rule[key]
            if value in ("", ()):
                continue
            out.append(f"{key} = {json.dumps(list(value) if isinstance(value, tuple) else value)}")
        out.append("")
    return "\n".join(out)


# -- master data and orders --------------------------------------------------------------------------------
class ErpBalances:
    """An ERP stub that knows customers' open balances (and posts nothing)."""

    def __init__(self, balances: dict[CustomerId, Money]) -> None:
        self._balances = balances

    def post_sales_order(self, order: Order) -> str:  # pragma: no cover - rules never post
        return f"SO-{order.id}"

    def open_balance(self, customer_id: CustomerId, currency: str) -> Money:
        return self._balances.get(customer_id, Money.zero(currency))


N_CUSTOMERS = 20_000
N_SKUS = 400
N_ADDRESSES = 4_000
COUNTRIES = (
    ("DE", 44),
    ("FR", 10),
    ("NL", 8),
    ("AT", 6),
    ("IT", 6),
    ("ES", 5),
    ("PL", 4),
    ("BE", 3),
    ("CH", 4),
    ("US", 4),
    ("GB", 3),
    ("SE", 2),
    ("KP", 0.2),
    ("IR", 0.2),
    ("BY", 0.3),
)
CHANNELS = (("web", 55), ("marketplace", 20), ("pos", 15), ("edi", 10))
SEGMENTS = (("retail", 70), ("b2b", 20), ("vip", 10))
SERVICE = (("standard", 80), ("express", 15), ("economy", 5))


def _pick(rng: random.Random, table: Sequence[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


class World:
    """Seeded master data (customers, products, balances) and the ports rules read them through."""

    def __init__(self, seed: int = SEED) -> None:
        rng = random.Random(seed)
        self.rng = rng
        profiles = []
        balances = {}
        self.customers = []
        for i in range(N_CUSTOMERS):
            cid = CustomerId(f"C-{i:05d}")
            segment = _pick(rng, SEGMENTS)
            email = f"c{i}@" + ("mailinator.com" if rng.random() < 0.03 else "example.com")
            self.customers.append(CustomerRef(cid, segment=segment, email=email))
            if rng.random() < 0.12:
                continue  # unknown to the directory: a new customer
            placed = 0 if rng.random() < 0.1 else rng.randint(1, 60)
            limit = eur(rng.choice((2000, 5000, 10000, 25000))) if segment == "b2b" else None
            tags = frozenset({"watchlist"}) if rng.random() < 0.02 else frozenset()
            profiles.append(CustomerProfile(cid, orders_placed=placed, credit_limit=limit, tags=tags))
            if limit is not None:
                balances[cid] = eur(rng.randint(0, int(limit.amount)))
        products = []
        self.skus = []
        for i in range(N_SKUS):
            sku = Sku(f"SKU-{i:04d}")
            self.skus.append(sku)
            weight = None if rng.random() < 0.1 else Decimal(rng.randint(5, 600)) / 100
            products.append(ProductInfo(sku, hazmat=rng.random() < 0.06, weight_kg=weight))
        self.unknown_sku = Sku("SKU-NEW-1")  # not in the catalogue
        self.prices = [
            eur(f"{rng.randint(199, 12000 if rng.random() < 0.9 else 90000) / 100:.2f}")
            for _ in range(N_SKUS)
        ]
        self.addresses = []
        for i in range(N_ADDRESSES):
            country = _pick(rng, COUNTRIES)
            if country == "DE" and rng.random() < 0.03:
                postal = rng.choice(("1011", "D-10115", "101150"))
            else:
                postal = f"{rng.randint(1000, 99999):05d}"
            line1 = "Packstation 112" if rng.random() < 0.05 else f"Hauptstrasse {i % 200 + 1}"
            self.addresses.append(Address(country=country, postal_code=postal, city="City", line1=line1))
        self.directory = InMemoryCustomerDirectory(profiles)
        self.catalog = InMemoryProductCatalog(products)
        self.erp = ErpBalances(balances)

    def orders(self, n: int) -> tuple[list[Order], RuleInputs]:
        """``n`` placed orders and the rule inputs (fraud scores and payments for exactly these orders)."""
        rng = random.Random(self.rng.random())
        fraud = InMemoryFraudScores()
        payments = InMemoryPaymentRecords()
        orders = []
        for i in range(n):
            oid = OrderId(f"O-{i:06d}")
            lines = []
            for _ in range(rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6))):
                if rng.random() < 0.0025:
                    sku, price = self.unknown_sku, eur("19.99")
                else:
                    k = rng.randrange(N_SKUS)
                    sku, price = self.skus[k], self.prices[k]
                qty = rng.randint(1, 3) if rng.random() < 0.9 else rng.randint(4, 20)
                lines.append(NewLine(sku, qty, price))
            created = NOW - timedelta(minutes=rng.randint(5, 60 * 24 * 2 + 90))
            wanted = (NOW + timedelta(days=rng.randint(1, 14))).date() if rng.random() < 0.2 else None
            order = Order.create(
                order_id=oid,
                channel=Channel(_pick(rng, CHANNELS)),
                customer=rng.choice(self.customers),
                currency="EUR",
                shipping_address=rng.choice(self.addresses),
                lines=lines,
                actor=ACTOR,
                at=created,
                service_level=_pick(rng, SERVICE),
                requested_delivery_date=wanted,
            )
            order.place(actor=ACTOR, at=created + timedelta(seconds=1))
            orders.append(order)
            r = rng.random()
            if r < 0.93:
                fraud.set(oid, rng.randint(0, 84) if r < 0.90 else rng.randint(85, 100))
            total = order.totals().grand_total
            r = rng.random()
            if r < 0.92:
                payments.authorise(oid, total)
            elif r < 0.95:
                payments.authorise(oid, Money.rounded(total.amount / 2, "EUR"))
        inputs = RuleInputs(
            now=NOW,
            customers=self.directory,
            catalog=self.catalog,
            fraud=fraud,
            payments=payments,
            erp=self.erp,
        )
        return orders, inputs


def load_all(ctx: OrderContext) -> None:
    """Read every field a rule can read, so that port-backed values are loaded before anything is timed."""
    root = ORDER_SCHEMA.root
    for top in ("order", "customer", "ship_to", "payment", "fraud"):
        view = getattr(ctx, top)
        for name in root.fields[top].fields:  # type: ignore[union-attr]
            with contextlib.suppress(RuleEvaluationFailed):
                getattr(view, name)
        if top == "order":
            for line in ctx.order.lines:
                for name in root.fields["order"].fields["lines"].element.fields:  # type: ignore[union-attr]
                    # line.available fails: no stock view is configured, and no rule reads it
                    with contextlib.suppress(RuleEvaluationFailed):
                        getattr(line, name)


def contexts(orders: Sequence[Order], inputs: RuleInputs) -> list[OrderContext]:
    out = []
    for order in orders:
        ctx = order_context(order, inputs)
        load_all(ctx)
        out.append(ctx)
    return out


# -- the peer's view of a context --------------------------------------------------------------------------
class Obj:
    """A plain record for the peer: attributes from keyword arguments."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _amount(m: Money | None) -> Decimal | None:
    return None if m is None else m.amount


def peer_record(ctx: OrderContext) -> Obj:
    """The same values as ``ctx``, with money as Decimal amounts (the peer has no money type; every
    amount here is in EUR) and dates as they are (the peer reads a date as midnight of that day)."""
    o, cu, st, pa = ctx.order, ctx.customer, ctx.ship_to, ctx.payment
    lines = tuple(
        Obj(
            quantity=line.quantity,
            unit_price=line.unit_price.amount,
            hazmat=line.hazmat,
            known_product=line.known_product,
        )
        for line in o.lines
    )
    return Obj(
        order=Obj(
            total=o.total.amount,
            units=o.units,
            service_level=o.service_level,
            created_at=o.created_at,
            requested_delivery_date=o.requested_delivery_date,
            weight_kg=o.weight_kg,
            lines=lines,
        ),
        customer=Obj(
            id=cu.id,
            email=cu.email,
            tags=tuple(cu.tags),
            is_new=cu.is_new,
            orders_placed=cu.orders_placed,
            credit_limit=_amount(cu.credit_limit),
            open_balance=cu.open_balance.amount,
        ),
        ship_to=Obj(country=st.country, postal_code=st.postal_code, is_po_box=st.is_po_box),
        payment=Obj(authorised=pa.authorised, covers_total=pa.covers_total),
        fraud=Obj(score=ctx.fraud.score),
        now=ctx.now,
        today=ctx.today,
    )


def peer_dict(ctx: OrderContext) -> dict[str, Any]:
    """:func:`peer_record` as nested dicts and lists (the peer's default representation)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Obj):
            return {k: plain(v) for k, v in vars(value).items()}
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    result: dict[str, Any] = plain(peer_record(ctx))
    return result
