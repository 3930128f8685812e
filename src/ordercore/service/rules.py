"""Applying the rule set to orders inside a unit of work: evaluate, record the decision, hold, reject or
accept, and release the rule holds that re-evaluation cleared.

Holds placed by rules carry the actor ``system:rules``. Re-evaluation releases such a hold when no rule
gives its code any more; holds placed by people are never released automatically. A rule hold that a
person released is an override: re-evaluation does not put the same hold back on that order.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ordercore.events import HoldApplied, HoldReleased, RulesEvaluated
from ordercore.lifecycle import OrderStatus, Triggers
from ordercore.order import Order
from ordercore.ports import RecentOrders, UnitOfWork
from ordercore.rules.context import RuleInputs, order_context
from ordercore.rules.engine import RULE_ERROR, Decision, evaluate
from ordercore.rules.model import Outcome, RuleSet
from ordercore.service.sourcing import offline_nodes
from ordercore.values import Actor, Sku

if TYPE_CHECKING:  # handlers import this module: the type only, to avoid a cycle
    from ordercore.service.handlers import Services

__all__ = ["RULES_ACTOR", "accepted_failures", "apply_rules", "overridden_codes", "rule_inputs"]

#: Who holds, rejects and accepts orders on the rules' behalf.
RULES_ACTOR = Actor.system("rules")


def rule_inputs(uow: UnitOfWork, svc: Services, at: datetime) -> RuleInputs:
    """The ports rules read, for one evaluation at ``at``. Stock is read through the unit of work: the
    available-to-promise of a SKU across the online nodes of the network (all nodes without a network),
    leaving out those the store keeps offline."""
    network = svc.network

    def available(sku: Sku) -> int:
        total = 0
        positions = uow.inventory.for_sku(sku)
        offline = offline_nodes(uow)
        for position in positions:
            node_id = position.node_id
            if node_id in offline:
                continue
            if network is None or (node_id in network and network.is_online(node_id)):
                total += position.available(at)
        return total

    return RuleInputs(
        now=at,
        customers=svc.customers,
        erp=svc.erp,
        catalog=svc.catalog,
        fraud=svc.fraud,
        payments=svc.payments,
        recent_orders=svc.recent_orders or _recent_orders_of(uow),
        available=available,
        address_validator=svc.address_validator,
    )


def _recent_orders_of(uow: UnitOfWork) -> RecentOrders | None:
    orders = uow.orders
    return orders if isinstance(orders, RecentOrders) else None


def overridden_codes(order: Order) -> frozenset[str]:
    """Rule hold codes a person released on this order: re-evaluation leaves them alone (``rule_error``
    only while the rules that fail are those that failed when the person released it, see
    :func:`accepted_failures`)."""
    by_rules: set[str] = set()
    overridden: set[str] = set()
    for ev in order.history:
        if isinstance(ev, HoldApplied) and ev.actor == RULES_ACTOR:
            by_rules.add(ev.code)
        elif isinstance(ev, HoldReleased) and ev.actor != RULES_ACTOR and ev.code in by_rules:
            overridden.add(ev.code)
    return frozenset(overridden)


def accepted_failures(order: Order) -> frozenset[str]:
    """The rules whose failure a person accepted on this order: those that could not be evaluated when a
    person last released its ``rule_error`` hold. A failure of any other rule later is a new unknown,
    and holds the order again."""
    failing: frozenset[str] = frozenset()
    accepted: frozenset[str] = frozenset()
    for ev in order.history:
        if isinstance(ev, RulesEvaluated):
            failing = frozenset(v.rule_id for v in ev.verdicts if v.error)
        elif isinstance(ev, HoldReleased) and ev.actor != RULES_ACTOR and ev.code == RULE_ERROR:
            accepted = failing
    return accepted


def apply_rules(
    order: Order, rules: RuleSet, inputs: RuleInputs, *, reason: str, accept: bool = True
) -> Decision | None:
    """Evaluate ``rules`` on ``order`` and act on the decision, as events on the order (not committed).

    Returns None, doing nothing, for an order in a final state or not yet placed. Otherwise records a
    ``RulesEvaluated`` event, then: a rejection rejects the order; holds are applied (except those a person
    overrode); rule holds no longer given are released; and an order that passes with no hold left is
    accepted when ``accept``."""
    if order.status.final or order.status is OrderStatus.DRAFT or order.placed_at is None:
        return None
    at = inputs.now
    decision = evaluate(rules, order_context(order, inputs))
    order.record_rules(
        rule_set=decision.rule_set,
        rule_set_version=decision.version,
        decision=decision.outcome.value,
        verdicts=decision.verdicts,
        actor=RULES_ACTOR,
        at=at,
        reason=reason,
    )
    if decision.outcome is Outcome.REJECT and decision.rejection is not None and not order.accepted:
        code, message = decision.rejection
        order.reject(actor=RULES_ACTOR, at=at, reason=_clip(message or code, 1000), code=code)
        return decision
    skip = overridden_codes(order)
    failed = [v for v in decision.verdicts if v.error]
    if RULE_ERROR in skip and not {v.rule_id for v in failed} <= accepted_failures(order):
        skip -= {RULE_ERROR}  # a rule fails that had not when a person released the hold: hold again
    wanted = {code: message for code, message in decision.holds if code not in skip}
    # a rule that could not be evaluated says nothing: the holds it gave before stay until it says
    unknown = {v.code for v in failed if v.code}
    for code, message in wanted.items():
        if not any(h.code == code for h in order.holds) and _may_hold(order):
            order.hold(code, actor=RULES_ACTOR, at=at, message=_clip(message, 1000))
    for hold in list(order.holds):
        if hold.actor == RULES_ACTOR and hold.code not in wanted and hold.code not in unknown:
            order.release_hold(
                hold.code,
                actor=RULES_ACTOR,
                at=at,
                comment=_clip(f"cleared on re-evaluation ({reason})", 1000),
            )
    if accept and not order.holds and order.status is OrderStatus.PLACED and not order.accepted:
        overridden = sorted(code for code, _ in decision.holds if code in skip)
        why = f"passed {decision.rule_set} v{decision.version}"
        if overridden:
            why += f" ({', '.join(overridden)} released by a person)"
        order.accept(actor=RULES_ACTOR, at=at, reason=_clip(why, 1000))
    return decision


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (the order's limit for reasons and messages), marked if cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _may_hold(order: Order) -> bool:
    return order.lifecycle.transition(order.status, Triggers.HOLD) is not None
