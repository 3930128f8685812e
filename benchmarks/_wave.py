"""Batch sourcing: what sourcing a scarce wave jointly saves against sourcing it one order at a time.

A seeded wave (``ORDERS`` orders of 1-5 SKUs, 1-3 units each, to random places in Germany) is sourced over
30 warehouses whose stock covers 70-90 % of the demand for each SKU, spread over a few nodes per SKU. Every
shipment costs 8 EUR plus 0.004 EUR per unit and km (``ShippingCost(per_shipment=8, per_unit_km=...)``).
The wave is sourced twice with the ``cost_optimal`` strategy, first come first served: one by one
(:func:`ordercore.sourcing.batch.source_one_by_one`) and jointly
(:func:`ordercore.sourcing.batch.source_wave`).

``batch_vs_one_by_one`` is the joint total cost over the one-by-one total cost (lower is better, at most
1). Both sides are compared on the whole wave. The fairness contract lets the joint pass ship more units
than one by one (never fewer, order by order), and extra units cost extra shipping, so the raw ratio is
conservative: it counts any extra units against the joint pass. The table also shows the units each side
ships and the cost per shipped unit. Costs are deterministic; the seconds are reported, never asserted.

    python benchmarks/_wave.py            # 200 orders
    python benchmarks/_wave.py --quick    # 80 orders
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from time import perf_counter
from typing import Any

from ordercore.inventory.nodes import FulfilmentNode, NodeKind, ShippingCost
from ordercore.sourcing import STRATEGIES, NetworkStock
from ordercore.sourcing.batch import Fairness, WaveOrder, WaveResult, source_one_by_one, source_wave
from ordercore.sourcing.model import NodeStock, SourcingLine, SourcingRequest
from ordercore.values import GeoPoint, Sku

SEED = 20260302
NODES = 30
SKUS = 60
ORDERS = 200
QUICK_ORDERS = 80
AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday morning, before the cut-off
PER_UNIT_KM = Decimal("0.004")


def _place(rng: random.Random) -> GeoPoint:
    return GeoPoint(round(rng.uniform(47.5, 54.5), 3), round(rng.uniform(6.5, 14.5), 3))


def build_wave(orders: int, seed: int = SEED) -> tuple[NetworkStock, list[WaveOrder]]:
    """The seeded network and wave: demand first, then stock for 70-90 % of each SKU's demand."""
    rng = random.Random(seed)
    skus = [Sku(f"SKU-{i:03d}") for i in range(SKUS)]
    weights = [1.0 / (i + 1) ** 0.6 for i in range(SKUS)]  # a few SKUs sell much more than the rest
    wave: list[WaveOrder] = []
    demand = dict.fromkeys(skus, 0)
    for n in range(orders):
        chosen: list[Sku] = []
        for sku in rng.choices(skus, weights, k=rng.randint(1, 5)):
            if sku not in chosen:
                chosen.append(sku)
        lines = tuple(SourcingLine(f"L{i + 1}", sku, rng.randint(1, 3)) for i, sku in enumerate(chosen))
        for line in lines:
            demand[line.sku] += line.quantity
        request = SourcingRequest(order_ref=f"W-{n:04d}", lines=lines, destination=_place(rng), at=AT)
        wave.append(WaveOrder(request, placed_at=AT - timedelta(minutes=orders - n)))
    cost = ShippingCost(currency="EUR", per_shipment=Decimal(8), per_unit_km=PER_UNIT_KM)
    nodes = [FulfilmentNode(f"N{i:02d}", NodeKind.WAREHOUSE, _place(rng), cost) for i in range(NODES)]
    available: list[dict[Sku, int]] = [{} for _ in nodes]
    for sku in skus:
        units = round(demand[sku] * rng.uniform(0.7, 0.9))
        holders = rng.sample(range(NODES), rng.randint(2, 6))
        for _ in range(units):
            k = rng.choice(holders)
            available[k][sku] = available[k].get(sku, 0) + 1
    return NetworkStock([NodeStock(node, stock) for node, stock in zip(nodes, available, strict=True)]), wave


def run(quick: bool) -> tuple[WaveResult, WaveResult, dict[str, Any]]:
    """Source the wave both ways; both results and the figures."""
    stock, wave = build_wave(QUICK_ORDERS if quick else ORDERS)
    strategy = STRATEGIES["cost_optimal"]
    t0 = perf_counter()
    alone = source_one_by_one(wave, stock, strategy, Fairness.FIRST_COME)
    t1 = perf_counter()
    joint = source_wave(wave, stock, strategy, Fairness.FIRST_COME)
    t2 = perf_counter()
    ordered = sum(line.quantity for o in wave for line in o.request.lines)
    figures: dict[str, Any] = {
        "orders": len(wave),
        "nodes": len(stock),
        "units_ordered": ordered,
        "units_in_stock": sum(sum(ns.available.values()) for ns in stock),
        "one_by_one_s": round(t1 - t0, 3),
        "joint_s": round(t2 - t1, 3),
        "rounds": joint.rounds,
        "moves": joint.moves,
        "batch_vs_one_by_one": float(joint.cost.amount / alone.cost.amount) if alone.cost.amount else 1.0,
        "per_unit_ratio": (
            float((joint.cost.amount / joint.units_shipped) / (alone.cost.amount / alone.units_shipped))
            if alone.units_shipped and joint.units_shipped
            else 1.0
        ),
    }
    return alone, joint, figures


def measure_batch(quick: bool) -> float:
    """Joint total cost over one-by-one total cost for the seeded scarce wave (lower is better, <= 1)."""
    _, _, figures = run(quick)
    ratio: float = figures["batch_vs_one_by_one"]
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ORDERS} orders instead of {ORDERS}")
    args = parser.parse_args(argv)
    alone, joint, figures = run(args.quick)
    print(
        f"{figures['orders']} orders, {figures['units_ordered']} units ordered,"
        f" {figures['units_in_stock']} in stock over {figures['nodes']} nodes"
    )
    rows = [
        ("", "one by one", "joint"),
        ("total cost", str(alone.cost), str(joint.cost)),
        ("units shipped", str(alone.units_shipped), str(joint.units_shipped)),
        ("units waiting", str(alone.units_waiting), str(joint.units_waiting)),
        ("shipments", str(_shipments(alone)), str(_shipments(joint))),
        (
            "cost per shipped unit",
            f"{alone.cost.amount / max(alone.units_shipped, 1):.3f}",
            f"{joint.cost.amount / max(joint.units_shipped, 1):.3f}",
        ),
        ("seconds", f"{figures['one_by_one_s']:.2f}", f"{figures['joint_s']:.2f}"),
    ]
    for label, a, b in rows:
        print(f"  {label:<22} {a:>14} {b:>14}")
    print(f"  joint pass: {figures['moves']} changes in {figures['rounds']} rounds; for example:")
    for note in joint.notes[1:4]:
        print(f"    {note}")
    print(f"batch_vs_one_by_one = {figures['batch_vs_one_by_one']:.4f}")
    print(json.dumps(figures))
    return 0


def _shipments(result: WaveResult) -> int:
    return sum(len(plan.shipments) for _, plan in result.plans)


if __name__ == "__main__":
    sys.exit(main())
