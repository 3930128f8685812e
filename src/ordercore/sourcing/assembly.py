"""Turning a strategy's choice into a :class:`SourcingPlan`, the same way for every strategy.

A strategy only says how many units of each SKU each chosen node ships. :func:`build_plan` spreads those
units over the order lines (by line id, nodes by node id, so the result does not depend on listing order),
prices each shipment exactly (``ShippingCost.cost`` rounded to the currency), dates it from the node's
calendar and transit time, turns what is left into backorders (promised against the earliest incoming
supply when the policy allows pre-orders), and lists every node that lost with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal

from ordercore.errors import SourcingFailed
from ordercore.money import Money, minor_units
from ordercore.sourcing.candidates import Candidate, Scope, reason_table
from ordercore.sourcing.model import (
    PlannedBackorder,
    PlannedShipment,
    Rejection,
    RejectReason,
    SourcingPlan,
)

__all__ = ["build_plan", "format_amount", "shipment_note"]

_MAX_REASONS = 12


def format_amount(amount: float, currency: str) -> str:
    """A float cost for an explanation, e.g. ``31.20 EUR``."""
    return f"{amount:.{minor_units(currency)}f} {currency}"


def shipment_note(scope: Scope, fills: Sequence[tuple[Candidate, Sequence[int]]]) -> str:
    """Why a plan needs several shipments, when the reason is that no single node can ship it all; or,
    for an order that ships complete, that its one node cannot ship everything."""
    shipping = [f for f in fills if any(f[1])]
    if scope.limit == 1 and not scope.pickup and shipping:
        shipped = sum(shipping[0][1])
        units = sum(scope.coverable)
        if shipped < units:
            return (
                f"ships complete: no node can ship all {units} units;"
                f" {shipping[0][0].node_id} ships {shipped} and the rest waits"
            )
    if len(shipping) < 2:
        return ""
    units = sum(scope.coverable)
    if scope.single_node():
        return ""
    skus = len(scope.skus)
    return f"{len(shipping)} shipments: no single node can ship all {units} units" + (
        f" of the {skus} SKUs" if skus > 1 else ""
    )


def build_plan(
    scope: Scope,
    strategy: str,
    fills: Sequence[tuple[Candidate, Sequence[int]]],
    *,
    losers: Mapping[str, Rejection] | None = None,
    default: RejectReason = RejectReason.NOT_NEEDED,
    notes: Sequence[str] = (),
    optimal: bool = False,
    steps: int = 0,
) -> SourcingPlan:
    """The plan that ships ``fills`` (per chosen candidate, units per SKU in the order of ``scope.skus``).

    Pool nodes not chosen are rejected with their entry in ``losers``, else for ``default``. A pickup is
    ready on the node's dispatch day. Raises :class:`SourcingFailed` when units would wait and the policy
    allows no backorders.
    """
    request = scope.request
    stock = scope.stock
    currency = stock.currency
    static = stock._static
    left = [[ln.quantity for ln in group] for group in scope.lines]
    first = [0] * len(scope.skus)
    shipments: list[PlannedShipment] = []
    total = Decimal(0)
    used: set[str] = set()
    for cand, units in sorted(fills, key=lambda f: f[0].node_id):
        items: list[tuple[str, int]] = []
        for j, u in enumerate(units):
            if not u:
                continue
            group = scope.lines[j]
            rest = left[j]
            k = first[j]
            while u:
                take = min(u, rest[k])
                rest[k] -= take
                u -= take
                items.append((group[k].line_id, take))
                if not rest[k]:
                    k += 1
            first[j] = k
        if not items:
            continue
        items.sort()
        count = sum(q for _, q in items)
        facts = cand.facts
        cost = Money.rounded(facts.node.cost.cost(count, cand.km), currency)
        total += cost.amount
        dispatch = static.dispatch_date(facts, request.at)
        deliver = dispatch if scope.pickup else dispatch + timedelta(days=facts.node.transit.days(cand.km))
        shipments.append(PlannedShipment(cand.node_id, tuple(items), cost, cand.km, dispatch, deliver))
        used.add(cand.node_id)

    backorders = _backorders(scope, left)
    all_notes = list(scope.notes)
    all_notes.extend(notes)
    if backorders:
        waiting = sum(b.quantity for b in backorders)
        promised = sum(b.quantity for b in backorders if b.node_id is not None)
        text = f"{waiting} unit(s) wait for supply"
        if promised:
            text += f" ({promised} pre-ordered against incoming stock)"
        all_notes.append(text)

    ids = scope.ids
    rejected = dict(zip(ids, map(reason_table(stock, default).__getitem__, ids), strict=True))
    rejected.update(scope.rejected)
    if losers:
        rejected.update(losers)
    for node_id in used:
        del rejected[node_id]
    plan = SourcingPlan(
        order_ref=request.order_ref,
        strategy=strategy,
        shipments=tuple(shipments),
        backorders=backorders,
        cost=Money(total, currency),
        rejected=_by_node(rejected, stock.node_ids),
        notes=tuple(all_notes),
        optimal=optimal,
        steps=steps,
    )
    if backorders and not scope.policy.allow_backorder:
        _fail(scope, plan)
    return plan


def _by_node(rejected: dict[str, Rejection], order: tuple[str, ...]) -> tuple[Rejection, ...]:
    """The rejections by node id (walking the network's sorted ids when most of them are there)."""
    if len(rejected) * 3 >= len(order):
        return tuple([rejected[n] for n in order if n in rejected])
    return tuple(map(rejected.__getitem__, sorted(rejected)))


def _backorders(scope: Scope, left: list[list[int]]) -> tuple[PlannedBackorder, ...]:
    """Units no shipment takes: promised against incoming supply (earliest first) when pre-orders are
    allowed, else waiting with no date."""
    out: list[PlannedBackorder] = []
    allowed: dict[str, bool] = {}
    for j, group in enumerate(scope.lines):
        rest = left[j]
        if not any(rest):
            continue
        supplies: list[tuple[date, str]] = []
        room: list[int] = []
        if scope.policy.allow_preorder:
            for day, node_id, qty in scope.stock.incoming(scope.skus[j]):
                ok = allowed.get(node_id)
                if ok is None:
                    ok = allowed[node_id] = scope.may_supply(node_id)
                if ok:
                    supplies.append((day, node_id))
                    room.append(qty)
        s = 0
        for k, line in enumerate(group):
            wait = rest[k]
            while wait and s < len(supplies):
                day, node_id = supplies[s]
                take = min(wait, room[s])
                out.append(PlannedBackorder(line.line_id, take, node_id, day))
                wait -= take
                room[s] -= take
                if not room[s]:
                    s += 1
            if wait:
                out.append(PlannedBackorder(line.line_id, wait))
    out.sort(key=lambda b: (b.line_id, b.expected_on is None, b.expected_on or date.min, b.node_id or ""))
    return tuple(out)


def _fail(scope: Scope, plan: SourcingPlan) -> None:
    reasons = []
    for j, group in enumerate(scope.lines):
        for line in group:
            waiting = plan.backordered(line.line_id)
            if waiting:
                reasons.append(
                    f"line {line.line_id}: {waiting} of {line.quantity} units of {scope.skus[j]} cannot ship now"
                )
    shown = plan.rejected[:_MAX_REASONS]
    reasons.extend(f"{r.node_id}: {r.reason.value}" + (f" ({r.detail})" if r.detail else "") for r in shown)
    if len(plan.rejected) > len(shown):
        reasons.append(f"{len(plan.rejected) - len(shown)} more nodes rejected")
    raise SourcingFailed(
        f"order {plan.order_ref} cannot ship in full now and its policy allows no backorders", reasons=reasons
    )
