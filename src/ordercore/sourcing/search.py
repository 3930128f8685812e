"""Exact search for the cheapest set of nodes to ship an order from.

A plan's cost is the sum over the nodes it uses of ``fixed + per_unit * units``. Once the set of nodes is
fixed the cheapest split of the units is separable per SKU: fill each SKU's demand from the set's nodes in
ascending per-unit rate. So the search is over node sets, in four stages:

1. **Scan.** Pool nodes are read in fill order (per-unit rate, fixed cost, node id). A node is
   *dominated*, and dropped, when an earlier node costs no more in both rates and can ship the whole
   demand of every SKU it holds: swapping one for the other never costs more. On large networks the scan
   stops early, once every node not yet read is provably useless: dominated by a node that ships
   everything, or priced out by the Lagrangian bound below (a node whose per-unit rate exceeds what a
   unit is worth to the order cannot pay its fixed cost).
2. **Bounds.** An upper bound from the cheapest single node that ships everything and a greedy cover
   (cost per newly covered unit) improved by dropping nodes. A lower bound from the Lagrangian
   relaxation of the demand constraints (a price per unit of each SKU, improved by subgradient steps),
   which equals the LP relaxation's bound at best and very often proves the greedy plan optimal at once.
   Its reduced costs rule nodes out (or in) for the whole search.
3. **Branch and bound.** Depth first, deciding SKU by SKU which node of the set ships it next in fill
   order ("the next node of the set holding SKU s is n; the nodes in between are not in the set"), which
   visits every set once. A branch is pruned when its bound cannot beat the best plan: the larger of the
   Lagrangian bound with the branch's decisions, and the fixed costs so far plus the variable cost of
   filling what is left from every node not ruled out plus the fixed cost of the new nodes it still
   needs (one, or two when no single node covers what is left).
4. **Budget.** After ``max_steps`` (or ``time_budget``) the best plan found is improved locally (drop,
   add or swap a node) and reported as not proved optimal. On searches far beyond an ordinary order (more
   than 2,000 candidates x SKUs, say 40 SKUs from 1,000 nodes) a step counts for proportionally more, so
   that the budget bounds the time spent rather than the number of steps.

Under a shipment limit the search looks for a plan that ships everything within the limit; when there is
none it ships as many units as the limit allows, then at least cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from time import perf_counter

from ordercore.sourcing.candidates import Candidate, PoolEntry, Scope

__all__ = ["SearchResult", "search_node_sets"]

_INF = math.inf
_REL_TOL = 1e-9
_MAX_MASK_SKUS = 12  # dominance uses a table over subsets of the order's SKUs up to this many (else a list)
_FIRST_CHECK = 16  # pool nodes read before the scan first asks whether it may stop
_SCAN_ITERATIONS = 12  # subgradient steps before the scan fixes its prices (the first time)
_WARM_ITERATIONS = 6  # subgradient steps from earlier prices (as the scan reads on, and at the root)
_ROOT_ITERATIONS = 12  # subgradient steps before the branch and bound
_ROOT_WARM_ITERATIONS = 6  # the same, from the prices the scan worked out
_ORDINARY_WORK = 2_000  # candidates x SKUs up to which a branch and bound step counts as one
_MIN_BUDGET = 100  # steps the branch and bound gets however large the search
_MIN_STEP = 1 / 32  # subgradient steps stop once the step factor has shrunk this far without progress


def _tol(cost: float) -> float:
    return _REL_TOL * max(1.0, abs(cost))


class SearchResult:
    """What the search found, and what the explanation needs."""

    __slots__ = (
        "bound",
        "cost",
        "dominated",
        "fills",
        "found_with",
        "limited",
        "proved",
        "read",
        "single",
        "steps",
        "stopped",
    )

    def __init__(self) -> None:
        self.fills: list[tuple[Candidate, list[int]]] = []
        """the chosen nodes with their units per SKU (in the order of ``Scope.skus``)"""
        self.cost = 0.0
        """the plan's float cost (without any surcharge)"""
        self.proved = True
        self.steps = 0
        self.dominated: dict[str, str] = {}
        """node id -> the node that dominates it"""
        self.found_with: dict[str, float] = {}
        """node id -> cost of the cheapest complete plan seen that uses it"""
        self.bound: dict[str, float] = {}
        """node id -> a lower bound on the cost of any plan using it (for nodes read and ruled out by it)"""
        self.single: tuple[str, float] | None = None
        """the cheapest single node that ships everything, and its cost"""
        self.limited = False
        """True when the shipment limit left units unshipped that more nodes could ship"""
        self.read = 0
        """pool nodes read; the rest were ruled out unread (see ``stopped``)"""
        self.stopped = ""
        """why the scan stopped early: "dominated" or "priced out" ("" when it read every node)"""


class _Prices:
    """Fixed prices per unit of each SKU during a scan, the Lagrangian bound ``low`` they give over the
    nodes kept so far, the upper ``bound`` to beat, and the nodes set aside as priced out."""

    __slots__ = ("aside", "bound", "lam", "low", "order")

    def __init__(self, lam: list[float], low: float, bound: float) -> None:
        self.lam = lam
        self.order = sorted(((x, t) for t, x in enumerate(lam)), reverse=True)
        self.low = low
        self.bound = bound
        self.aside: list[tuple[float, PoolEntry]] = []


class _Search:
    """One search over a scope's pool."""

    def __init__(self, scope: Scope, surcharge: float, max_steps: int, deadline: float | None) -> None:
        self.scope = scope
        self.result = SearchResult()
        self.surcharge = surcharge
        self.limit = scope.limit
        self.max_steps = max_steps
        self.deadline = deadline
        self.steps = 0
        targets = scope.coverable
        self.js = [j for j, d in enumerate(targets) if d > 0]
        self.D = [targets[j] for j in self.js]
        self.K = len(self.js)
        self.total = sum(self.D)
        self.size = len(scope.ids)
        self.tables = [scope.tables[j] for j in self.js]
        # rows: the nodes read and kept, in fill order
        self.C: list[float] = []
        self.F: list[float] = []
        self.A: list[list[int]] = []
        self.H: list[list[tuple[int, int]]] = []  # (SKU, units) pairs with units > 0
        self.N: list[str] = []
        self.E: list[PoolEntry] = []
        self.full: list[int] = []
        self.m = 0
        self.covered = [0] * self.K
        self.lam: list[float] | None = None
        self.L = -_INF
        self.best_cost = _INF
        self.best_key: tuple[str, ...] = ()
        self.best_set: tuple[int, ...] | None = None
        self.excluded = 0  # rows ruled out by reduced costs (bit mask)
        self.forced = 0  # rows ruled in by reduced costs (bit mask)

    # -- stage 1: scan ----------------------------------------------------------------------------------
    def scan(self) -> None:
        """Read pool nodes in fill order, dropping dominated ones, until the rest are provably useless.

        On a large pool, once the nodes read can ship everything, an upper bound and prices are worked out
        (and worked out again each time the number of nodes read doubles). From then on a node is first
        priced, from the few SKUs worth more than its per-unit rate, and only read in full when it might
        take part in a cheaper plan. Nodes set aside are priced again at new prices, and checked at the
        end against the bound that includes every node read after them.
        """
        K, D = self.K, self.D
        tables = self.tables
        use_masks = K <= _MAX_MASK_SKUS
        width = 1 << K if use_masks else 1
        sup_f = [_INF] * width  # per SKU subset: the least fixed cost of a kept node shipping all of it...
        sup_c = [_INF] * width  # ...its per-unit rate...
        sup_n = [""] * width  # ...and its id
        pareto: list[tuple[int, float, str]] = []  # without the table: (full mask, fixed, id) of kept rows
        everything = width - 1
        surcharge = self.surcharge
        f_floor = self.scope.stock._static.min_rates[0] + surcharge
        dominated = self.result.dominated
        covered = self.covered
        size = self.size
        check = _FIRST_CHECK
        read = 0
        prices: _Prices | None = None
        for entry in self.scope.by_rate():
            c, f, node_id = entry[0], entry[1] + surcharge, entry[2]
            if read == check:
                check *= 2
                if size - read >= 3 * read and all(v >= d for v, d in zip(covered, D, strict=True)):
                    dom_f, dom_c = sup_f[everything], sup_c[everything]
                    if dom_f <= f_floor and (dom_c < c or dom_f < f_floor):
                        self.result.stopped = "dominated"
                        break
                    if not surcharge:  # with a surcharge, prices cannot rule out far nodes
                        prices = self._reprice(prices)
            read += 1
            r = 0.0
            if prices is not None:
                if not read & 3 and self._priced_out(c, f_floor, prices):
                    read -= 1
                    break
                r = f  # the reduced cost at the prices (``_price``, inlined)
                for x, t in prices.order:
                    if x <= c:
                        break
                    q = tables[t].get(node_id)
                    if q:
                        r -= (q if q < D[t] else D[t]) * (x - c)
                if r >= 0 and prices.low + r > prices.bound:
                    prices.aside.append((r, entry))
                    continue
            a = []
            anym = fullm = 0
            bit = 1
            for tbl, d in zip(tables, D, strict=True):
                q = tbl.get(node_id, 0)
                if q:
                    anym |= bit
                    if q >= d:
                        q = d
                        fullm |= bit
                a.append(q)
                bit <<= 1
            if not anym:
                continue
            if use_masks:
                if sup_f[anym] <= f:
                    dominated[node_id] = sup_n[anym]
                    continue
            else:
                dominator = next((n for pm, pf, n in pareto if pf <= f and pm & anym == anym), None)
                if dominator is not None:
                    dominated[node_id] = dominator
                    continue
            if r < 0 and prices is not None:
                prices.low += r
            self._keep(entry, a, fullm)
            if use_masks and fullm:
                sub = fullm
                while True:
                    if sup_f[sub] > f:
                        sup_f[sub], sup_c[sub], sup_n[sub] = f, c, node_id
                    if not sub:
                        break
                    sub = (sub - 1) & fullm
            elif fullm and not any(pm & fullm == fullm and pf <= f for pm, pf, _ in pareto):
                # too many SKUs for the subset table: keep the kept rows' full masks as an antichain
                pareto = [e for e in pareto if not (e[0] & fullm == e[0] and e[1] >= f)]
                pareto.append((fullm, f, node_id))
        if prices is not None:
            self._settle(prices)
        self.m = len(self.C)
        self.result.read = read

    def _reprice(self, old: _Prices | None) -> _Prices | None:
        """Work out the bound and the prices from the rows so far; price the nodes set aside again (and
        read those that might pay off now)."""
        self.m = len(self.C)
        self.seed()
        if self.best_set is None:
            return old
        self.lagrange(_SCAN_ITERATIONS if old is None else _WARM_ITERATIONS)
        assert self.lam is not None
        prices = _Prices(self.lam, self.L, self.best_cost + _tol(self.best_cost))
        late = False
        for _, entry in old.aside if old is not None else ():
            r = self._price(entry, prices.order)
            if r < 0:
                prices.low += r
                self._read(entry)
                late = True
            else:
                prices.aside.append((r, entry))
        if late:
            self._sort_rows()
        return prices

    def _settle(self, prices: _Prices) -> None:
        """Read the nodes set aside that the final bound no longer rules out; note it for the others."""
        late = False
        for r, entry in prices.aside:
            if prices.low + r <= prices.bound:
                self._read(entry)
                late = True
        if late:
            self._sort_rows()
        if prices.aside and not self.result.stopped:
            self.result.stopped = "priced out"

    def _price(self, entry: PoolEntry, order: list[tuple[float, int]]) -> float:
        """The reduced cost of a pool node at prices ``order`` ((price, SKU), dearest first)."""
        c, node_id = entry[0], entry[2]
        r = entry[1] + self.surcharge
        D, tables = self.D, self.tables
        for x, t in order:
            if x <= c:
                break
            q = tables[t].get(node_id)
            if q:
                r -= (q if q < D[t] else D[t]) * (x - c)
        return r

    def _priced_out(self, c: float, f_floor: float, prices: _Prices) -> bool:
        """Whether every node from per-unit rate ``c`` on costs more than it can save at the prices."""
        rho_floor = f_floor - sum(d * (x - c) for d, x in zip(self.D, prices.lam, strict=True) if x > c)
        if rho_floor >= 0 and prices.low + rho_floor > prices.bound:
            self.result.stopped = "priced out"
            return True
        return False

    def _read(self, entry: PoolEntry) -> None:
        """Keep a node read out of fill order (no dominance check)."""
        a = [min(tbl.get(entry[2], 0), d) for tbl, d in zip(self.tables, self.D, strict=True)]
        self._keep(entry, a, sum(1 << t for t in range(self.K) if a[t] >= self.D[t]))

    def _keep(self, entry: PoolEntry, a: list[int], fullm: int) -> None:
        self.C.append(entry[0])
        self.F.append(entry[1] + self.surcharge)
        self.A.append(a)
        self.H.append([(t, q) for t, q in enumerate(a) if q])
        self.N.append(entry[2])
        self.E.append(entry)
        self.full.append(fullm)
        covered = self.covered
        for t, q in enumerate(a):
            covered[t] += q

    def _sort_rows(self) -> None:
        """Put the rows back in fill order after nodes were read out of it."""
        order = sorted(range(len(self.C)), key=lambda i: (self.C[i], self.F[i], self.N[i]))
        self.C = [self.C[i] for i in order]
        self.F = [self.F[i] for i in order]
        self.A = [self.A[i] for i in order]
        self.H = [self.H[i] for i in order]
        self.N = [self.N[i] for i in order]
        self.E = [self.E[i] for i in order]
        self.full = [self.full[i] for i in order]
        self.m = len(order)
        if self.best_set is not None:
            where = {old: new for new, old in enumerate(order)}
            self.best_set = tuple(sorted(where[i] for i in self.best_set))

    # -- evaluating sets --------------------------------------------------------------------------------
    def fill(self, members: Sequence[int]) -> tuple[int, float, list[list[int]]]:
        """(units served, cost, units per member per SKU) of the cheapest fill from ``members`` (sorted
        row indices); members that ship nothing pay no fixed cost."""
        A, C, F, D = self.A, self.C, self.F, self.D
        units = [[0] * self.K for _ in members]
        served = 0
        cost = 0.0
        for t in range(self.K):
            need = D[t]
            for k, i in enumerate(members):
                q = A[i][t]
                if q:
                    if q > need:
                        q = need
                    units[k][t] = q
                    cost += C[i] * q
                    need -= q
                    if not need:
                        break
            served += D[t] - need
        for k, i in enumerate(members):
            if any(units[k]):
                cost += F[i]
        return served, cost, units

    def cover_cost(self, members: Sequence[int]) -> float:
        """The cost of ``members`` (sorted) if they ship everything, else infinity; offered as the best
        plan (without the members that ship nothing)."""
        A, C, F = self.A, self.C, self.F
        cost = 0.0
        used = 0
        for t, need in enumerate(self.D):
            for i in members:
                q = A[i][t]
                if q:
                    used |= 1 << i
                    if q >= need:
                        cost += C[i] * need
                        need = 0
                        break
                    cost += C[i] * q
                    need -= q
            if need:
                return _INF
        chosen = [i for i in members if used >> i & 1]
        if self.limit is not None and len(chosen) > self.limit:
            return _INF
        for i in chosen:
            cost += F[i]
        key = tuple(sorted(self.N[i] for i in chosen))
        best = self.best_cost
        if (
            self.best_set is None
            or cost < best - _tol(best)
            or (cost <= best + _tol(best) and key < self.best_key)
        ):
            self.best_cost, self.best_key, self.best_set = cost, key, tuple(chosen)
        found = self.result.found_with
        for i in chosen:
            node_id = self.N[i]
            if cost < found.get(node_id, _INF):
                found[node_id] = cost
        return cost

    def _top_rates(self, members: Sequence[int]) -> list[float]:
        """Per SKU, the highest per-unit rate the cheapest fill from ``members`` pays (0 if none)."""
        A, C = self.A, self.C
        top = [0.0] * self.K
        for t, need in enumerate(self.D):
            for i in members:
                q = A[i][t]
                if q:
                    top[t] = C[i]
                    if q >= need:
                        break
                    need -= q
        return top

    # -- stage 2: bounds --------------------------------------------------------------------------------
    def seed(self, *, improve: bool = True) -> None:
        """Upper bounds: the cheapest single node that ships everything, and a greedy cover (improved by
        dropping and adding nodes, unless ``improve`` is False)."""
        everything = (1 << self.K) - 1
        for i in range(self.m):
            if self.full[i] == everything:
                cost = self.cover_cost([i])
                single = self.result.single
                if single is None or cost < single[1] - _tol(cost):
                    self.result.single = (self.N[i], cost)
        if self.limit != 1:
            chosen = self.greedy(full=True)
            if chosen is not None:
                if improve:
                    self.improve(chosen, swaps=False)
                else:
                    self.cover_cost(chosen)

    def greedy(self, *, full: bool) -> list[int] | None:
        """Pick nodes by cost per newly covered unit until everything (or the limit) is covered."""
        A, C, F, K = self.A, self.C, self.F, self.K
        rem = list(self.D)
        chosen: list[int] = []
        taken = self.excluded
        limit = self.limit
        while any(rem) and (limit is None or len(chosen) < limit):
            best = -1
            best_score = _INF
            for i in range(self.m):
                if taken >> i & 1:
                    continue
                cov = 0
                for t, a in self.H[i]:
                    r = rem[t]
                    if r:
                        cov += a if a < r else r
                if cov:
                    score = (F[i] + C[i] * cov) / cov
                    if score < best_score:
                        best, best_score = i, score
            if best < 0:
                break
            chosen.append(best)
            taken |= 1 << best
            a_best = A[best]
            for t in range(K):
                rem[t] = max(0, rem[t] - a_best[t])
        if full and any(rem):
            return None
        return sorted(chosen)

    def improve(self, members: list[int], *, swaps: bool, budget: int = 1_000) -> None:
        """Local search from a complete plan: drop a node, add one, or swap one for another while the plan
        gets cheaper (first improvement, in row order). A node is only tried as an addition when the units
        it could take over from dearer ones might pay its fixed cost."""
        current = sorted(members)
        cost = self.cover_cost(current)
        limit = self.limit
        evaluations = 0
        improved = True
        while improved and evaluations < budget:
            improved = False
            moves: list[list[int]] = [[j for j in current if j != i] for i in current]
            outside = [i for i in range(self.m) if i not in current and not self.excluded >> i & 1]
            if limit is None or len(current) < limit:
                top = self._top_rates(current)
                for i in outside:
                    ci = self.C[i]
                    saving = sum(a * (top[t] - ci) for t, a in self.H[i] if top[t] > ci)
                    if saving > self.F[i]:
                        moves.append(sorted([*current, i]))
            if swaps:
                for i in current:
                    rest = [j for j in current if j != i]
                    moves.extend(sorted([*rest, k]) for k in outside)
            for move in moves:
                evaluations += 1
                c = self.cover_cost(move)
                if c < cost - _tol(cost):
                    current, cost = move, c
                    improved = True
                    break
                if evaluations >= budget:
                    break
        self.steps += evaluations

    def lagrange(self, iterations: int) -> None:
        """Subgradient steps on the Lagrangian dual of the demand constraints (warm-started).

        For prices ``lam[t]`` per unit of SKU t, a node's reduced cost is ``fixed - sum over t of
        units * max(0, lam[t] - per_unit)``; ``sum(lam[t] * D[t]) + sum of the negative reduced costs`` is
        a lower bound on every plan. The best bound and its prices are kept.
        """
        C, F, H, D, K = self.C, self.F, self.H, self.D, self.K
        m = self.m
        if self.lam is None:
            lam = [_INF] * K
            for i in range(m):
                cov = sum(a for _, a in H[i])
                rate = C[i] + F[i] / cov
                for t, _ in H[i]:
                    if rate < lam[t]:
                        lam[t] = rate
            lam = [x if x < _INF else 0.0 for x in lam]
        else:
            lam = self.lam
        ub = self.best_cost
        goal = ub - _tol(ub)
        best_lam = lam
        best_l = -_INF
        mu = 1.0
        stall = 0
        rows = list(zip(C, F, H, strict=True))
        for _ in range(iterations):
            self.steps += 1
            low = 0.0
            for x, d in zip(lam, D, strict=True):
                low += x * d
            g = list(D)
            for ci, r, h in rows:
                for t, a in h:
                    x = lam[t] - ci
                    if x > 0:
                        r -= a * x
                if r < 0:
                    low += r
                    for t, a in h:
                        if lam[t] > ci:
                            g[t] -= a
            if low > best_l:
                best_l, best_lam = low, lam
                stall = 0
            else:
                stall += 1
                if stall >= 2:
                    mu *= 0.5
                    stall = 0
                    if mu < _MIN_STEP:
                        break
            if best_l >= goal:
                break
            norm = 0
            for x in g:
                norm += x * x
            if not norm:
                # the relaxation's nodes ship exactly the demand: a plan that meets the bound
                members = [i for i in range(m) if self._reduced(i, lam) < 0]
                self.cover_cost(members)
                break
            step = mu * (ub - low) / norm
            lam = [x + step * gt if x + step * gt > 0 else 0.0 for x, gt in zip(lam, g, strict=True)]
        self.L = best_l  # for the rows read so far (more rows may allow cheaper plans)
        self.lam = best_lam

    def _reduced(self, i: int, lam: list[float]) -> float:
        ci = self.C[i]
        r = self.F[i]
        for t, a in self.H[i]:
            if lam[t] > ci:
                r -= a * (lam[t] - ci)
        return r

    def fix(self) -> list[float]:
        """Reduced costs at the best prices; rules rows out (or in) when forcing them the other way
        already costs more than the best plan. Returns the reduced costs."""
        lam = self.lam
        assert lam is not None
        rho = [self._reduced(i, lam) for i in range(self.m)]
        low = sum(x * d for x, d in zip(lam, self.D, strict=True)) + sum(r for r in rho if r < 0)
        self.L = max(self.L, low)
        bound = self.best_cost + _tol(self.best_cost)
        for i, r in enumerate(rho):
            if r > 0 and low + r > bound:
                self.excluded |= 1 << i
                self.result.bound[self.N[i]] = low + r - self.surcharge
            elif r < 0 and low - r > bound:
                self.forced |= 1 << i
        return rho

    # -- stage 3: branch and bound ----------------------------------------------------------------------
    def run(self, rho: list[float]) -> None:
        """Depth-first branch and bound over node sets (see the module docstring)."""
        K, A, C, F, D, m = self.K, self.A, self.C, self.F, self.D, self.m
        lam = self.lam
        assert lam is not None
        out = self.excluded  # rows ruled out at the root never need looking at
        holders = [[i for i in range(m) if A[i][t] and not out >> i & 1] for t in range(K)]
        minf = [min((F[i] for i in hl), default=_INF) for hl in holders]
        gmin = min(F, default=0.0)
        neg = [r if r < 0 else 0.0 for r in rho]
        pos_rho = [r if r > 0 else 0.0 for r in rho]
        base_l = sum(x * d for x, d in zip(lam, D, strict=True))
        limit = self.limit
        bits = [1 << i for i in range(m)]
        # a step of an unusually large search (many candidates times many SKUs) costs that much more
        scaled = int(self.max_steps * min(1.0, _ORDINARY_WORK / (m * K)))
        max_steps = max(min(self.max_steps, _MIN_BUDGET), scaled)
        deadline = self.deadline
        steps = self.steps
        # the root: forced rows in the set, excluded rows out
        smask = self.forced
        xmask = self.excluded
        members = [i for i in range(m) if smask & bits[i]]
        sav0 = [sum(A[i][t] for i in members) for t in range(K)]
        lag0 = sum(rho[i] for i in members) + sum(neg[i] for i in range(m) if not (smask | xmask) & bits[i])
        stack: list[
            tuple[int, int, int, float, list[int], list[int], list[float], list[int], bool, float]
        ] = [
            (
                smask,
                xmask,
                len(members),
                sum(F[i] for i in members),
                [0] * K,
                [0] * K,
                [0.0] * K,
                sav0,
                True,
                lag0,
            )
        ]
        while stack:
            smask, xmask, ns, fixed, pos0, filled0, pcost0, sav, fresh, lag = stack.pop()
            steps += 1
            if steps > max_steps or (deadline is not None and not steps & 63 and perf_counter() > deadline):
                self.result.proved = False
                break
            best = self.best_cost
            bound = best + _tol(best)
            if base_l + lag > bound:
                continue
            pos = pos0[:]
            filled = filled0[:]
            pcost = pcost0[:]
            lb = fixed
            need_any = False
            need_f = 0.0
            cover = True
            branch_t = -1
            branch_kids = 1 << 30
            branch_need = False
            feasible = True
            for t in range(K):
                Dt = D[t]
                ft = filled[t]
                if sav[t] < Dt:
                    cover = False
                if ft >= Dt:
                    lb += pcost[t]
                    continue
                hl = holders[t]
                n = len(hl)
                p = pos[t]
                ct = pcost[t]
                while p < n:
                    i = hl[p]
                    b = bits[i]
                    if smask & b:
                        q = A[i][t]
                        r = Dt - ft
                        p += 1
                        if q >= r:
                            ct += C[i] * r
                            ft = Dt
                            break
                        ct += C[i] * q
                        ft += q
                    elif xmask & b:
                        p += 1
                    else:
                        break
                pos[t] = p
                filled[t] = ft
                pcost[t] = ct
                if ft >= Dt:
                    lb += ct
                    continue
                # the rest of t from every row not ruled out; count the children branching on t would have
                need_t = sav[t] < Dt
                r = Dt - ft
                v = ct
                kids = 0
                counting = True
                cap = branch_kids if branch_need == need_t else ((1 << 30) if need_t else 0)
                k = p
                while k < n:
                    i = hl[k]
                    k += 1
                    b = bits[i]
                    if xmask & b:
                        continue
                    if smask & b:
                        counting = False
                    elif counting:
                        kids += 1
                    if r:
                        q = A[i][t]
                        if q > r:
                            q = r
                        v += C[i] * q
                        r -= q
                    elif not counting or kids >= cap:
                        break
                if r:
                    feasible = False
                    break
                lb += v
                if need_t:
                    need_any = True
                    if minf[t] > need_f:
                        need_f = minf[t]
                if (need_t and not branch_need) or (need_t == branch_need and kids < branch_kids):
                    branch_t, branch_kids, branch_need = t, kids, need_t
            if not feasible:
                continue
            if cover:
                if fresh:
                    self.cover_cost([i for i in range(m) if smask & bits[i]])
                    best = self.best_cost
                    bound = best + _tol(best)
                if branch_t < 0:
                    continue  # every SKU decided: no further node could ship anything
            if limit is not None and ns >= limit:
                continue
            extra = need_f if need_any else gmin
            if lb + extra > bound:
                continue
            if (
                need_any
                and (lb + extra + gmin > bound or (limit is not None and ns + 2 > limit))
                and not self._one_more_covers(smask | xmask, sav, holders, bits)
            ):
                continue  # two more nodes at least: cannot pay off (or exceed the limit)
            # children: the next row of the set holding branch_t, in fill order
            t = branch_t
            hl = holders[t]
            us: list[int] = []
            has_next = False
            for k in range(pos[t], len(hl)):
                i = hl[k]
                b = bits[i]
                if xmask & b:
                    continue
                if smask & b:
                    has_next = True
                    break
                us.append(i)
            var = lb - fixed
            children: list[tuple[float, int, int, float]] = []
            excl = xmask
            lag_x = lag
            for i in us:
                child_lag = lag_x + pos_rho[i]
                if fixed + F[i] + var <= bound and base_l + child_lag <= bound:
                    children.append((rho[i], i, excl, child_lag))
                excl |= bits[i]
                lag_x -= neg[i]
            skip = (smask, excl, ns, fixed, pos, filled, pcost, sav, False, lag_x)
            if has_next and branch_need:
                stack.append(skip)
            children.sort(reverse=True)
            for _, i, ex, child_lag in children:
                a = A[i]
                stack.append(
                    (
                        smask | bits[i],
                        ex,
                        ns + 1,
                        fixed + F[i],
                        pos,
                        filled,
                        pcost,
                        [sav[tt] + a[tt] for tt in range(K)],
                        True,
                        child_lag,
                    )
                )
            if has_next and not branch_need:
                stack.append(skip)
        self.steps = steps

    def _one_more_covers(
        self, decided: int, sav: list[int], holders: list[list[int]], bits: list[int]
    ) -> bool:
        """Whether some undecided row ships, with the set so far, every target."""
        gaps = [(t, self.D[t] - sav[t]) for t in range(self.K) if sav[t] < self.D[t]]
        t0 = min(gaps, key=lambda g: len(holders[g[0]]))[0]
        A = self.A
        for i in holders[t0]:
            if decided & bits[i]:
                continue
            a = A[i]
            if all(a[t] >= g for t, g in gaps):
                return True
        return False

    # -- when nothing within the limit ships everything -------------------------------------------------
    def max_cover(self) -> None:
        """Ship as many units as the shipment limit allows, then at least cost (exhaustive within the step
        budget, else greedy)."""
        assert self.limit is not None
        limit = self.limit
        best: tuple[int, float, tuple[str, ...], tuple[int, ...]] | None = None
        budget = self.max_steps
        steps = 0
        exhausted = False

        def consider(members: tuple[int, ...]) -> None:
            nonlocal best
            served, cost, units = self.fill(members)
            used = tuple(i for k, i in enumerate(members) if any(units[k]))
            key = tuple(sorted(self.N[i] for i in used))
            better = (
                best is None
                or served > best[0]
                or (
                    served == best[0]
                    and (cost < best[1] - _tol(cost) or (cost <= best[1] + _tol(cost) and key < best[2]))
                )
            )
            if better:
                best = (served, cost, key, used)

        cover = [sum(a) for a in self.A]
        order = sorted(range(self.m), key=lambda i: (-cover[i], i))

        def dfs(start: int, members: tuple[int, ...], served_ub: int) -> None:
            nonlocal steps, exhausted
            steps += 1
            if steps > budget:
                exhausted = True
                return
            if members:
                consider(tuple(sorted(members)))
            if len(members) == limit:
                return
            for k in range(start, len(order)):
                i = order[k]
                # each further node adds at most its own cover (and covers are in descending order)
                if (
                    best is not None
                    and min(self.total, served_ub + cover[i] * (limit - len(members))) < best[0]
                ):
                    break
                dfs(k + 1, (*members, i), served_ub + cover[i])
                if exhausted:
                    return

        dfs(0, (), 0)
        if exhausted:
            self.result.proved = False
            greedy = self.greedy(full=False)
            if greedy:
                consider(tuple(greedy))
        self.steps += steps
        if best is not None:
            self.best_set = best[3]
            self.best_cost = best[1]
            self.result.limited = best[0] < self.total

    def finish(self) -> SearchResult:
        res = self.result
        res.steps = self.steps
        if self.best_set is None:
            return res
        members = sorted(self.best_set)
        _, cost, units = self.fill(members)
        count = 0
        for k, i in enumerate(members):
            if any(units[k]):
                row = [0] * len(self.scope.skus)
                for t, j in enumerate(self.js):
                    row[j] = units[k][t]
                res.fills.append((self.scope.candidate(self.E[i]), row))
                count += 1
        res.cost = cost - self.surcharge * count
        if self.surcharge:
            res.found_with = {}
            res.bound = {}
        return res


def search_node_sets(
    scope: Scope, *, surcharge: float = 0.0, max_steps: int = 20_000, time_budget: float | None = None
) -> SearchResult:
    """The cheapest plan shipping the scope's coverable units from its pool within its shipment limit
    (or, if no such plan exists, the most units, then the cheapest).

    ``surcharge`` is added to every node's fixed cost (a large one makes the search minimise the number of
    shipments first). ``max_steps`` and ``time_budget`` (seconds) bound the search; the result says
    whether it proved its plan optimal.
    """
    deadline = None if time_budget is None else perf_counter() + time_budget
    s = _Search(scope, surcharge, max_steps, deadline)
    if s.K == 0:
        return s.finish()
    s.scan()
    if s.m == 0:
        return s.finish()
    s.seed()
    if s.limit == 1:
        if s.best_set is None:
            s.max_cover()
        return s.finish()
    if s.best_set is not None:
        s.lagrange(_ROOT_ITERATIONS if s.lam is None else _ROOT_WARM_ITERATIONS)
        rho = s.fix()
        if s.best_cost - s.L > _tol(s.best_cost):
            s.run(rho)
    else:  # no plan within the limit ships everything (or none was found): search without prices
        s.lam = [0.0] * s.K
        s.run([0.0] * s.m)
    if not s.result.proved and s.best_set is not None:
        s.improve(list(s.best_set), swaps=True)
    if s.best_set is None and s.limit is not None:
        s.max_cover()
    return s.finish()
