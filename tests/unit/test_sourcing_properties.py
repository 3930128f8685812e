"""Properties of every sourcing strategy on small random networks (hypothesis).

The networks are small enough for a brute force over every subset of nodes, which is the reference for
``cost_optimal``.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordercore.geo import haversine_km
from ordercore.inventory.nodes import FulfilmentNode, NodeKind, ShippingCost, Zone
from ordercore.sourcing import (
    STRATEGIES,
    CostOptimal,
    NetworkStock,
    NodeStock,
    SourcingLine,
    SourcingPlan,
    SourcingPolicy,
    SourcingRequest,
)
from ordercore.sourcing.network import point_radians
from ordercore.values import GeoPoint, Sku

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SKUS = ("A", "B", "C", "D")
NAMES = sorted(STRATEGIES)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

coordinates = st.builds(
    GeoPoint,
    st.integers(5000, 5400).map(lambda x: x / 100),
    st.integers(600, 1400).map(lambda x: x / 100),
)
money = st.integers(0, 1500).map(lambda x: Decimal(x) / 100)


@st.composite
def node_stocks(draw: st.DrawFn, node_id: str) -> NodeStock:
    cost = ShippingCost(
        "EUR",
        per_shipment=draw(money),
        per_unit=draw(st.integers(0, 300).map(lambda x: Decimal(x) / 100)),
        per_unit_km=draw(st.integers(0, 20).map(lambda x: Decimal(x) / 1000)),
    )
    node = FulfilmentNode(node_id, NodeKind.WAREHOUSE, draw(coordinates), cost)
    held = draw(st.lists(st.sampled_from(SKUS), unique=True, max_size=4))
    available = {Sku(s): draw(st.integers(0, 4)) for s in held}
    incoming = {}
    if draw(st.booleans()):
        incoming[Sku(draw(st.sampled_from(SKUS)))] = (
            (date(2026, 3, draw(st.integers(3, 28))), draw(st.integers(1, 3))),
        )
    return NodeStock(node, available, incoming)


@st.composite
def instances(
    draw: st.DrawFn, *, max_nodes: int = 6, limits: bool = True
) -> tuple[list[NodeStock], SourcingRequest]:
    n = draw(st.integers(1, max_nodes))
    stocks = [draw(node_stocks(f"n{k}")) for k in range(n)]
    lines = tuple(
        SourcingLine(f"L{k}", Sku(draw(st.sampled_from(SKUS))), draw(st.integers(1, 4)))
        for k in range(draw(st.integers(1, 4)))
    )
    policy = SourcingPolicy()
    if limits:
        policy = SourcingPolicy(
            allow_split=draw(st.booleans()), max_shipments=draw(st.sampled_from([None, None, 1, 2]))
        )
    return stocks, SourcingRequest("O-1", lines, draw(coordinates), AT, policy)


def float_cost(plan: SourcingPlan, network: NetworkStock) -> float:
    total = 0.0
    for s in plan.shipments:
        ns = network.get(s.node_id)
        assert ns is not None
        rates = ns.node.cost.rates(s.distance_km)
        assert rates is not None
        total += rates[0] + rates[1] * s.units
    return total


def brute_force(stocks: list[NodeStock], req: SourcingRequest) -> tuple[int, float]:
    """(units shipped, cost) of the best plan over every subset of nodes: most units, then cheapest."""
    demand: dict[Sku, int] = {}
    for line in req.lines:
        demand[line.sku] = demand.get(line.sku, 0) + line.quantity
    nodes = [s for s in stocks if any(s.available.get(k, 0) for k in demand)]
    rates = {}
    for s in nodes:
        r = s.node.cost.rates(haversine_km(s.node.location, req.destination))
        assert r is not None
        rates[s.node_id] = r
    limit = req.policy.shipment_limit or len(nodes)
    best = (0, 0.0)
    for k in range(1, min(limit, len(nodes)) + 1):
        for subset in itertools.combinations(nodes, k):
            ordered = sorted(subset, key=lambda s: (rates[s.node_id][1], rates[s.node_id][0], s.node_id))
            served, cost, used = 0, 0.0, set()
            for sku, d in demand.items():
                for s in ordered:
                    q = min(s.available.get(sku, 0), d)
                    if q:
                        served += q
                        d -= q
                        cost += rates[s.node_id][1] * q
                        used.add(s.node_id)
            cost += sum(rates[n][0] for n in used)
            if served > best[0] or (served == best[0] and cost < best[1]):
                best = (served, cost)
    return best


@FAST
@given(instances())
def test_plans_never_take_more_than_is_available_and_account_for_every_unit(
    case: tuple[list[NodeStock], SourcingRequest],
) -> None:
    stocks, req = case
    network = NetworkStock(stocks)
    sku_of = {line.line_id: line.sku for line in req.lines}
    for name in NAMES:
        plan = STRATEGIES[name].plan(req, network)
        taken: dict[tuple[str, Sku], int] = {}
        for s in plan.shipments:
            for line_id, q in s.lines:
                key = (s.node_id, sku_of[line_id])
                taken[key] = taken.get(key, 0) + q
        for (node_id, sku), q in taken.items():
            assert q <= network.available(node_id, sku), (name, node_id, sku)
        for line in req.lines:
            assert plan.allocated(line.line_id) + plan.backordered(line.line_id) == line.quantity
        limit = req.policy.shipment_limit
        assert limit is None or len(plan.shipments) <= limit
        assert len(set(plan.node_ids)) == len(plan.shipments)
        assert plan.cost.amount == sum(s.cost.amount for s in plan.shipments)


@FAST
@given(instances(), st.randoms(use_true_random=False))
def test_plans_do_not_depend_on_the_order_nodes_and_lines_are_listed_in(
    case: tuple[list[NodeStock], SourcingRequest], rng: random.Random
) -> None:
    stocks, req = case
    shuffled = stocks[:]
    rng.shuffle(shuffled)
    lines = list(req.lines)
    rng.shuffle(lines)
    other = SourcingRequest(req.order_ref, tuple(lines), req.destination, req.at, req.policy)
    for name in NAMES:
        assert STRATEGIES[name].plan(req, NetworkStock(stocks)) == STRATEGIES[name].plan(
            other, NetworkStock(shuffled)
        )


@FAST
@given(instances(limits=False))
def test_cost_optimal_is_never_costlier_than_another_strategy(
    case: tuple[list[NodeStock], SourcingRequest],
) -> None:
    stocks, req = case
    network = NetworkStock(stocks)
    best = STRATEGIES["cost_optimal"].plan(req, network)
    assert best.optimal
    cost = float_cost(best, network)
    for name in NAMES:
        plan = STRATEGIES[name].plan(req, network)
        assert sum(s.units for s in plan.shipments) == sum(s.units for s in best.shipments)
        assert cost <= float_cost(plan, network) * (1 + 1e-9) + 1e-9, name


@FAST
@given(instances())
def test_cost_optimal_equals_a_brute_force_over_every_subset_of_nodes(
    case: tuple[list[NodeStock], SourcingRequest],
) -> None:
    stocks, req = case
    network = NetworkStock(stocks)
    plan = CostOptimal().plan(req, network)
    served, cost = brute_force(stocks, req)
    assert plan.optimal
    assert sum(s.units for s in plan.shipments) == served
    assert abs(float_cost(plan, network) - cost) <= 1e-9 * max(1.0, cost)


@settings(max_examples=40, deadline=None)
@given(instances(max_nodes=10, limits=False))
def test_a_tight_step_budget_still_gives_a_valid_plan(case: tuple[list[NodeStock], SourcingRequest]) -> None:
    stocks, req = case
    network = NetworkStock(stocks)
    exact = CostOptimal().plan(req, network)
    rushed = CostOptimal(max_steps=2).plan(req, network)
    assert sum(s.units for s in rushed.shipments) == sum(s.units for s in exact.shipments)
    assert float_cost(rushed, network) >= float_cost(exact, network) * (1 - 1e-9) - 1e-9


@FAST
@given(instances(), st.sampled_from(NAMES))
def test_apply_then_restore_gives_back_the_network(
    case: tuple[list[NodeStock], SourcingRequest], name: str
) -> None:
    stocks, req = case
    network = NetworkStock(stocks)
    before = list(network)
    plan = STRATEGIES[name].plan(req, network)
    copy = network.copy()
    network.apply(req, plan)
    sku_of = {line.line_id: line.sku for line in req.lines}
    for s in plan.shipments:
        for line_id, _ in s.lines:
            sku = sku_of[line_id]
            shipped = sum(q for lid, q in s.lines if sku_of[lid] == sku)
            assert network.available(s.node_id, sku) == copy.available(s.node_id, sku) - shipped
    assert list(copy) == before
    network.restore(req, plan)
    assert list(network) == before


@FAST
@given(
    coordinates,
    coordinates,
    st.lists(st.integers(1, 2000).map(lambda x: Decimal(x) / 10), unique=True, max_size=3).map(sorted),
)
def test_precomputed_distances_and_rates_match_the_node_values(
    a: GeoPoint, b: GeoPoint, bounds: list[Decimal]
) -> None:
    cost = ShippingCost(
        "EUR",
        per_shipment=Decimal("3.1"),
        per_unit=Decimal("0.7"),
        per_km=Decimal("0.013"),
        per_unit_km=Decimal("0.0021"),
        zones=tuple(Zone(m, Decimal("1.5"), Decimal("0.25")) for m in bounds),
    )
    node = FulfilmentNode("n", NodeKind.WAREHOUSE, a, cost)
    network = NetworkStock([NodeStock(node, {Sku("A"): 1})])
    facts = network.facts("n")
    km = facts.distance_km(*point_radians(b))
    assert km == haversine_km(a, b)
    assert facts.rates(km) == cost.rates(km)
    for m in bounds:  # exactly on and around a zone's edge
        for x in (float(m), float(m) + 1e-9, float(m) - 1e-9):
            assert facts.rates(x) == cost.rates(x)
