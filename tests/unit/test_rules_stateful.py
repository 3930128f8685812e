"""A state machine over the rules in the application: orders placed, stock received, payments authorised,
holds placed and released by people, addresses changed, orders re-evaluated; after every step the
invariants of holds and decisions must hold for every order."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ordercore import (
    Actor,
    Address,
    ChangeShippingAddress,
    Channel,
    CustomerId,
    CustomerRef,
    GeoPoint,
    HoldApplied,
    HoldOrder,
    HoldReleased,
    IllegalTransition,
    ManualClock,
    NewLine,
    Order,
    OrderStatus,
    PlaceOrder,
    ReevaluateOrder,
    ReleaseHold,
    RulesEvaluated,
    SequentialIds,
    Sku,
    StatusChanged,
    bootstrap,
)
from ordercore.inventory import FulfilmentNode, NodeKind, ShippingCost
from ordercore.ports import CustomerProfile
from ordercore.rules import RULE_ERROR, Outcome, evaluate, load_rules, order_context
from ordercore.service.commands import ReceiveStock
from ordercore.service.rules import RULES_ACTOR, overridden_codes, rule_inputs
from ordercore_adapters.memory.master_data import InMemoryCustomerDirectory, InMemoryPaymentRecords
from tests.unit.factories import AT, eur

RULES = load_rules(
    """
name = "machine"
version = "1"
[[rules]]
id = "embargo"
builtin = "embargoed_destination"
params = { countries = ["CU"] }
[[rules]]
id = "address"
builtin = "address_valid"
[[rules]]
id = "review"
stage = "fraud"
when = "order.total > 100 EUR and customer.is_new"
outcome = "hold"
reason = "review"
[[rules]]
id = "stock"
builtin = "stock_available"
[[rules]]
id = "paid"
builtin = "payment_authorised"
"""
)
GOOD = Address(
    country="DE",
    postal_code="10115",
    city="Berlin",
    line1="Main 1",
    name="A",
    coordinates=GeoPoint(52.5, 13.4),
)
NAMELESS = Address(country="DE", postal_code="10115", city="Berlin", line1="Main 1")
HAVANA = Address(country="CU", postal_code="10400", city="Havana", line1="Calle 1", name="B")
ALICE = Actor.user("alice")
SKUS = ["A", "B"]


class RulesMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.payments = InMemoryPaymentRecords()
        cost = ShippingCost("EUR", per_shipment=Decimal(5))
        self.app = bootstrap(
            clock=ManualClock(AT),
            ids=SequentialIds(),
            rules=RULES,
            customers=InMemoryCustomerDirectory([CustomerProfile(CustomerId("OLD"), orders_placed=3)]),
            payments=self.payments,
            network=[FulfilmentNode("N", NodeKind.WAREHOUSE, GeoPoint(52.5, 13.4), cost)],
        )
        self.ids: list[Any] = []

    @rule(
        customer=st.sampled_from(["OLD", "NEW"]),
        address=st.sampled_from([GOOD, GOOD, NAMELESS, HAVANA]),
        sku=st.sampled_from(SKUS),
        units=st.integers(1, 4),
    )
    def place(self, customer: str, address: Address, sku: str, units: int) -> None:
        result = self.app.handle(
            PlaceOrder(
                channel=Channel("web"),
                customer=CustomerRef(CustomerId(customer)),
                currency="EUR",
                shipping_address=address,
                lines=[NewLine(Sku(sku), units, eur("40.00"))],
            )
        )
        self.ids.append(result.order_id)

    @rule(sku=st.sampled_from(SKUS), units=st.integers(1, 6))
    def receive(self, sku: str, units: int) -> None:
        self.app.handle(ReceiveStock(node_id="N", sku=Sku(sku), quantity=units))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def authorise(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self.ids))
        self.payments.authorise(order_id, eur("200.00"))
        self.app.reevaluate_held(["payment_pending"], reason="payment authorised")

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def person_releases(self, data: st.DataObject) -> None:
        order = self.app.get_order(data.draw(st.sampled_from(self.ids)))
        if order.holds:
            code = data.draw(st.sampled_from([h.code for h in order.holds]))
            self.app.handle(ReleaseHold(order_id=order.id, code=code, comment="checked", actor=ALICE))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def person_holds(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self.ids))
        with contextlib.suppress(IllegalTransition):
            self.app.handle(HoldOrder(order_id=order_id, code="manual", message="wait", actor=ALICE))

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), address=st.sampled_from([GOOD, NAMELESS]))
    def change_address(self, data: st.DataObject, address: Address) -> None:
        order_id = data.draw(st.sampled_from(self.ids))
        with contextlib.suppress(IllegalTransition):
            self.app.handle(ChangeShippingAddress(order_id=order_id, address=address, actor=ALICE))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def reevaluate(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from(self.ids))
        self.app.handle(ReevaluateOrder(order_id=order_id, reason="look again"))
        order = self.app.get_order(order_id)
        if order.accepted or order.status.final:
            return
        # right after a re-evaluation, the rule holds are exactly what the rules give, less overrides
        with self.app.store.unit_of_work() as uow:
            decision = evaluate(
                RULES, order_context(order, rule_inputs(uow, self.app.services, self.app.clock.now()))
            )
        rule_holds = {h.code for h in order.holds if h.actor == RULES_ACTOR}
        assert rule_holds == set(decision.hold_codes) - overridden_codes(order)

    def orders(self) -> list[Order]:
        return [self.app.get_order(i) for i in self.ids]

    @invariant()
    def holds_and_decisions_are_consistent(self) -> None:
        for order in self.orders() if hasattr(self, "ids") else []:
            assert Order.replay(order.history) == order
            if order.status is OrderStatus.ACCEPTED or order.accepted:
                assert (
                    not any(h.actor == RULES_ACTOR for h in order.holds)
                    or order.status is OrderStatus.ON_HOLD
                )
            if order.status is OrderStatus.ON_HOLD:
                assert order.holds
            last_decision: RulesEvaluated | None = None
            released_by_person: set[str] = set()
            for ev in order.history:
                if isinstance(ev, RulesEvaluated):
                    last_decision = ev
                elif isinstance(ev, HoldApplied) and ev.actor == RULES_ACTOR:
                    # a rule hold always follows a decision that gave it, and is never one a person released
                    assert last_decision is not None
                    given = {v.code for v in last_decision.verdicts if v.matched} | (
                        {RULE_ERROR} if any(v.error for v in last_decision.verdicts) else set()
                    )
                    assert ev.code in given
                    assert ev.code not in released_by_person
                elif isinstance(ev, HoldReleased):
                    if ev.actor == RULES_ACTOR:
                        assert ev.code != "manual"  # the rules never release a person's hold
                    else:
                        released_by_person.add(ev.code)
                elif isinstance(ev, StatusChanged) and ev.status is OrderStatus.REJECTED:
                    assert last_decision is not None and last_decision.decision == Outcome.REJECT.value
            if order.status is OrderStatus.REJECTED:
                assert order.shipping_address.country == "CU"


RulesMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestRulesMachine = RulesMachine.TestCase
