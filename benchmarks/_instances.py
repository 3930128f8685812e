"""Seeded sourcing instances for the benchmarks and the tests: a network of nodes with stock in a region
about 1,000 km across, and orders against it.

Every node is a warehouse at a random point of the box latitude 46-55 N, longitude 6-20 E (about
1,000 x 1,000 km). It holds each SKU of the catalogue with probability ``hold_probability``, with 1 to
``max_units`` units. A shipment costs ``per_shipment`` (8) plus, per unit, a handling rate drawn per node
from ``unit_rate`` plus ``per_unit_km`` per km to the destination. Orders ask for 1 to 10 distinct SKUs,
1 to 3 units each, delivered to a random point of the same box.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from ordercore.inventory.nodes import FulfilmentNode, NodeKind, ShippingCost
from ordercore.sourcing import NetworkStock, NodeStock, SourcingLine, SourcingRequest
from ordercore.values import GeoPoint, Sku

__all__ = ["AT", "InstanceConfig", "make_network", "make_orders", "make_stocks"]

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning, before every cut-off
LAT = (46.0, 55.0)
LON = (6.0, 20.0)


@dataclass(frozen=True)
class InstanceConfig:
    """The knobs of the generator (defaults are the benchmark's)."""

    skus: int = 120
    hold_probability: float = 0.25
    max_units: int = 12
    per_shipment: Decimal = Decimal(8)
    unit_rate: tuple[str, str] = ("0.40", "1.20")
    per_unit_km: Decimal = Decimal("0.0095")
    max_lines: int = 10
    max_quantity: int = 3


def _point(rng: random.Random) -> GeoPoint:
    return GeoPoint(round(rng.uniform(*LAT), 5), round(rng.uniform(*LON), 5))


def make_stocks(n_nodes: int, seed: int, config: InstanceConfig = InstanceConfig()) -> list[NodeStock]:
    """``n_nodes`` nodes with stock (node ids N0000...)."""
    rng = random.Random(f"nodes-{n_nodes}-{seed}")
    lo, hi = (int(Decimal(x) * 100) for x in config.unit_rate)
    stocks = []
    for k in range(n_nodes):
        cost = ShippingCost(
            "EUR",
            per_shipment=config.per_shipment,
            per_unit=Decimal(rng.randint(lo, hi)) / 100,
            per_unit_km=config.per_unit_km,
        )
        node = FulfilmentNode(f"N{k:04d}", NodeKind.WAREHOUSE, _point(rng), cost)
        available = {
            Sku(f"S{s:04d}"): rng.randint(1, config.max_units)
            for s in range(config.skus)
            if rng.random() < config.hold_probability
        }
        stocks.append(NodeStock(node, available))
    return stocks


def make_network(n_nodes: int, seed: int, config: InstanceConfig = InstanceConfig()) -> NetworkStock:
    return NetworkStock(make_stocks(n_nodes, seed, config))


def make_orders(n_orders: int, seed: int, config: InstanceConfig = InstanceConfig()) -> list[SourcingRequest]:
    """``n_orders`` requests of 1 to ``max_lines`` distinct SKUs, 1 to ``max_quantity`` units each."""
    rng = random.Random(f"orders-{seed}")
    orders = []
    for i in range(n_orders):
        skus = rng.sample(range(config.skus), rng.randint(1, config.max_lines))
        lines = tuple(
            SourcingLine(f"L{k + 1}", Sku(f"S{s:04d}"), rng.randint(1, config.max_quantity))
            for k, s in enumerate(skus)
        )
        orders.append(SourcingRequest(f"O{i:06d}", lines, _point(rng), AT))
    return orders
