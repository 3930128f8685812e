"""Sourcing: how fast each built-in strategy plans orders, and how close its plans come to the cheapest.

For networks of 50, 200 and 1,000 nodes (seeded instances from ``benchmarks/_instances.py``: warehouses
in a box of about 1,000 x 1,000 km, each holding a random quarter of a 120-SKU catalogue; a shipment
costs 8 plus a per-unit rate that grows with the distance; orders of 1 to 10 distinct SKUs, 1 to 3 units
each, to random points of the box), every strategy plans the same orders against the same
:class:`NetworkStock`, with the default policy (split allowed, no limit, backorders allowed).

* ``orders_per_s``: orders planned per second by ``strategy.plan(request, network)``, the only thing
  timed (requests and the network are built beforehand; the network is read, never changed). Each repeat
  plans every order with every strategy, the strategies in a rotating order so that load from elsewhere
  on the machine falls on all of them alike; the figure is the median over the repeats. As timeit does,
  the cyclic garbage collector runs before each timed region and is paused inside it.
* ``mean_ratio``, ``p95_ratio``: the plan's cost over the exact optimum, on a sample of the orders (the
  first ones). The optimum comes from a mixed-integer program solved by HiGHS (``scipy.optimize.milp``)
  in the same run: binary ``y[n]`` per node holding an ordered SKU, integer ``x[n, s]`` units of SKU s
  from node n; minimise ``sum fixed[n] * y[n] + per_unit[n] * x[n, s]`` subject to ``sum over n of
  x[n, s] = units of s the network can ship`` and ``x[n, s] <= min(available, demand) * y[n]``. The
  rates are the floats of ``ShippingCost.rates(km)`` for the great-circle distance, computed here
  independently of the strategies; a plan's cost is recomputed from its shipments with the same
  formula (the plan's own ``cost`` is rounded to cents). Every plan is checked to ship every unit the
  network can ship, so the ratios compare like with like. The p95 is the nearest-rank 95th percentile.
* ``optimal_share``: the share of sampled orders whose plan costs at most ``1 + 1e-9`` times the optimum.
* ``batch_vs_one_by_one``: from ``benchmarks/_wave.py`` (``measure_batch(quick)``) when that module
  exists, else null.

Targets (checked and printed, never asserted): ``cost_optimal`` at 50 nodes an optimal share of at least
0.99 at 1,000 orders/s or more; at 1,000 nodes a mean ratio of at most 1.005 and a p95 of at most 1.03 at
300 orders/s or more. The last line printed is a JSON object. Needs scipy (exit code 2 without it).

    python benchmarks/sourcing.py            # 2,000 orders per size, 3 repeats; 300/300/150 optima
    python benchmarks/sourcing.py --quick    # 400 orders per size, 2 repeats; 80/80/40 optima
    python benchmarks/sourcing.py --profile  # also print where cost_optimal spends its time (1,000 nodes)
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import pstats
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _instances import make_orders, make_stocks
from ordercore.geo import haversine_km
from ordercore.sourcing import STRATEGIES, NetworkStock, NodeStock, SourcingPlan, SourcingRequest

SEED = 20240601
SIZES = (50, 200, 1000)
NAMES = ("priority", "nearest", "fewest_shipments", "cost_optimal")
FULL = {"orders": 2000, "repeats": 3, "optima": {50: 300, 200: 300, 1000: 150}}
QUICK = {"orders": 400, "repeats": 2, "optima": {50: 80, 200: 80, 1000: 40}}
OPTIMAL_TOL = 1e-9
TARGETS = {
    50: {"optimal_share": 0.99, "orders_per_s": 1000.0},
    1000: {"mean_ratio": 1.005, "p95_ratio": 1.03, "orders_per_s": 300.0},
}


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collect, then pause the cyclic garbage collector for a timed region (as timeit does)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- the exact optimum --------------------------------------------------------------------------------------
class Exact:
    """The cheapest plan per order by MILP (HiGHS), from the node stock directly."""

    def __init__(self, stocks: Sequence[NodeStock]) -> None:
        import numpy as np
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import coo_matrix

        self.np, self.milp, self.Bounds, self.LinearConstraint, self.coo = (
            np,
            milp,
            Bounds,
            LinearConstraint,
            coo_matrix,
        )
        self.nodes = {s.node_id: s for s in stocks}
        self.by_sku: dict[Any, dict[str, int]] = {}
        for s in stocks:
            for sku, qty in s.available.items():
                if qty > 0:
                    self.by_sku.setdefault(sku, {})[s.node_id] = qty

    def units(self, request: SourcingRequest) -> dict[Any, int]:
        """Units of each SKU the network can ship for ``request``."""
        demand: dict[Any, int] = {}
        for line in request.lines:
            demand[line.sku] = demand.get(line.sku, 0) + line.quantity
        return {s: min(d, sum(self.by_sku.get(s, {}).values())) for s, d in demand.items()}

    def solve(self, request: SourcingRequest) -> float:
        np = self.np
        target = {s: d for s, d in self.units(request).items() if d > 0}
        if not target:
            return 0.0
        holders = sorted({n for s in target for n in self.by_sku.get(s, {})})
        rates = {}
        for n in holders:
            km = haversine_km(self.nodes[n].node.location, request.destination)
            r = self.nodes[n].node.cost.rates(km)
            if r is not None:
                rates[n] = r
        cands = [n for n in holders if n in rates]
        pairs = [(n, s) for n in cands for s in target if self.by_sku[s].get(n, 0) > 0]
        ny = len(cands)
        nv = ny + len(pairs)
        cost = np.zeros(nv)
        upper = np.ones(nv)
        for i, n in enumerate(cands):
            cost[i] = rates[n][0]
        rows, cols, vals, lo, hi = [], [], [], [], []
        where = {n: i for i, n in enumerate(cands)}
        per_sku: dict[Any, list[int]] = {s: [] for s in target}
        for k, (n, s) in enumerate(pairs):
            v = ny + k
            cost[v] = rates[n][1]
            upper[v] = min(self.by_sku[s][n], target[s])
            per_sku[s].append(v)
        r = 0
        for s, cols_s in per_sku.items():
            rows.extend([r] * len(cols_s))
            cols.extend(cols_s)
            vals.extend([1.0] * len(cols_s))
            lo.append(target[s])
            hi.append(target[s])
            r += 1
        for k, (n, _) in enumerate(pairs):
            v = ny + k
            rows += [r, r]
            cols += [v, where[n]]
            vals += [1.0, -upper[v]]
            lo.append(-np.inf)
            hi.append(0.0)
            r += 1
        matrix = self.coo((vals, (rows, cols)), shape=(r, nv)).tocsr()
        res = self.milp(
            cost,
            constraints=self.LinearConstraint(matrix, lo, hi),
            integrality=np.ones(nv),
            bounds=self.Bounds(np.zeros(nv), upper),
            options={"mip_rel_gap": 1e-12},
        )
        if not res.success:
            raise SystemExit(f"MILP failed for {request.order_ref}: {res.message}")
        return float(res.fun)

    def plan_cost(self, plan: SourcingPlan) -> float:
        """The plan's cost from its shipments with the float rates (as the MILP counts it)."""
        total = 0.0
        for s in plan.shipments:
            rates = self.nodes[s.node_id].node.cost.rates(s.distance_km)
            assert rates is not None
            total += rates[0] + rates[1] * s.units
        return total


# -- one network size ---------------------------------------------------------------------------------------
def measure(n_nodes: int, n_orders: int, repeats: int, n_optima: int) -> dict[str, dict[str, float]]:
    stocks = make_stocks(n_nodes, SEED)
    network = NetworkStock(stocks)
    orders = make_orders(n_orders, SEED)
    sample = orders[:n_optima]
    times: dict[str, list[float]] = {name: [] for name in NAMES}
    plans: dict[str, list[SourcingPlan]] = {}
    for r in range(repeats):
        for k in range(len(NAMES)):
            name = NAMES[(k + r) % len(NAMES)]
            plan = STRATEGIES[name].plan
            with gc_paused():
                t0 = perf_counter()
                for request in orders:
                    plan(request, network)
                times[name].append(perf_counter() - t0)
        print(
            f"  {n_nodes} nodes, repeat {r + 1}/{repeats}: "
            + ", ".join(f"{name} {times[name][-1]:.2f} s" for name in NAMES),
            file=sys.stderr,
            flush=True,
        )
    for name in NAMES:
        plans[name] = [STRATEGIES[name].plan(request, network) for request in sample]

    exact = Exact(stocks)
    t0 = perf_counter()
    optima = [exact.solve(request) for request in sample]
    print(
        f"  {n_nodes} nodes: {len(sample)} optima in {perf_counter() - t0:.1f} s", file=sys.stderr, flush=True
    )
    out: dict[str, dict[str, float]] = {}
    for name in NAMES:
        ratios = []
        for request, plan, best in zip(sample, plans[name], optima, strict=True):
            shipped = sum(s.units for s in plan.shipments)
            if shipped != sum(exact.units(request).values()):
                raise SystemExit(f"{name} shipped {shipped} units of {request.order_ref}, not all it could")
            cost = exact.plan_cost(plan)
            ratios.append(cost / best if best else (1.0 if not cost else math.inf))
        ratios.sort()
        out[name] = {
            "orders_per_s": round(n_orders / statistics.median(times[name]), 1),
            "mean_ratio": round(statistics.fmean(ratios), 5),
            "p95_ratio": round(ratios[math.ceil(0.95 * len(ratios)) - 1], 5),
            "optimal_share": round(sum(x <= 1 + OPTIMAL_TOL for x in ratios) / len(ratios), 4),
        }
        if name == "cost_optimal":
            out[name]["_proved"] = sum(p.optimal for p in plans[name]) / len(sample)
    return out


def profile_cost_optimal(n_nodes: int, n_orders: int) -> str:
    network = NetworkStock(make_stocks(n_nodes, SEED))
    orders = make_orders(n_orders, SEED)
    strategy = STRATEGIES["cost_optimal"]
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [strategy.plan(o, network) for o in orders])
    out = io.StringIO()
    out.write(f"cost_optimal profile: {n_orders} orders, {n_nodes} nodes (cProfile, by tottime)\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return out.getvalue()


def batch_figure(quick: bool) -> float | None:
    """``measure_batch(quick)`` from benchmarks/_wave.py, if that module exists."""
    try:
        from _wave import measure_batch  # type: ignore[import-not-found]
    except ImportError:
        return None
    return float(measure_batch(quick))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer orders and optima (under a minute)")
    parser.add_argument("--orders", type=int, help="orders per network size")
    parser.add_argument("--repeats", type=int, help="repeats to take the median of (default 3)")
    parser.add_argument("--profile", action="store_true", help="first print a profile of cost_optimal")
    args = parser.parse_args(argv)
    try:
        import scipy.optimize  # noqa: F401
    except ImportError:
        print(
            "benchmarks/sourcing.py needs scipy (HiGHS) for the exact optimum:"
            " pip install -e '.[bench]' (or pip install scipy)",
            file=sys.stderr,
        )
        return 2
    config = QUICK if args.quick else FULL
    n_orders = args.orders or int(config["orders"])  # type: ignore[call-overload]
    repeats = args.repeats or int(config["repeats"])  # type: ignore[call-overload]
    optima: dict[int, int] = config["optima"]  # type: ignore[assignment]
    if args.profile:
        print(profile_cost_optimal(1000, 300))

    started = perf_counter()
    results = {n: measure(n, n_orders, repeats, min(optima[n], n_orders)) for n in SIZES}
    batch = batch_figure(args.quick)

    print(
        f"Sourcing benchmark: {n_orders:,} orders per network size, median of {repeats} repeat(s);"
        f" ratios against the MILP optimum on the first {', '.join(str(optima[n]) for n in SIZES)} orders"
        f" ({perf_counter() - started:.0f} s)"
    )
    print()
    print(
        f"{'nodes':>5}  {'strategy':<17} {'orders/s':>9} {'us/order':>9} {'mean ratio':>11} {'p95 ratio':>10} {'optimal':>8}"
    )
    for n in SIZES:
        for name in NAMES:
            row = results[n][name]
            print(
                f"{n:>5}  {name:<17} {row['orders_per_s']:>9,.0f} {1e6 / row['orders_per_s']:>9,.0f}"
                f" {row['mean_ratio']:>11.4f} {row['p95_ratio']:>10.4f} {row['optimal_share']:>8.1%}"
            )
        print(
            f"{'':>5}  (cost_optimal proved its plan optimal for {results[n]['cost_optimal']['_proved']:.1%})"
        )
    print()
    for n, target in TARGETS.items():
        row = results[n]["cost_optimal"]
        checks = []
        for key, limit in target.items():
            ok = row[key] <= limit if key.endswith("ratio") else row[key] >= limit
            sign = "<=" if key.endswith("ratio") else ">="
            checks.append(f"{key} {row[key]:g} {sign} {limit:g} {'met' if ok else 'NOT met'}")
        print(f"cost_optimal at {n} nodes: " + "; ".join(checks))
    print(
        "instances: nearest-first mean cost ratio "
        + ", ".join(f"{results[n]['nearest']['mean_ratio']:.3f} at {n} nodes" for n in SIZES)
    )
    print(
        f"batch vs one by one: {'n/a (benchmarks/_wave.py not found)' if batch is None else f'{batch:.3g}'}"
    )
    for n in SIZES:
        results[n]["cost_optimal"].pop("_proved", None)
    print(
        json.dumps(
            {
                "nodes": {str(n): {name: results[n][name] for name in NAMES} for n in SIZES},
                "batch_vs_one_by_one": batch,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
