"""Strategies that search node sets: :class:`CostOptimal` (the cheapest plan) and :class:`FewestShipments`
(the fewest nodes, then the cheapest). Both ship as many units as the network can under the policy first.
"""

from __future__ import annotations

import attrs

from ordercore.errors import InvalidValue
from ordercore.money import minor_units
from ordercore.sourcing.assembly import build_plan, format_amount, shipment_note
from ordercore.sourcing.candidates import Scope, detailed, rejection, scope_for
from ordercore.sourcing.model import Rejection, RejectReason, SourcingPlan, SourcingRequest
from ordercore.sourcing.network import NetworkStock
from ordercore.sourcing.search import SearchResult, search_node_sets

__all__ = ["CostOptimal", "FewestShipments"]

_R = RejectReason


def _check_budget(max_steps: object, time_budget: object) -> None:
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise InvalidValue("must be a whole number >= 1", field="max_steps", value=max_steps)
    if time_budget is not None and (
        isinstance(time_budget, bool) or not isinstance(time_budget, int | float) or not time_budget > 0
    ):
        raise InvalidValue(
            "must be a positive number of seconds or None", field="time_budget", value=time_budget
        )


def _losers(scope: Scope, res: SearchResult, details: bool) -> dict[str, Rejection]:
    """Why each pool node the search read but did not choose lost (the unread ones get the default)."""
    stock = scope.stock
    chosen = {c.node_id for c, _ in res.fills}
    out: dict[str, Rejection] = {}
    dominated = detailed(stock, _R.DOMINATED)
    for node_id, dominator in res.dominated.items():
        out[node_id] = dominated(node_id, f"{dominator} can ship all it could, for no more")
    if scope.limit == 1 or res.limited:
        coverable = sum(scope.coverable)
        shipped = [sum(units[j] for _, units in res.fills) for j in range(len(scope.skus))]
        waiting = [s < c for s, c in zip(shipped, scope.coverable, strict=True)]
        for cand in scope.candidates():
            node_id = cand.node_id
            if node_id in chosen or node_id in out:
                continue
            if scope.limit == 1 and cand.held < coverable:
                out[node_id] = rejection(stock, node_id, _R.INCOMPLETE)
            elif res.limited and any(a and w for a, w in zip(cand.available, waiting, strict=True)):
                out[node_id] = rejection(stock, node_id, _R.SHIPMENT_LIMIT)
    if details:
        costlier = detailed(stock, _R.COSTLIER)
        amount = f"{{:.{minor_units(scope.currency)}f}} {scope.currency}".format
        for node_id, cost in res.found_with.items():
            if node_id not in chosen and node_id not in out:
                out[node_id] = costlier(node_id, "the cheapest plan found with it costs " + amount(cost))
        for node_id, low in res.bound.items():
            if node_id not in chosen and node_id not in out:
                out[node_id] = costlier(node_id, "any plan with it costs at least " + amount(low))
    return out


def _default(res: SearchResult) -> RejectReason:
    return _R.DOMINATED if res.stopped == "dominated" else _R.COSTLIER


@attrs.frozen
class CostOptimal:
    """The cheapest plan: minimises the sum of every shipment's ``fixed + per_unit * units`` over the
    nodes used, shipping as many units as the network can (within the shipment limit) first.

    Exact by branch and bound (see :mod:`ordercore.sourcing.search`) for ordinary orders; ``max_steps``
    bounds the search (and ``time_budget``, in seconds, if given: that makes the result depend on the
    machine's speed), after which the best plan found is improved locally and reported with
    ``optimal=False``. On the benchmark's networks every order of up to 10 SKUs is proved optimal well
    within the default budget, at 1,000 nodes as at 50. Under ship complete (one shipment) it takes the
    cheapest node that ships everything; when none does, the node that ships the most units (then the
    cheapest), and the rest waits.
    """

    max_steps: int = 20_000
    time_budget: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_budget(self.max_steps, self.time_budget)

    @property
    def name(self) -> str:
        return "cost_optimal"

    def plan(self, request: SourcingRequest, stock: NetworkStock) -> SourcingPlan:
        scope = scope_for(request, stock)
        res = search_node_sets(scope, max_steps=self.max_steps, time_budget=self.time_budget)
        fills = res.fills
        notes: list[str] = []
        if not any(scope.coverable):
            notes.append("no node can ship any of it now")
        elif res.proved:
            notes.append(f"proved optimal after {res.steps} search steps")
        else:
            notes.append(f"best plan found in {res.steps} search steps (budget reached; not proved optimal)")
        if len(fills) > 1 and res.single is not None:
            notes.append(
                f"{len(fills)} shipments cost less than the best single node"
                f" ({res.single[0]}, {format_amount(res.single[1], scope.currency)})"
            )
        else:
            note = shipment_note(scope, fills)
            if note:
                notes.append(note)
        if res.stopped:
            notes.append(
                f"read {res.read} of {len(scope.ids)} candidate nodes cheapest per unit first;"
                f" the rest are {res.stopped}"
            )
        if res.dominated:
            n = len(res.dominated)
            notes.append(f"{n} node{'s' if n > 1 else ''} dominated by cheaper ones (see below)")
        return build_plan(
            scope,
            self.name,
            fills,
            losers=_losers(scope, res, details=True),
            default=_default(res),
            notes=notes,
            optimal=res.proved,
            steps=res.steps,
        )


@attrs.frozen
class FewestShipments:
    """The fewest shipments that ship what the network can, then the cheapest such plan. Exact on the
    number of shipments within ``max_steps`` (the same search as :class:`CostOptimal`, with every node's
    fixed cost raised so that one more shipment always costs more than any saving); beyond the budget,
    the best plan found."""

    max_steps: int = 20_000
    time_budget: float | None = None

    def __attrs_post_init__(self) -> None:
        _check_budget(self.max_steps, self.time_budget)

    @property
    def name(self) -> str:
        return "fewest_shipments"

    def plan(self, request: SourcingRequest, stock: NetworkStock) -> SourcingPlan:
        scope = scope_for(request, stock)
        # any plan costs at most units * (fixed + per_unit) of the dearest node at the farthest distance, as
        # each node in it ships at least one unit: one more shipment then always costs more than it saves
        units = sum(scope.coverable)
        ps, pkm, pu, pukm = stock._static.max_rates
        km = stock._static.farthest_km(request.destination)
        surcharge = 1.0 + units * (ps + pkm * km + pu + pukm * km)
        res = search_node_sets(
            scope, surcharge=surcharge, max_steps=self.max_steps, time_budget=self.time_budget
        )
        fills = res.fills
        notes: list[str] = []
        if fills:
            qualifier = "the fewest possible" if res.proved else "the fewest found within the step budget"
            notes.append(f"{len(fills)} shipment(s), {qualifier}, then the cheapest")
        note = shipment_note(scope, fills)
        if note:
            notes.append(note)
        return build_plan(
            scope,
            self.name,
            fills,
            losers=_losers(scope, res, details=False),
            default=_R.DOMINATED if res.stopped == "dominated" else _R.NOT_NEEDED,
            notes=notes,
            optimal=False,
            steps=res.steps,
        )
