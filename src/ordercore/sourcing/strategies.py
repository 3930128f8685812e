"""The built-in sourcing strategies, a base for greedy ones of your own, and :func:`source`.

A strategy is any object with a ``name`` and a ``plan(request, stock)`` method returning a
:class:`SourcingPlan` (the :class:`SourcingStrategy` protocol). The built-ins, by name in
:data:`STRATEGIES`:

* ``priority``: nodes by ``node.priority`` (then node id), each shipping what it can of what is left;
* ``nearest``: the same, nearest node first (what most order management systems do);
* ``fewest_shipments``: the fewest nodes, then the cheapest plan with that many;
* ``cost_optimal``: the cheapest plan, proved optimal within a step budget.

The simplest strategy of your own is a :class:`GreedyStrategy` with a sort key over :class:`Candidate`
(``GreedyStrategy("stores_first", lambda c: (c.node.kind is not NodeKind.STORE, c.km))``); it shares every
policy rule and the explanation with the built-ins. ``STRATEGIES`` is read-only: keep your own mapping
(``{**STRATEGIES, "stores_first": mine}``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType

from ordercore.errors import InvalidValue
from ordercore.sourcing.assembly import build_plan, shipment_note
from ordercore.sourcing.candidates import Candidate, Scope, rejection, scope_for
from ordercore.sourcing.model import Rejection, RejectReason, SourcingPlan, SourcingRequest, SourcingStrategy
from ordercore.sourcing.network import NetworkStock
from ordercore.sourcing.optimal import CostOptimal, FewestShipments

__all__ = ["STRATEGIES", "GreedyStrategy", "Nearest", "Priority", "greedy_plan", "source"]

_R = RejectReason

SortKey = Callable[[Candidate], float | tuple[float, ...]]


def greedy_plan(
    scope: Scope, strategy: str, ordered: Iterable[Candidate], *, label: str = ""
) -> SourcingPlan:
    """Fill the order from the ``ordered`` candidates in turn, each shipping what it can of what is left,
    up to the shipment limit; candidates after the order is filled are not even read. Under ship complete
    (one shipment) the first candidate that ships the most units is the one node."""
    stock = scope.stock
    need = list(scope.coverable)
    total = sum(need)
    fills: list[tuple[Candidate, list[int]]] = []
    losers: dict[str, Rejection] = {}
    if scope.limit == 1:
        seen = []
        chosen: Candidate | None = None
        for cand in ordered:
            seen.append(cand)
            if cand.held and (chosen is None or cand.held > chosen.held):
                chosen = cand
                if cand.held >= total:
                    break
        if chosen is not None:
            fills.append((chosen, list(chosen.available)))
        for cand in seen:
            if cand is not chosen and cand.held < total:
                losers[cand.node_id] = rejection(stock, cand.node_id, _R.INCOMPLETE)
    elif total:
        limit = scope.limit
        for cand in ordered:
            take = [a if a < n else n for a, n in zip(cand.available, need, strict=True)]
            if not any(take):
                continue
            if limit is not None and len(fills) >= limit:
                losers[cand.node_id] = rejection(stock, cand.node_id, _R.SHIPMENT_LIMIT)
                continue
            fills.append((cand, take))
            need = [n - t for n, t in zip(need, take, strict=True)]
            if not any(need):
                break
    notes = []
    if fills:
        notes.append(f"{label or strategy}: {', '.join(c.node_id for c, _ in fills)}")
    note = shipment_note(scope, fills)
    if note:
        notes.append(note)
    return build_plan(scope, strategy, fills, losers=losers, notes=notes)


class GreedyStrategy:
    """Fills an order from the candidates in the order of ``key`` (then node id), each node shipping what
    it can of what is left. ``key`` sees a :class:`Candidate`: ``node``, ``km``, ``fixed``, ``per_unit``,
    ``available``."""

    __slots__ = ("_key", "_label", "_name")

    def __init__(self, name: str, key: SortKey, *, label: str = "") -> None:
        if not isinstance(name, str) or not name:
            raise InvalidValue("must be a non-empty string", field="name", value=name)
        if not callable(key):
            raise InvalidValue("must be a function of a Candidate", field="key", value=key)
        self._name = name
        self._key = key
        self._label = label or name

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"

    def ordered(self, scope: Scope) -> Iterable[Candidate]:
        """The candidates in the order they are asked to ship."""
        key = self._key
        return sorted(scope.candidates(), key=lambda c: (key(c), c.node_id))

    def plan(self, request: SourcingRequest, stock: NetworkStock) -> SourcingPlan:
        scope = scope_for(request, stock)
        return greedy_plan(scope, self._name, self.ordered(scope), label=self._label)


def _by_priority(c: Candidate) -> float:
    return c.node.priority


def _by_distance(c: Candidate) -> float:
    return c.km


class Priority(GreedyStrategy):
    """Nodes by ``node.priority`` (lower first), then node id; each ships what it can of what is left."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("priority", _by_priority, label="by priority")

    def ordered(self, scope: Scope) -> Iterator[Candidate]:
        facts = scope.stock._static.facts
        for node_id in sorted(scope.ids, key=lambda n: (facts[n].priority, n)):
            yield scope.candidate(scope.entry(node_id))


class Nearest(GreedyStrategy):
    """The nearest node first (great-circle distance, then node id), each shipping what it can of what is
    left."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("nearest", _by_distance, label="nearest first")

    def ordered(self, scope: Scope) -> Iterator[Candidate]:
        for entry in scope.by_distance():
            yield scope.candidate(entry)


STRATEGIES: Mapping[str, SourcingStrategy] = MappingProxyType(
    {s.name: s for s in (Priority(), Nearest(), FewestShipments(), CostOptimal())}
)
"""The built-in strategies by name (read-only)."""


def source(
    request: SourcingRequest, stock: NetworkStock, strategy: str | SourcingStrategy = "cost_optimal"
) -> SourcingPlan:
    """Plan ``request`` against ``stock`` with ``strategy`` (a built-in's name, or any strategy object)."""
    if isinstance(strategy, str):
        try:
            chosen = STRATEGIES[strategy]
        except KeyError:
            raise InvalidValue(
                f"is not a built-in strategy ({', '.join(STRATEGIES)})", field="strategy", value=strategy
            ) from None
    else:
        chosen = strategy
    return chosen.plan(request, stock)
