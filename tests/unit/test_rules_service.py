"""Rules in the application: orders evaluated when placed and when something relevant changes, holds that
stack, manual releases with actor and comment, automatic releases on re-evaluation, what-if and hold aging."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ordercore import (
    Actor,
    Address,
    ChangeShippingAddress,
    CustomerId,
    CustomerRef,
    GeoPoint,
    HoldApplied,
    HoldOrder,
    HoldReleased,
    ManualClock,
    NewLine,
    OrderCore,
    OrderStatus,
    ReevaluateOrder,
    ReleaseHold,
    RulesEvaluated,
    SequentialIds,
    Sku,
    StatusChanged,
    bootstrap,
)
from ordercore.errors import InvalidValue
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from ordercore.ports import CustomerProfile
from ordercore.rules import RULE_ERROR, Outcome, load_rules
from ordercore.service.commands import ReceiveStock
from ordercore.service.rules import RULES_ACTOR
from ordercore_adapters.memory.master_data import InMemoryCustomerDirectory, InMemoryPaymentRecords
from tests.unit.factories import AT, eur, place_command

S = OrderStatus
HOME = Address(
    country="DE",
    postal_code="10115",
    city="Berlin",
    line1="Invalidenstr. 1",
    name="Ann Smith",
    coordinates=GeoPoint(52.53, 13.38),
)
RULES = """
name = "acme"
version = "1"

[[rules]]
id = "embargo"
builtin = "embargoed_destination"
params = { countries = ["CU"] }

[[rules]]
id = "address"
builtin = "address_valid"

[[rules]]
id = "big-first-order"
stage = "fraud"
when = "order.total > 100 EUR and customer.is_new"
outcome = "hold"
reason = "review"
message = "first order of {order.total}"

[[rules]]
id = "stock"
builtin = "stock_available"

[[rules]]
id = "payment"
builtin = "payment_authorised"
"""
ALICE = Actor.user("alice")


def make_app(
    rules: str = RULES, store: str = "memory://", **kw: Any
) -> tuple[OrderCore, InMemoryPaymentRecords]:
    payments = InMemoryPaymentRecords()
    cost = ShippingCost("EUR", per_shipment=Decimal(5))
    network = [FulfilmentNode("BER", NodeKind.WAREHOUSE, GeoPoint(52.5, 13.4), cost)]
    app = bootstrap(
        store,
        clock=ManualClock(AT),
        ids=SequentialIds(),
        rules=load_rules(rules),
        customers=InMemoryCustomerDirectory([CustomerProfile(CustomerId("C-OLD"), orders_placed=5)]),
        payments=payments,
        network=network,
        **kw,
    )
    return app, payments


def place(app: OrderCore, *, customer: str = "C-OLD", address: Address = HOME, units: int = 2) -> Any:
    cmd = place_command(
        customer=CustomerRef(CustomerId(customer)),
        shipping_address=address,
        lines=[NewLine(Sku("MUG"), units, eur("40.00"))],
    )
    return app.handle(cmd).order_id


def stock(app: OrderCore, units: int, sku: str = "MUG") -> None:
    app.handle(ReceiveStock(node_id="BER", sku=Sku(sku), quantity=units))


def decisions(app: OrderCore, order_id: Any) -> list[RulesEvaluated]:
    return [e for e in app.history(order_id) if isinstance(e, RulesEvaluated)]


def test_an_order_that_passes_every_rule_is_accepted_with_the_decision_on_record() -> None:
    app, payments = make_app()
    stock(app, 10)
    payments.authorise("O-000001", eur("80.00"))
    order_id = place(app)
    order = app.get_order(order_id)
    assert order.status is S.ACCEPTED and not order.holds
    [decision] = decisions(app, order_id)
    assert decision.decision == "accept" and decision.reason == "placed" and decision.actor == RULES_ACTOR
    assert [v.rule_id for v in decision.verdicts] == [
        "address",
        "embargo",
        "big-first-order",
        "payment",
        "stock",
    ]
    accepted = order.history[-1]
    assert isinstance(accepted, StatusChanged) and accepted.status is S.ACCEPTED
    assert "passed acme v1" in accepted.reason


def test_holds_stack_with_reasons_and_clear_when_re_evaluation_no_longer_gives_them() -> None:
    app, payments = make_app()
    order_id = place(app, customer="C-NEW", units=3)  # 120 EUR, new customer, no stock, no payment
    order = app.get_order(order_id)
    assert order.status is S.ON_HOLD
    assert {h.code for h in order.holds} == {"review", "out_of_stock", "payment_pending"}
    assert next(h for h in order.holds if h.code == "review").message == "first order of 120.00 EUR"
    # stock arrives: the stock hold goes by itself, the others stay
    stock(app, 5)
    order = app.get_order(order_id)
    assert {h.code for h in order.holds} == {"review", "payment_pending"}
    released = [e for e in order.history if isinstance(e, HoldReleased)]
    assert released[-1].code == "out_of_stock" and released[-1].actor == RULES_ACTOR
    assert "stock of MUG at BER changed" in released[-1].comment
    # the payment is authorised: the caller says so, and every held order is looked at again
    payments.authorise(order_id, eur("120.00"))
    app.reevaluate_held(["payment_pending"], reason="payment authorised")
    assert {h.code for h in app.get_order(order_id).holds} == {"review"}
    # a person reviews the order and releases the last hold: the order goes on and is accepted
    app.handle(ReleaseHold(order_id=order_id, code="review", comment="called the customer", actor=ALICE))
    order = app.get_order(order_id)
    assert order.status is S.ACCEPTED and not order.holds
    manual = next(e for e in order.history if isinstance(e, HoldReleased) and e.code == "review")
    assert manual.actor == ALICE and manual.comment == "called the customer"


def test_a_hold_a_person_released_is_not_put_back_by_re_evaluation() -> None:
    app, _ = make_app()
    stock(app, 10)
    order_id = place(app)  # held: payment pending
    app.handle(ReleaseHold(order_id=order_id, code="payment_pending", comment="pays on invoice", actor=ALICE))
    assert app.get_order(order_id).status is S.ACCEPTED
    holds_applied = [e for e in app.history(order_id) if isinstance(e, HoldApplied)]
    assert len(holds_applied) == 1


def test_a_manual_hold_is_never_released_by_the_rules() -> None:
    app, payments = make_app()
    stock(app, 10)
    order_id = place(app)
    app.handle(HoldOrder(order_id=order_id, code="customer_called", message="wait", actor=ALICE))
    payments.authorise(order_id, eur("80.00"))
    app.handle(ReevaluateOrder(order_id=order_id, reason="payment authorised"))
    order = app.get_order(order_id)
    assert [h.code for h in order.holds] == ["customer_called"] and order.status is S.ON_HOLD


def test_an_embargoed_destination_is_rejected_with_the_reason() -> None:
    app, _ = make_app()
    havana = Address(country="CU", postal_code="10400", city="Havana", line1="Calle 1", name="X")
    order = app.get_order(place(app, address=havana))
    assert order.status is S.REJECTED
    rejected = order.history[-1]
    assert isinstance(rejected, StatusChanged) and rejected.code == "embargo"
    assert rejected.reason == "'CU' is under embargo"


def test_changing_the_address_evaluates_the_order_again() -> None:
    app, payments = make_app()
    stock(app, 10)
    payments.authorise("O-000001", eur("80.00"))
    nameless = Address(country="DE", postal_code="1011", city="Berlin", line1="Invalidenstr. 1")
    order_id = place(app, address=nameless)
    assert {h.code for h in app.get_order(order_id).holds} == {"address_invalid"}
    app.handle(ChangeShippingAddress(order_id=order_id, address=HOME))
    order = app.get_order(order_id)
    assert order.status is S.ACCEPTED
    assert [d.reason for d in decisions(app, order_id)] == ["placed", "shipping address changed"]


def test_rule_errors_hold_the_order_for_a_person() -> None:
    app, _ = make_app(RULES + '\n[[rules]]\nid = "fraud"\nbuiltin = "fraud_score"\n')  # no fraud scorer
    stock(app, 10)
    order = app.get_order(place(app))
    assert RULE_ERROR in {h.code for h in order.holds}
    [decision] = decisions(app, order.id)
    assert "fraud scorer" in next(v for v in decision.verdicts if v.rule_id == "fraud").error


def test_what_if_reports_the_orders_whose_decision_would_change() -> None:
    app, payments = make_app()
    stock(app, 10)
    for i in range(1, 4):
        payments.authorise(f"O-{i:06d}", eur("1000.00"))
    small = place(app, units=1)
    big = place(app, units=5)
    new_big = place(app, customer="C-NEW", units=1)
    stricter = load_rules(RULES.replace("order.total > 100 EUR and customer.is_new", "order.total > 100 EUR"))
    report = app.what_if(stricter, [small, big, new_big])
    assert report.evaluated == 3
    assert [c.order_id for c in report.changes] == [big]
    change = report.changes[0]
    assert change.before is not None and change.before.outcome is Outcome.ACCEPT
    assert change.after.hold_codes == {"review"}
    assert change.describe() == "O-000002: accept -> hold review"
    assert app.get_order(big).status is S.ACCEPTED  # nothing was written


def test_hold_aging_per_reason() -> None:
    app, _ = make_app()
    first = place(app)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(hours=5))
    place(app, customer="C-NEW", units=3)
    aging = {a.code: a for a in app.hold_aging()}
    assert aging["payment_pending"].count == 2 and aging["payment_pending"].oldest_order_id == first
    assert aging["payment_pending"].oldest_age == timedelta(hours=5)
    assert aging["review"].count == 1 and aging["review"].oldest_age == timedelta(0)
    assert next(h.order_id for h in app.held_orders("payment_pending")) == first


@pytest.mark.parametrize("scheme", ["sqlite", "memory"])
def test_decisions_survive_the_store(tmp_path: Path, scheme: str) -> None:
    store = f"sqlite:///{tmp_path / 'rules.db'}" if scheme == "sqlite" else "memory://"
    app, _ = make_app(store=store)
    order_id = place(app, customer="C-NEW", units=3)
    order = app.get_order(order_id)
    [decision] = decisions(app, order_id)
    assert decision.decision == "hold" and {v.rule_id for v in decision.verdicts if v.matched} == {
        "big-first-order",
        "stock",
        "payment",
    }
    assert order.status is S.ON_HOLD and len(order.holds) == 3
    app.close()


def test_without_a_rule_set_nothing_is_evaluated() -> None:
    app = bootstrap(clock=ManualClock(AT), ids=SequentialIds())
    order_id = app.handle(place_command()).order_id
    assert app.get_order(order_id).status is S.PLACED and not decisions(app, order_id)
    assert app.reevaluate_held(reason="x") == []
    assert not app.handle(ReevaluateOrder(order_id=order_id)).changed


def test_a_new_rule_set_version_takes_over_for_later_orders() -> None:
    app, payments = make_app()
    stock(app, 10)
    payments.authorise("O-000001", eur("1000.00"))
    payments.authorise("O-000002", eur("1000.00"))
    first = place(app, units=3)
    assert app.get_order(first).status is S.ACCEPTED
    stricter = load_rules(RULES.replace('version = "1"', 'version = "2"').replace(" and customer.is_new", ""))
    assert app.use_rules(stricter) is not None and app.rules is stricter
    second = place(app, units=3)
    assert {h.code for h in app.get_order(second).holds} == {"review"}
    [decision] = decisions(app, second)
    assert decision.rule_set_version == "2"
    assert app.get_order(first).status is S.ACCEPTED


def test_long_rendered_messages_are_clipped_not_fatal() -> None:
    rules = RULES.replace(
        'message = "first order of {order.total}"',
        'message = "first order of {order.total} ' + "x" * 1500 + '"',
    ).replace(
        'params = { countries = ["CU"] }', 'params = { countries = ["CU"] }\nmessage = "' + "y" * 1500 + '"'
    )
    app, _ = make_app(rules)
    held = app.get_order(place(app, customer="C-NEW", units=3))
    review = next(h for h in held.holds if h.code == "review")
    assert len(review.message) == 1000 and review.message.endswith("…")
    havana = Address(country="CU", postal_code="10400", city="Havana", line1="Calle 1", name="X")
    rejected = app.get_order(place(app, address=havana))
    assert rejected.status is S.REJECTED and len(rejected.history[-1].reason) == 1000


# -- rules that cannot be evaluated ---------------------------------------------------------------------------
FAILING_RULES = """
name = "shop"
version = "1"

[[rules]]
id = "paid"
builtin = "payment_authorised"

[[rules]]
id = "fraud"
stage = "fraud"
python = "fraud"
outcome = "hold"
reason = "fraud_hit"
"""


class FlakyPayments(InMemoryPaymentRecords):
    """Payment records whose service can be down: then every question about them raises."""

    down = False

    def authorised(self, order_id: Any) -> Any:
        if self.down:
            raise ConnectionError("payment service unreachable")
        return super().authorised(order_id)


def failing_rules_app(fraud: Any) -> tuple[OrderCore, FlakyPayments]:
    payments = FlakyPayments()
    app = bootstrap(
        clock=ManualClock(AT),
        ids=SequentialIds(),
        rules=load_rules(FAILING_RULES, python={"fraud": fraud}),
        payments=payments,
    )
    return app, payments


def test_a_rule_that_cannot_be_evaluated_keeps_the_hold_it_gave_and_a_new_failure_holds_again() -> None:
    fraud_down = [True]

    def fraud(ctx: Any) -> bool:
        if fraud_down[0]:
            raise RuntimeError("fraud backend down")
        return False

    app, payments = failing_rules_app(fraud)
    order_id = place(app)
    assert {h.code for h in app.get_order(order_id).holds} == {"payment_pending", RULE_ERROR}
    app.handle(ReleaseHold(order_id=order_id, code=RULE_ERROR, actor=ALICE, comment="fraud checked by hand"))
    fraud_down[0], payments.down = False, True  # the next day: fraud back, payments down
    app.reevaluate_held(["payment_pending"], reason="nightly")
    order = app.get_order(order_id)
    # the payment rule failed: its hold stays, and its failure (not the one alice checked) holds again
    assert order.status is S.ON_HOLD and {h.code for h in order.holds} == {"payment_pending", RULE_ERROR}
    payments.down = False
    payments.authorise(order_id, eur("80.00"))
    app.reevaluate_held(reason="payments back")
    assert app.get_order(order_id).status is S.ACCEPTED


def test_a_failure_a_person_accepted_does_not_hold_the_order_again_while_it_lasts() -> None:
    def fraud(ctx: Any) -> bool:
        raise RuntimeError("fraud backend down")

    app, payments = failing_rules_app(fraud)
    order_id = place(app)
    app.handle(ReleaseHold(order_id=order_id, code=RULE_ERROR, actor=ALICE, comment="fraud checked by hand"))
    payments.authorise(order_id, eur("80.00"))
    app.reevaluate_held(reason="payment authorised")  # fraud still fails: the failure alice accepted
    assert app.get_order(order_id).status is S.ACCEPTED


@pytest.mark.parametrize("returned", [None, 0, 1, "no", [], float("nan")])
def test_a_python_rule_returning_anything_but_a_bool_is_a_rule_error_never_a_pass(returned: Any) -> None:
    app, payments = failing_rules_app(lambda ctx: returned)
    payments.authorise("O-000001", eur("80.00"))
    order_id = place(app)
    order = app.get_order(order_id)
    assert order.status is S.ON_HOLD and [h.code for h in order.holds] == [RULE_ERROR]
    [verdict] = [v for v in decisions(app, order_id)[-1].verdicts if v.rule_id == "fraud"]
    assert "not True or False" in verdict.error


# -- which held orders are evaluated again ------------------------------------------------------------------
def test_stock_of_another_sku_does_not_evaluate_an_order_held_for_stock_again() -> None:
    app, payments = make_app()
    payments.authorise("O-000001", eur("80.00"))
    order_id = place(app)
    assert [h.code for h in app.get_order(order_id).holds] == ["out_of_stock"]
    version = app.get_order(order_id).version
    for _ in range(3):
        stock(app, 5, sku="DESK")  # none of its lines: nothing to evaluate again
    assert app.get_order(order_id).version == version and len(decisions(app, order_id)) == 1
    stock(app, 5)  # its mugs arrived
    assert app.get_order(order_id).status is S.ACCEPTED and len(decisions(app, order_id)) == 2


def test_orders_held_for_codes_only_an_earlier_rule_set_gives_are_evaluated_again_by_default() -> None:
    app, _ = make_app()
    stock(app, 10)
    order_id = place(app)  # no payment yet
    assert [h.code for h in app.get_order(order_id).holds] == ["payment_pending"]
    retired = '[[rules]]\nid = "payment"\nbuiltin = "payment_authorised"\n'
    assert retired in RULES
    app.use_rules(load_rules(RULES.replace(retired, "").replace('version = "1"', 'version = "2"')))
    assert "payment_pending" not in app.rules.codes()  # type: ignore[union-attr]
    [result] = app.reevaluate_held(reason="payment rule retired")
    assert result.order_id == order_id and app.get_order(order_id).status is S.ACCEPTED


@pytest.mark.parametrize("code", ["a\x00b", "\udce9", "", 7])
def test_a_hold_code_no_store_can_keep_is_refused_naming_the_parameter(code: Any) -> None:
    app, _ = make_app()
    with pytest.raises(InvalidValue) as info:
        app.held_orders(code)
    assert info.value.field == "code"
    with pytest.raises(InvalidValue) as info:
        app.reevaluate_held([code], reason="x")
    assert info.value.field == "codes[0]"


@pytest.mark.parametrize("reason", [5, "x" * 1001, "a\x00b"])
def test_a_bad_reason_for_re_evaluation_is_refused_before_any_order_is_read(reason: Any) -> None:
    app, _ = make_app()
    place(app)  # held: out of stock, payment pending
    with pytest.raises(InvalidValue) as info:
        app.reevaluate_held(reason=reason)
    assert info.value.field == "reason"


def test_re_evaluating_every_held_order_leaves_those_held_by_people_only_alone() -> None:
    app, payments = make_app()
    stock(app, 10)
    payments.authorise("O-000001", eur("80.00"))
    order_id = place(app)  # passes every rule: accepted
    app.handle(HoldOrder(order_id=order_id, code="customer_call", actor=ALICE))
    version = app.get_order(order_id).version
    assert app.reevaluate_held(reason="nightly") == []
    assert app.get_order(order_id).version == version  # no decision recorded for a person's hold
