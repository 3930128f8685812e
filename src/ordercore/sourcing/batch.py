"""Batch sourcing: a wave of orders sourced jointly when stock is scarce, versus one by one.

One by one (:func:`source_one_by_one`), each order takes the best plan the stock left by the orders before
it allows. That is myopic: an early order may take the only units of a SKU at a node that a later order
needed to ship complete from one place. :func:`source_wave` starts from the one-by-one result and lowers
the total cost by local search, never giving an order fewer units than it got one by one, so scarce units
still go to the orders the fairness policy (:class:`Fairness`) puts first.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal

import attrs

from ordercore.errors import (
    CurrencyMismatch,
    InvalidTimestamp,
    InvalidValue,
    NotFound,
    Problem,
    SourcingFailed,
    ValidationFailed,
)
from ordercore.money import Money
from ordercore.sourcing.model import SourcingPlan, SourcingRequest, SourcingStrategy
from ordercore.sourcing.network import NetworkStock
from ordercore.values import Sku

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "Fairness",
    "WaveOrder",
    "WaveResult",
    "fairness_order",
    "source_one_by_one",
    "source_wave",
]

#: Rounds of local search :func:`source_wave` runs at most (each round visits every order once).
DEFAULT_MAX_ROUNDS = 10


class Fairness(enum.Enum):
    """Who gets scarce units first: the order in which a wave is served one by one."""

    FIRST_COME = "first_come"
    """Earliest ``placed_at`` first; orders without ``placed_at`` in the order they are given."""
    PRIORITY = "priority"
    """Higher ``priority`` first; equal priorities first come, first served."""


@attrs.frozen
class WaveOrder:
    """One order of a wave: what to source, how much it counts (``priority``: higher is served first under
    :attr:`Fairness.PRIORITY`) and when it was placed (``placed_at``, timezone-aware, for
    :attr:`Fairness.FIRST_COME`; None keeps the order's place in the list)."""

    request: SourcingRequest
    priority: int = 0
    placed_at: datetime | None = None

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []
        if not isinstance(self.request, SourcingRequest):
            problems.append(Problem("request", InvalidValue.code, "must be a SourcingRequest", self.request))
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            problems.append(Problem("priority", InvalidValue.code, "must be a whole number", self.priority))
        at = self.placed_at
        if at is not None and (not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None):
            problems.append(
                Problem("placed_at", InvalidTimestamp.code, "must be a timezone-aware datetime or None", at)
            )
        if problems:
            raise ValidationFailed(problems, subject="wave order")

    @property
    def order_ref(self) -> str:
        return self.request.order_ref


@attrs.frozen
class WaveResult:
    """How a wave was sourced.

    ``plans`` holds ``(order_ref, plan)`` in the order the wave served the orders (its fairness order);
    ``failed`` holds ``(order_ref, reason)`` for orders no plan satisfies (the strategy raised
    :class:`~ordercore.errors.SourcingFailed`: say, ship complete and no backorders, with no node holding
    everything). ``units_shipped`` and ``units_waiting`` count the units of the plans that ship now and
    that wait for supply (a failed order's units are in neither). ``cost`` is the total of the plans; ``one_by_one_cost`` what one-by-one sourcing of the
    same wave costs (the same as ``cost`` for a one-by-one result). ``notes`` say what the joint pass
    changed and why; ``rounds`` and ``moves`` how much searching it took.
    """

    strategy: str
    fairness: Fairness
    joint: bool
    plans: tuple[tuple[str, SourcingPlan], ...]
    failed: tuple[tuple[str, str], ...]
    cost: Money
    one_by_one_cost: Money
    units_shipped: int
    units_waiting: int
    notes: tuple[str, ...] = ()
    rounds: int = 0
    moves: int = 0

    @property
    def by_ref(self) -> Mapping[str, SourcingPlan]:
        """The plans keyed by order ref (a new dict each time)."""
        return dict(self.plans)

    def plan_for(self, order_ref: str) -> SourcingPlan:
        """The plan of ``order_ref``; :class:`~ordercore.errors.NotFound` if it has none (unknown or
        failed to source)."""
        for ref, plan in self.plans:
            if ref == order_ref:
                return plan
        raise NotFound(f"the wave has no plan for order {order_ref!r}")

    @property
    def savings(self) -> Money:
        """What the wave saves against one-by-one sourcing (zero for a one-by-one result)."""
        return self.one_by_one_cost - self.cost

    def explain(self) -> str:
        """The wave in a few readable lines: totals, each order's nodes, what failed, and the notes."""
        how = "jointly" if self.joint else "one by one"
        out = [
            f"wave of {len(self.plans) + len(self.failed)} orders sourced {how} by {self.strategy}"
            f" ({self.fairness.value}): cost {self.cost}, {self.units_shipped} units ship,"
            f" {self.units_waiting} wait"
        ]
        if self.joint:
            out.append(f"  one by one it costs {self.one_by_one_cost}; saves {self.savings}")
        out.extend(f"  {ref}: {_describe(plan)}, {plan.cost}" for ref, plan in self.plans)
        out.extend(f"  {ref}: not sourced ({reason})" for ref, reason in self.failed)
        out.extend(f"  {n}" for n in self.notes)
        return "\n".join(out)


# -- validation and order --------------------------------------------------------------------------------


def _check_wave(orders: object, fairness: object, more: Sequence[Problem] = ()) -> tuple[WaveOrder, ...]:
    """The orders as a tuple, after checking them, ``fairness`` and the ``more`` problems found in the
    other inputs: one ValidationFailed lists every problem."""
    problems: list[Problem] = []
    wave: tuple[object, ...] = ()
    if isinstance(orders, str | bytes) or not isinstance(orders, Iterable):
        problems.append(Problem("orders", InvalidValue.code, "must be a sequence of WaveOrder", orders))
    else:
        wave = tuple(orders)
    seen: dict[str, int] = {}
    timed = [isinstance(o, WaveOrder) and o.placed_at is not None for o in wave]
    for i, order in enumerate(wave):
        if not isinstance(order, WaveOrder):
            problems.append(Problem(f"orders[{i}]", InvalidValue.code, "must be a WaveOrder", order))
            continue
        ref = order.order_ref
        if ref in seen:
            problems.append(
                Problem(
                    f"orders[{i}].request.order_ref",
                    InvalidValue.code,
                    f"is already used by orders[{seen[ref]}]",
                    ref,
                )
            )
        else:
            seen[ref] = i
        if any(timed) and not timed[i]:
            problems.append(
                Problem(
                    f"orders[{i}].placed_at",
                    InvalidValue.code,
                    "is missing while other orders of the wave give one (give all or none)",
                    None,
                )
            )
    if not isinstance(fairness, Fairness):
        problems.append(Problem("fairness", InvalidValue.code, "must be a Fairness", fairness))
    problems.extend(more)
    if problems:
        raise ValidationFailed(problems, subject="wave")
    return tuple(o for o in wave if isinstance(o, WaveOrder))


def _check_sources(stock: object, strategy: object, max_rounds: object = 0) -> list[Problem]:
    """What is wrong with the network, the strategy and the round limit of a wave."""
    problems: list[Problem] = []
    if not isinstance(stock, NetworkStock):
        problems.append(Problem("stock", InvalidValue.code, "must be a NetworkStock", stock))
    if not isinstance(getattr(strategy, "name", None), str) or not callable(getattr(strategy, "plan", None)):
        problems.append(
            Problem(
                "strategy",
                InvalidValue.code,
                "must be a SourcingStrategy (a name and a plan method)",
                strategy,
            )
        )
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 0:
        problems.append(Problem("max_rounds", InvalidValue.code, "must be a whole number >= 0", max_rounds))
    return problems


def _check_plan(plan: SourcingPlan, currency: str) -> SourcingPlan:
    """``plan`` if it costs in the wave's currency (the network's): a strategy costing in another would
    make the wave's total meaningless."""
    if plan.cost.currency != currency:
        raise ValidationFailed(
            [
                Problem(
                    f"plans[{plan.order_ref}].cost.currency",
                    CurrencyMismatch.code,
                    f"is not the network's currency {currency}: a wave adds up costs in one currency",
                    plan.cost.currency,
                )
            ],
            subject="wave",
        )
    return plan


def fairness_order(orders: Iterable[WaveOrder], fairness: Fairness) -> tuple[WaveOrder, ...]:
    """``orders`` in the order ``fairness`` serves them (the canonical order of a wave).

    FIRST_COME sorts by ``placed_at`` (ties and orders without it keep their place in the list); PRIORITY
    puts higher ``priority`` first, then first come. The sort is stable, so the same list always gives the
    same order.
    """
    wave = _check_wave(orders, fairness)

    timed = bool(wave) and wave[0].placed_at is not None  # all or none give placed_at (checked)

    def key(i: int) -> tuple[int, datetime | None, int]:
        order = wave[i]
        rank = -order.priority if fairness is Fairness.PRIORITY else 0
        return (rank, order.placed_at if timed else None, i)

    return tuple(wave[i] for i in sorted(range(len(wave)), key=key))


# -- plans -------------------------------------------------------------------------------------------------

# One order's outcome: its plan, or the reason no plan satisfies its policy.
_Outcome = SourcingPlan | str


def _source(strategy: SourcingStrategy, request: SourcingRequest, stock: NetworkStock) -> _Outcome:
    """Order ``request``'s plan, or why no plan satisfies its policy."""
    try:
        plan = strategy.plan(request, stock)
    except SourcingFailed as e:
        return e.message
    return _check_plan(plan, stock.currency)


def _units(outcome: _Outcome) -> int:
    return 0 if isinstance(outcome, str) else sum(s.units for s in outcome.shipments)


def _amount(outcome: _Outcome) -> Decimal:
    return Decimal(0) if isinstance(outcome, str) else outcome.cost.amount


def _shape(outcome: _Outcome) -> object:
    """What ships from where and what waits: two plans with the same shape are the same choice."""
    if isinstance(outcome, str):
        return outcome
    return (
        tuple((s.node_id, s.lines) for s in outcome.shipments),
        tuple((b.line_id, b.quantity) for b in outcome.backorders),
    )


def _nodes(outcome: _Outcome) -> str:
    if isinstance(outcome, str):
        return "nowhere (not sourced)"
    return "+".join(outcome.node_ids) or "nowhere (all units wait)"


def _describe(outcome: _Outcome) -> str:
    if isinstance(outcome, str):
        return "not sourced"
    if not outcome.shipments:
        return "nothing now (all units wait)"
    if len(outcome.shipments) == 1 and not outcome.backorders:
        return f"complete from {outcome.node_ids[0]}"
    waiting = sum(b.quantity for b in outcome.backorders)
    wait = "" if not waiting else " (1 unit waits)" if waiting == 1 else f" ({waiting} units wait)"
    return f"from {_nodes(outcome)}{wait}"


def _result(
    *,
    strategy: SourcingStrategy,
    fairness: Fairness,
    joint: bool,
    wave: Sequence[WaveOrder],
    outcomes: Sequence[_Outcome],
    currency: str,
    one_by_one_cost: Money | None,
    notes: Sequence[str] = (),
    rounds: int = 0,
    moves: int = 0,
) -> WaveResult:
    plans = tuple((o.order_ref, p) for o, p in zip(wave, outcomes, strict=True) if not isinstance(p, str))
    failed = tuple((o.order_ref, p) for o, p in zip(wave, outcomes, strict=True) if isinstance(p, str))
    cost = Money.zero(currency)
    for _, plan in plans:
        cost = cost + plan.cost
    return WaveResult(
        strategy=strategy.name,
        fairness=fairness,
        joint=joint,
        plans=plans,
        failed=failed,
        cost=cost,
        one_by_one_cost=cost if one_by_one_cost is None else one_by_one_cost,
        units_shipped=sum(_units(p) for _, p in plans),
        units_waiting=sum(b.quantity for _, p in plans for b in p.backorders),
        notes=tuple(notes),
        rounds=rounds,
        moves=moves,
    )


def _one_by_one(
    wave: Sequence[WaveOrder], stock: NetworkStock, strategy: SourcingStrategy
) -> tuple[list[_Outcome], NetworkStock]:
    """Source ``wave`` in its order against a copy of ``stock``; the outcomes and the copy with every plan
    taken out."""
    work = stock.copy()
    outcomes: list[_Outcome] = []
    for order in wave:
        outcome = _source(strategy, order.request, work)
        if not isinstance(outcome, str):
            work.apply(order.request, outcome)
        outcomes.append(outcome)
    return outcomes, work


def source_one_by_one(
    orders: Iterable[WaveOrder], stock: NetworkStock, strategy: SourcingStrategy, fairness: Fairness
) -> WaveResult:
    """Source each order of the wave in ``fairness`` order against what the orders before it left.

    ``stock`` is copied, never changed. An order no plan satisfies is listed in ``failed`` and takes
    nothing. This is the baseline :func:`source_wave` improves on.
    """
    wave = fairness_order(_check_wave(orders, fairness, _check_sources(stock, strategy)), fairness)
    currency = stock.currency
    outcomes, _ = _one_by_one(wave, stock, strategy)
    return _result(
        strategy=strategy,
        fairness=fairness,
        joint=False,
        wave=wave,
        outcomes=outcomes,
        currency=currency,
        one_by_one_cost=None,
    )


# -- the joint pass -----------------------------------------------------------------------------------------


@attrs.define
class _Search:
    """The local search of :func:`source_wave`: ``outcomes`` are the current plans, all of them taken out
    of ``work``; ``floor`` holds each order's one-by-one units, which no change may go below."""

    wave: tuple[WaveOrder, ...]
    strategy: SourcingStrategy
    work: NetworkStock
    outcomes: list[_Outcome]
    floor: list[int]
    sourced: list[bool]
    currency: str
    skus: list[tuple[Sku, ...]]
    capped: tuple[str, ...]
    notes: list[str] = attrs.field(factory=list)
    moves: int = 0
    memo: dict[tuple[object, ...], _Outcome] = attrs.field(factory=dict)

    def source(self, i: int) -> _Outcome:
        """Order ``i``'s plan against the current stock. A deterministic strategy's plan depends only on
        the stock of the order's own SKUs and on the shipments nodes have left, so plans are remembered
        by those: trying a move again after orders changed elsewhere costs no new search."""
        work = self.work
        key = (
            i,
            tuple(tuple(sorted(work.holders(sku).items())) for sku in self.skus[i]),
            tuple(work.capacity_left(n) for n in self.capped),
        )
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = _source(self.strategy, self.wave[i].request, work)
        return found

    def _take_out(self, indices: Sequence[int]) -> None:
        for i in indices:
            outcome = self.outcomes[i]
            if not isinstance(outcome, str):
                self.work.restore(self.wave[i].request, outcome)

    def _put_back(self, indices: Sequence[int], outcomes: Sequence[_Outcome]) -> None:
        for i, outcome in zip(indices, outcomes, strict=True):
            if not isinstance(outcome, str):
                self.work.apply(self.wave[i].request, outcome)

    def _fair(self, i: int, outcome: _Outcome) -> bool:
        """True when ``outcome`` keeps order ``i`` at or above its one-by-one units (and sourced, if it
        was sourced one by one)."""
        if isinstance(outcome, str):
            return not self.sourced[i]
        return _units(outcome) >= self.floor[i]

    def _trial(self, sequence: Sequence[int]) -> tuple[list[_Outcome], Decimal] | None:
        """Re-source the orders of ``sequence`` in that order with the stock their plans and the freed
        stock leave; the new outcomes and their cost when every order stays fair, else None. The stock is
        left as it was."""
        new: list[_Outcome] = []
        for i in sequence:
            outcome = self.source(i)
            if not isinstance(outcome, str):
                self.work.apply(self.wave[i].request, outcome)
            new.append(outcome)
        for i, outcome in zip(reversed(sequence), reversed(new), strict=True):
            if not isinstance(outcome, str):
                self.work.restore(self.wave[i].request, outcome)
        if not all(self._fair(i, o) for i, o in zip(sequence, new, strict=True)):
            return None
        return new, sum((_amount(o) for o in new), Decimal(0))

    def improve(self, group: Sequence[int], orders: Sequence[Sequence[int]]) -> bool:
        """Rip up the orders of ``group`` and re-source them in each of the ``orders`` given; keep the
        cheapest result if it strictly lowers their total cost and keeps every order fair."""
        before = sum((_amount(self.outcomes[i]) for i in group), Decimal(0))
        old = {i: self.outcomes[i] for i in group}
        self._take_out(group)
        best: tuple[Sequence[int], list[_Outcome], Decimal] | None = None
        for sequence in orders:
            trial = self._trial(sequence)
            if trial is not None and trial[1] < before and (best is None or trial[1] < best[2]):
                best = (sequence, trial[0], trial[1])
        if best is None:
            self._put_back(group, [old[i] for i in group])
            return False
        sequence, new, after = best
        self._put_back(sequence, new)
        for i, outcome in zip(sequence, new, strict=True):
            self.outcomes[i] = outcome
        self.moves += 1
        self.notes.append(self._note(old, before - after))
        return True

    def _note(self, old: Mapping[int, _Outcome], saved: Decimal) -> str:
        """Explain a kept change from the side of the order that gained most (the first, on a tie)."""
        saving = f"saves {Money.rounded(saved, self.currency)}"
        beneficiary = max(old, key=lambda i: (_amount(old[i]) - _amount(self.outcomes[i]), -i))
        ref = self.wave[beneficiary].order_ref
        new_b, old_b = self.outcomes[beneficiary], old[beneficiary]
        others = [i for i in old if i != beneficiary and _shape(self.outcomes[i]) != _shape(old[i])]
        moved = ", ".join(
            f"{self.wave[i].order_ref} moved from {_nodes(old[i])} to {_nodes(self.outcomes[i])}"
            for i in others
        )
        if _shape(new_b) == _shape(old_b):
            return f"{moved}; {saving}" if moved else f"{ref} re-sourced; {saving}"
        ships = f"{ref} could ship {_describe(new_b)} (was {_describe(old_b)})"
        if moved:
            return f"{moved} so that {ships}; {saving}"
        return f"{ref} now ships {_describe(new_b)} (was {_describe(old_b)}) from freed stock; {saving}"

    def blockers(self, j: int) -> list[int]:
        """The orders whose plans hold something order ``j`` could use, in canonical order: units of a
        SKU it orders, or the last shipment a node holding such a SKU can take today."""
        wanted = set(self.skus[j])
        full = {n for n in self.capped if self.work.capacity_left(n) == 0}
        found: list[int] = []
        for i, outcome in enumerate(self.outcomes):
            if i == j or isinstance(outcome, str):
                continue
            sku_of = {line.line_id: line.sku for line in self.wave[i].request.lines}
            for shipment in outcome.shipments:
                if any(sku_of[lid] in wanted for lid, _ in shipment.lines) or (
                    shipment.node_id in full
                    and any(self.work.available(shipment.node_id, sku) for sku in wanted)
                ):
                    found.append(i)
                    break
        return found

    def round(self) -> bool:
        """One pass over the wave in its canonical order: each order alone, then paired with each order
        holding something it could use. True when something changed."""
        changed = False
        for j in range(len(self.wave)):
            if self.improve([j], [[j]]):
                changed = True
            for i in self.blockers(j):
                first, second = min(i, j), max(i, j)
                if self.improve([first, second], [[j, i], [i, j]]):
                    changed = True
        return changed


def source_wave(
    orders: Iterable[WaveOrder],
    stock: NetworkStock,
    strategy: SourcingStrategy,
    fairness: Fairness,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
) -> WaveResult:
    """Source the wave jointly: the lowest total cost local search finds that is fair to every order.

    Fairness contract: no order ships fewer units than it does one by one in ``fairness`` order (see
    :func:`source_one_by_one`), and an order sourced one by one is never left unsourced; so scarce units
    still go to the earlier (first come) or higher-priority orders. Subject to that, the total cost is
    lowered by local search: start from the one-by-one plans, then, for each order in fairness order, rip
    it up alone and re-source it with the stock the others leave, then together with each order holding
    stock it could use (a pair), re-sourcing the pair with the freed stock in both orders (the later order
    first is what one by one cannot see: an early order took the only units at a node that a later order
    needed to ship complete). A change is kept only when every order keeps at least its one-by-one units
    and the total cost strictly drops, so the joint total is never above one by one. Orders are always
    visited in the same canonical (fairness) order, so the same list gives the same result.

    A pass costs at most about two strategy calls per pair of orders sharing a SKU; an order's plan is
    remembered by the stock of its own SKUs and the nodes' shipments left, so a pair tried again over the
    same stock costs nothing (the built-in strategies read nothing else; a custom one that does still
    gets valid plans). At most ``max_rounds`` passes over the wave (0 returns the one-by-one plans); a pass
    that changes nothing ends the search. ``stock`` is copied, never changed.
    """
    wave = fairness_order(
        _check_wave(orders, fairness, _check_sources(stock, strategy, max_rounds)), fairness
    )
    currency = stock.currency
    outcomes, work = _one_by_one(wave, stock, strategy)
    baseline = _result(
        strategy=strategy,
        fairness=fairness,
        joint=True,
        wave=wave,
        outcomes=outcomes,
        currency=currency,
        one_by_one_cost=None,
    )
    search = _Search(
        wave=wave,
        strategy=strategy,
        work=work,
        outcomes=list(outcomes),
        floor=[_units(o) for o in outcomes],
        sourced=[not isinstance(o, str) for o in outcomes],
        currency=currency,
        skus=[tuple(sorted({line.sku for line in o.request.lines}, key=str)) for o in wave],
        capped=tuple(ns.node_id for ns in stock if ns.capacity_left is not None),
    )
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        if not search.round():
            break
    result = _result(
        strategy=strategy,
        fairness=fairness,
        joint=True,
        wave=wave,
        outcomes=search.outcomes,
        currency=currency,
        one_by_one_cost=baseline.cost,
        rounds=rounds,
        moves=search.moves,
    )
    summary = (
        f"joint pass: {search.moves} change(s) in {rounds} round(s); {result.cost} against"
        f" {baseline.cost} one by one (saves {baseline.cost - result.cost})"
    )
    return attrs.evolve(result, notes=(summary, *search.notes))
