"""Every built-in rule: what makes it match, what does not, and the inputs it reports."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from ordercore import (
    Address,
    Channel,
    CustomerId,
    CustomerRef,
    InvalidRuleSet,
    Money,
    NewLine,
    OrderId,
    Sku,
)
from ordercore.ports import CustomerProfile, OrderDigest, ProductInfo
from ordercore.rules import (
    BUILTINS,
    RULE_ERROR,
    Outcome,
    RuleInputs,
    RuleSet,
    builtin_rule,
    evaluate,
    is_po_box,
    order_context,
    parse_duration,
)
from ordercore.rules.engine import Decision
from ordercore_adapters.memory.master_data import (
    InMemoryCustomerDirectory,
    InMemoryFraudScores,
    InMemoryPaymentRecords,
    InMemoryProductCatalog,
    InMemoryRecentOrders,
)
from tests.unit.factories import AT, eur, make_order

HOME = Address(country="DE", postal_code="10115", city="Berlin", line1="Invalidenstr. 1", name="Ann Smith")


class Erp:
    def __init__(self, balance: str) -> None:
        self.balance = balance

    def open_balance(self, customer_id: CustomerId, currency: str) -> Money:
        return Money.of(self.balance, currency)

    def post_sales_order(self, order: Any) -> str:  # pragma: no cover - not used by rules
        return "SO-1"


def order(
    *,
    address: Address = HOME,
    service: str = "standard",
    lines: list[NewLine] | None = None,
    channel: str = "web",
    order_id: str = "O-1",
) -> Any:
    return make_order(
        new_lines=lines or [NewLine(Sku("A"), 2, eur("50.00")), NewLine(Sku("B"), 1, eur("20.00"))],
        shipping_address=address,
        service_level=service,
        channel=Channel(channel),
        order_id=order_id,
    )


def decide(
    rule_name: str, the_order: Any = None, *, inputs: dict[str, Any] | None = None, **params: Any
) -> Decision:
    rules = RuleSet("b", "1", (builtin_rule(rule_name, **params),))
    ctx = order_context(the_order if the_order is not None else order(), RuleInputs(now=AT, **(inputs or {})))
    return evaluate(rules, ctx)


def held(decision: Decision) -> set[str]:
    return set(decision.hold_codes)


def test_every_builtin_is_documented_with_defaults() -> None:
    assert set(BUILTINS) == {
        "stock_available",
        "credit_limit",
        "embargoed_destination",
        "hazmat_restriction",
        "po_box_restriction",
        "weight_limit",
        "size_limit",
        "address_valid",
        "duplicate_order",
        "order_value_limit",
        "sku_quantity_limit",
        "payment_authorised",
        "fraud_score",
    }
    for b in BUILTINS.values():
        assert b.description and b.reason_code and b.message


def test_stock_available_holds_when_the_network_is_short() -> None:
    stock = {"A": 5, "B": 0}
    decision = decide("stock_available", inputs={"available": lambda sku: stock[str(sku)]})
    assert held(decision) == {"out_of_stock"}
    assert dict(decision.verdicts[0].inputs)["B"] == "'needs 1, available 0'"
    stock["B"] = 1
    assert (
        decide("stock_available", inputs={"available": lambda sku: stock[str(sku)]}).outcome is Outcome.ACCEPT
    )


def test_credit_limit_adds_the_open_balance_to_the_order() -> None:
    customers = InMemoryCustomerDirectory(
        [CustomerProfile(CustomerId("C-1"), 3, credit_limit=eur("1000.00"))]
    )
    near = decide("credit_limit", inputs={"customers": customers, "erp": Erp("900")})  # 900 + 120 > 1000
    assert held(near) == {"credit_limit"}
    assert "open balance 900.00 EUR + order 120.00 EUR" in near.holds[0][1]
    assert (
        decide("credit_limit", inputs={"customers": customers, "erp": Erp("880")}).outcome is Outcome.ACCEPT
    )
    no_limit = InMemoryCustomerDirectory()
    assert decide("credit_limit", inputs={"customers": no_limit, "erp": Erp("1e6")}).outcome is Outcome.ACCEPT
    strict = decide("credit_limit", inputs={"customers": no_limit, "erp": Erp("0")}, hold_without_limit=True)
    assert held(strict) == {"credit_limit"}


def test_embargoed_destinations_are_rejected() -> None:
    cuba = Address(country="CU", postal_code="10400", city="Havana", line1="Calle 1", name="X")
    decision = decide("embargoed_destination", order(address=cuba), countries=["cu", "IR"])
    assert decision.outcome is Outcome.REJECT and decision.rejection == ("embargo", "'CU' is under embargo")
    assert decide("embargoed_destination", countries=["CU"]).outcome is Outcome.ACCEPT


def catalog(**products: ProductInfo) -> InMemoryProductCatalog:
    return InMemoryProductCatalog(products.values())


def test_hazmat_is_restricted_by_destination_service_and_class() -> None:
    goods = catalog(A=ProductInfo(Sku("A"), hazmat=True, hazmat_class="3"), B=ProductInfo(Sku("B")))
    by_air = order(service="air")
    params = {"countries": ["DE", "AT"], "services": ["air"]}
    assert held(decide("hazmat_restriction", by_air, inputs={"catalog": goods}, **params)) == {
        "hazmat_restricted"
    }
    assert (
        decide("hazmat_restriction", order(service="ground"), inputs={"catalog": goods}, **params).outcome
        is Outcome.ACCEPT
    )
    other_class = decide("hazmat_restriction", by_air, inputs={"catalog": goods}, classes=["9"], **params)
    assert other_class.outcome is Outcome.ACCEPT
    safe = catalog(A=ProductInfo(Sku("A")), B=ProductInfo(Sku("B")))
    assert decide("hazmat_restriction", by_air, inputs={"catalog": safe}, **params).outcome is Outcome.ACCEPT


@pytest.mark.parametrize(
    ("line1", "po_box"),
    [
        ("PO Box 123", True),
        ("P.O. Box 9", True),
        ("Postfach 10 20 30", True),
        ("Packstation 105", True),
        ("Boîte postale 12", True),
        ("Apartado de Correos 44", True),
        ("Invalidenstr. 1", False),
        ("Boxhagener Str. 5", False),
        ("12 Post Road", False),
    ],
)
def test_po_boxes_are_recognised(line1: str, po_box: bool) -> None:
    address = Address(country="DE", postal_code="10115", city="Berlin", line1=line1, name="A")
    assert is_po_box(address) is po_box


def test_po_box_restriction_applies_to_the_listed_services() -> None:
    box = Address(
        country="US", postal_code="10001", city="New York", line1="PO Box 77", region="NY", name="A"
    )
    assert held(
        decide("po_box_restriction", order(address=box, service="express"), services=["express"])
    ) == {"po_box"}
    assert (
        decide("po_box_restriction", order(address=box, service="mail"), services=["express"]).outcome
        is Outcome.ACCEPT
    )


def test_weight_and_size_limits_use_product_data() -> None:
    goods = catalog(
        A=ProductInfo(Sku("A"), weight_kg=Decimal("12.5"), length_cm=Decimal("90"), width_cm=Decimal("10")),
        B=ProductInfo(Sku("B"), weight_kg=Decimal("1")),
    )
    heavy = decide("weight_limit", inputs={"catalog": goods}, max_kg=25)  # 2 x 12.5 + 1 = 26 kg
    assert held(heavy) == {"overweight"} and "26.0 kg" in heavy.holds[0][1]
    assert decide("weight_limit", inputs={"catalog": goods}, max_kg="26").outcome is Outcome.ACCEPT
    assert held(decide("size_limit", inputs={"catalog": goods}, max_side_cm=80)) == {"oversize"}
    assert decide("size_limit", inputs={"catalog": goods}, max_side_cm=90).outcome is Outcome.ACCEPT


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        (HOME, True),
        (Address(country="DE", postal_code="1011", city="Berlin", line1="X 1", name="A"), False),
        (Address(country="NL", postal_code="1012 AB", city="Amsterdam", line1="Dam 1", name="A"), True),
        (Address(country="GB", postal_code="SW1A 1AA", city="London", line1="1 Mall", name="A"), True),
        (Address(country="GB", postal_code="12345", city="London", line1="1 Mall", name="A"), False),
        (Address(country="US", postal_code="94105", city="San Francisco", line1="1 Main", name="A"), False),
        (
            Address(
                country="US", postal_code="94105", city="SF", line1="1 Main", region="CA", company="Acme"
            ),
            True,
        ),
        (Address(country="DE", postal_code="10115", city="Berlin", line1="X 1"), False),
    ],
)
def test_address_validity_checks_required_fields_and_postal_formats(address: Address, ok: bool) -> None:
    decision = decide("address_valid", order(address=address))
    assert (decision.outcome is Outcome.ACCEPT) is ok
    if not ok:
        assert decision.hold_codes == {"address_invalid"}
        assert "problems" in dict(decision.verdicts[0].inputs)


def test_duplicate_orders_within_the_window_are_held() -> None:
    recent = InMemoryRecentOrders()
    earlier = order(order_id="O-0")
    recent.record(earlier)
    same = order(order_id="O-1")
    decision = decide("duplicate_order", same, inputs={"recent_orders": recent}, window="2h")
    assert held(decision) == {"possible_duplicate"}
    assert dict(decision.verdicts[0].inputs)["same_items_as"] == "['O-0']"
    other = order(order_id="O-2", lines=[NewLine(Sku("A"), 1, eur("50.00"))])
    assert decide("duplicate_order", other, inputs={"recent_orders": recent}).outcome is Outcome.ACCEPT
    later = RuleInputs(now=AT + timedelta(hours=3), recent_orders=recent)
    rules = RuleSet("b", "1", (builtin_rule("duplicate_order", window="2h"),))
    assert evaluate(rules, order_context(same, later)).outcome is Outcome.ACCEPT
    digest = recent.placed_since(CustomerId("C-1"), AT)[0]
    assert digest == OrderDigest(
        OrderId("O-0"), CustomerId("C-1"), AT, frozenset({("A", 2), ("B", 1)}), eur("120.00")
    )


def test_order_value_limits_are_per_currency_and_scoped_by_channel() -> None:
    assert held(decide("order_value_limit", max="100 EUR")) == {"order_value_limit"}
    assert decide("order_value_limit", max={"EUR": "500", "USD": "600"}).outcome is Outcome.ACCEPT
    assert decide("order_value_limit", max="100 USD").hold_codes == {RULE_ERROR}
    rules = RuleSet(
        "b", "1", (builtin_rule("order_value_limit", max="100 EUR", channels=frozenset({"pos"})),)
    )
    assert evaluate(rules, order_context(order(), RuleInputs(now=AT))).outcome is Outcome.ACCEPT


def test_sku_quantity_limits() -> None:
    assert held(decide("sku_quantity_limit", max_units=1)) == {"quantity_limit"}
    assert decide("sku_quantity_limit", max_units=2).outcome is Outcome.ACCEPT
    assert decide("sku_quantity_limit", max_units=1, skus=["B"]).outcome is Outcome.ACCEPT


def test_payment_must_be_authorised_for_the_whole_order() -> None:
    payments = InMemoryPaymentRecords()
    assert held(decide("payment_authorised", inputs={"payments": payments})) == {"payment_pending"}
    payments.authorise("O-1", eur("100.00"))
    assert held(decide("payment_authorised", inputs={"payments": payments})) == {"payment_pending"}
    partial_ok = decide("payment_authorised", inputs={"payments": payments}, require_full_amount=False)
    assert partial_ok.outcome is Outcome.ACCEPT
    payments.authorise("O-1", eur("20.00"))
    assert decide("payment_authorised", inputs={"payments": payments}).outcome is Outcome.ACCEPT


def test_fraud_scores_over_the_threshold_are_held() -> None:
    scores = InMemoryFraudScores({"O-1": 91})
    decision = decide("fraud_score", inputs={"fraud": scores}, threshold=90)
    assert held(decision) == {"fraud_review"} and "fraud score 91" in decision.holds[0][1]
    assert decide("fraud_score", inputs={"fraud": scores}, threshold=95).outcome is Outcome.ACCEPT
    unknown = InMemoryFraudScores()
    assert held(decide("fraud_score", inputs={"fraud": unknown})) == {"fraud_review"}
    assert decide("fraud_score", inputs={"fraud": unknown}, hold_when_unknown=False).outcome is Outcome.ACCEPT


def test_bad_parameters_are_refused_with_every_problem() -> None:
    with pytest.raises(InvalidRuleSet) as info:
        builtin_rule("weight_limit", max_kg=-1, services="air", colour="red")
    codes = [p.code for p in info.value.problems]
    assert codes.count("bad_param") == 2 and "unknown_param" in codes
    with pytest.raises(InvalidRuleSet):
        builtin_rule("embargoed_destination")  # countries are required
    with pytest.raises(InvalidRuleSet):
        builtin_rule("order_value_limit", max="lots")
    with pytest.raises(InvalidRuleSet):
        builtin_rule("duplicate_order", window="soon")
    with pytest.raises(InvalidRuleSet):
        builtin_rule("nope")
    assert parse_duration("90m") == timedelta(minutes=90)


def test_a_customer_unknown_to_the_directory_is_new() -> None:
    rules = RuleSet("b", "1", ())
    ctx = order_context(order(), RuleInputs(now=AT, customers=InMemoryCustomerDirectory()))
    assert evaluate(rules, ctx).outcome is Outcome.ACCEPT
    assert ctx.customer.is_new and not ctx.customer.known and ctx.customer.orders_placed == 0
    vip = make_order(customer=CustomerRef(CustomerId("C-7"), segment="vip"))
    ctx = order_context(vip, RuleInputs(now=AT))
    assert ctx.customer.segment == "vip" and ctx.order.units == 3
