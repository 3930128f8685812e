"""Batch sourcing: a wave sourced jointly never costs more than one by one, never gives an order fewer units
than one by one in fairness order, and fixes the myopic choices one by one makes when stock is scarce."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordercore.errors import NotFound, ValidationFailed
from ordercore.inventory.nodes import FulfilmentNode, NodeKind, ShippingCost
from ordercore.money import Money
from ordercore.sourcing import STRATEGIES, NetworkStock
from ordercore.sourcing.batch import (
    DEFAULT_MAX_ROUNDS,
    Fairness,
    WaveOrder,
    WaveResult,
    fairness_order,
    source_one_by_one,
    source_wave,
)
from ordercore.sourcing.model import NodeStock, SourcingLine, SourcingPlan, SourcingPolicy, SourcingRequest
from ordercore.values import GeoPoint, Sku

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning, before every cut-off
HOME = GeoPoint(52.52, 13.40)
A, B, C = Sku("A"), Sku("B"), Sku("C")
COST_OPTIMAL = STRATEGIES["cost_optimal"]
DEFAULT_POLICY = SourcingPolicy()


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


def node(
    node_id: str,
    *,
    per_unit: str = "0",
    per_unit_km: str = "0",
    at: GeoPoint = HOME,
    **stock: int,
) -> NodeStock:
    """A warehouse charging 8 EUR a shipment plus ``per_unit`` a unit (and ``per_unit_km`` per unit-km)."""
    cost = ShippingCost(
        currency="EUR",
        per_shipment=Decimal(8),
        per_unit=Decimal(per_unit),
        per_unit_km=Decimal(per_unit_km),
    )
    return NodeStock(
        FulfilmentNode(node_id, NodeKind.WAREHOUSE, at, cost), {Sku(s): q for s, q in stock.items()}
    )


def order(
    ref: str,
    *lines: tuple[Sku, int],
    to: GeoPoint = HOME,
    priority: int = 0,
    placed_at: datetime | None = None,
    policy: SourcingPolicy = DEFAULT_POLICY,
) -> WaveOrder:
    request = SourcingRequest(
        order_ref=ref,
        lines=tuple(SourcingLine(f"{ref}-L{i + 1}", sku, q) for i, (sku, q) in enumerate(lines)),
        destination=to,
        at=AT,
        policy=policy,
    )
    return WaveOrder(request, priority=priority, placed_at=placed_at)


def shape(result: WaveResult) -> dict[str, tuple[tuple[str, tuple[tuple[str, int], ...]], ...]]:
    """Each order's shipments as ``(node_id, ((line_id, qty), ...))``."""
    return {ref: tuple((s.node_id, s.lines) for s in p.shipments) for ref, p in result.plans}


def snapshot(stock: NetworkStock) -> list[tuple[str, dict[Sku, int], int | None]]:
    return [(ns.node_id, dict(ns.available), stock.capacity_left(ns.node_id)) for ns in stock]


def units(result: WaveResult, ref: str) -> int:
    return sum(s.units for s in result.plan_for(ref).shipments)


# -- a scarce wave one by one gets wrong --------------------------------------------------------------------


def scarce_network() -> NetworkStock:
    """W3 is cheapest and holds the only B; A is also at W5 and W9, dearer."""
    return NetworkStock(
        [node("W3", per_unit="1", A=1, B=1), node("W5", per_unit="2", A=1), node("W9", per_unit="3", A=1)]
    )


def scarce_wave() -> list[WaveOrder]:
    return [order("O-7", (A, 1)), order("O-12", (A, 1), (B, 1))]


def test_one_by_one_is_myopic_on_a_scarce_wave() -> None:
    result = source_one_by_one(scarce_wave(), scarce_network(), COST_OPTIMAL, Fairness.FIRST_COME)
    # O-7 takes W3's only A, so O-12 must split: A from W5, B from W3
    assert shape(result) == {
        "O-7": (("W3", (("O-7-L1", 1),)),),
        "O-12": (("W3", (("O-12-L2", 1),)), ("W5", (("O-12-L1", 1),))),
    }
    assert result.plan_for("O-7").cost == eur("9.00")
    assert result.plan_for("O-12").cost == eur("19.00")
    assert result.cost == result.one_by_one_cost == eur("28.00")
    assert (result.units_shipped, result.units_waiting, result.joint) == (3, 0, False)
    assert result.savings == eur("0.00")


def test_the_wave_ships_the_later_order_complete_and_moves_the_earlier_one() -> None:
    stock = scarce_network()
    before = snapshot(stock)
    result = source_wave(scarce_wave(), stock, COST_OPTIMAL, Fairness.FIRST_COME)
    assert shape(result) == {
        "O-7": (("W5", (("O-7-L1", 1),)),),
        "O-12": (("W3", (("O-12-L1", 1), ("O-12-L2", 1))),),
    }
    assert result.plan_for("O-7").cost == eur("10.00")
    assert result.plan_for("O-12").cost == eur("10.00")
    assert result.cost == eur("20.00")
    assert result.one_by_one_cost == eur("28.00")
    assert result.savings == eur("8.00")
    assert (result.units_shipped, result.units_waiting, result.moves, result.joint) == (3, 0, 1, True)
    assert [ref for ref, _ in result.plans] == ["O-7", "O-12"]
    assert "O-7 moved from W3 to W5 so that O-12 could ship complete from W3" in result.notes[1]
    assert result.notes[1].endswith("saves 8.00 EUR")
    assert "28.00 EUR one by one" in result.notes[0]
    assert "saves 8.00 EUR" in result.explain()
    assert snapshot(stock) == before


def test_when_priority_already_serves_the_later_order_first_the_wave_changes_nothing() -> None:
    first, second = scarce_wave()
    wave = [first, WaveOrder(second.request, priority=1)]
    alone = source_one_by_one(wave, scarce_network(), COST_OPTIMAL, Fairness.PRIORITY)
    joint = source_wave(wave, scarce_network(), COST_OPTIMAL, Fairness.PRIORITY)
    assert shape(joint) == shape(alone)
    assert shape(joint)["O-12"] == (("W3", (("O-12-L1", 1), ("O-12-L2", 1))),)
    assert [ref for ref, _ in joint.plans] == ["O-12", "O-7"]
    assert joint.cost == alone.cost == eur("20.00")
    assert joint.moves == 0


def test_max_rounds_zero_keeps_the_one_by_one_plans() -> None:
    wave, stock = scarce_wave(), scarce_network()
    joint = source_wave(wave, stock, COST_OPTIMAL, Fairness.FIRST_COME, max_rounds=0)
    alone = source_one_by_one(wave, stock, COST_OPTIMAL, Fairness.FIRST_COME)
    assert shape(joint) == shape(alone)
    assert joint.cost == alone.cost
    assert (joint.rounds, joint.moves) == (0, 0)


def test_the_same_list_gives_the_same_result() -> None:
    first = source_wave(scarce_wave(), scarce_network(), COST_OPTIMAL, Fairness.FIRST_COME)
    again = source_wave(scarce_wave(), scarce_network(), COST_OPTIMAL, Fairness.FIRST_COME)
    assert first == again
    assert DEFAULT_MAX_ROUNDS >= 1


# -- fairness ----------------------------------------------------------------------------------------------

FAR = GeoPoint(48.14, 11.58)  # about 500 km from HOME


def contested() -> NetworkStock:
    """One unit of A in the whole network, at W1 in HOME; shipping it far costs more."""
    return NetworkStock([node("W1", per_unit_km="0.01", A=1), node("W2", B=5)])


def test_first_come_gets_the_scarce_unit_even_when_the_later_order_is_cheaper_to_serve() -> None:
    early = order("O-far", (A, 1), to=FAR, placed_at=AT - timedelta(hours=2))
    late = order("O-near", (A, 1), to=HOME, placed_at=AT - timedelta(hours=1))
    for wave in ([early, late], [late, early]):  # placed_at decides, not the list
        alone = source_one_by_one(wave, contested(), COST_OPTIMAL, Fairness.FIRST_COME)
        joint = source_wave(wave, contested(), COST_OPTIMAL, Fairness.FIRST_COME)
        for result in (alone, joint):
            assert [ref for ref, _ in result.plans] == ["O-far", "O-near"]
            assert (units(result, "O-far"), units(result, "O-near")) == (1, 0)
            assert result.plan_for("O-near").backordered("O-near-L1") == 1
        assert joint.cost == alone.cost


def test_without_placed_at_the_list_order_is_first_come() -> None:
    wave = [order("O-near", (A, 1)), order("O-far", (A, 1), to=FAR)]
    joint = source_wave(wave, contested(), COST_OPTIMAL, Fairness.FIRST_COME)
    assert (units(joint, "O-near"), units(joint, "O-far")) == (1, 0)


def test_priority_customers_get_the_scarce_unit_before_earlier_orders() -> None:
    early = order("O-early", (A, 1), placed_at=AT - timedelta(hours=2))
    vip = order("O-vip", (A, 1), to=FAR, priority=5, placed_at=AT - timedelta(hours=1))
    for fairness, winner in ((Fairness.PRIORITY, "O-vip"), (Fairness.FIRST_COME, "O-early")):
        alone = source_one_by_one([early, vip], contested(), COST_OPTIMAL, fairness)
        joint = source_wave([early, vip], contested(), COST_OPTIMAL, fairness)
        for result in (alone, joint):
            assert units(result, winner) == 1
            assert result.units_shipped == 1
            assert result.plans[0][0] == winner


def test_fairness_order_sorts_by_priority_then_placed_at_then_list_position() -> None:
    t = AT - timedelta(days=1)
    wave = [
        order("a", (A, 1), priority=1, placed_at=t + timedelta(minutes=3)),
        order("b", (A, 1), priority=2, placed_at=t + timedelta(minutes=5)),
        order("c", (A, 1), priority=1, placed_at=t + timedelta(minutes=1)),
        order("d", (A, 1), priority=1, placed_at=t + timedelta(minutes=1)),
    ]
    assert [o.order_ref for o in fairness_order(wave, Fairness.PRIORITY)] == ["b", "c", "d", "a"]
    assert [o.order_ref for o in fairness_order(wave, Fairness.FIRST_COME)] == ["c", "d", "a", "b"]


def test_an_order_no_plan_satisfies_is_listed_as_failed_and_takes_nothing() -> None:
    complete = SourcingPolicy(allow_split=False, allow_backorder=False)
    wave = [order("O-1", (A, 1), (B, 1), policy=complete), order("O-2", (A, 1))]
    stock = NetworkStock([node("W1", A=1), node("W2", B=1)])
    for result in (
        source_one_by_one(wave, stock, COST_OPTIMAL, Fairness.FIRST_COME),
        source_wave(wave, stock, COST_OPTIMAL, Fairness.FIRST_COME),
    ):
        assert [ref for ref, _ in result.failed] == ["O-1"]
        assert units(result, "O-2") == 1
        with pytest.raises(NotFound):
            result.plan_for("O-1")
        assert "O-1: not sourced" in result.explain()


# -- validation --------------------------------------------------------------------------------------------


def test_duplicate_order_refs_are_refused_with_their_field() -> None:
    wave = [order("O-1", (A, 1)), order("O-2", (A, 1)), order("O-1", (B, 1))]
    with pytest.raises(ValidationFailed) as info:
        source_wave(wave, scarce_network(), COST_OPTIMAL, Fairness.FIRST_COME)
    assert info.value.fields == ("orders[2].request.order_ref",)


def test_every_problem_of_a_wave_is_reported_at_once() -> None:
    wave = [order("O-1", (A, 1), placed_at=AT), order("O-2", (A, 1)), "O-3"]
    with pytest.raises(ValidationFailed) as info:
        source_wave(wave, scarce_network(), COST_OPTIMAL, "first_come", max_rounds=-1)  # type: ignore[arg-type]
    assert info.value.fields == ("orders[1].placed_at", "orders[2]", "fairness", "max_rounds")
    with pytest.raises(ValidationFailed) as info:
        source_wave(scarce_wave(), {"W1": {}}, object(), Fairness.FIRST_COME, max_rounds=True)  # type: ignore[arg-type]
    assert info.value.fields == ("stock", "strategy", "max_rounds")
    with pytest.raises(ValidationFailed) as info:
        source_one_by_one("O-1", scarce_network(), COST_OPTIMAL, Fairness.FIRST_COME)  # type: ignore[arg-type]
    assert info.value.fields == ("orders",)


@pytest.mark.parametrize("priority", [True, "1", 1.5, None])
def test_a_priority_that_is_not_a_whole_number_is_refused(priority: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        order("O-1", (A, 1), priority=priority)  # type: ignore[arg-type]
    assert info.value.fields == ("priority",)


def test_placed_at_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationFailed) as info:
        order("O-1", (A, 1), placed_at=datetime(2026, 3, 2, 9, 0))
    assert info.value.fields == ("placed_at",)


class Dollars:
    """A strategy costing its plans in another currency than the network's."""

    name = "dollars"

    def plan(self, request: SourcingRequest, stock: NetworkStock) -> SourcingPlan:
        plan = COST_OPTIMAL.plan(request, stock)
        return attrs.evolve(plan, cost=Money(plan.cost.amount, "USD"))


def test_a_wave_adds_up_costs_in_one_currency() -> None:
    usd = ShippingCost(currency="USD", per_shipment=Decimal(8))
    dollar_node = NodeStock(FulfilmentNode("W-US", NodeKind.WAREHOUSE, HOME, usd), {A: 1})
    with pytest.raises(ValidationFailed):  # the network itself refuses nodes costing in two currencies
        NetworkStock([node("W1", A=1), dollar_node])
    for source in (source_one_by_one, source_wave):
        with pytest.raises(ValidationFailed) as info:
            source(scarce_wave(), scarce_network(), Dollars(), Fairness.FIRST_COME)
        assert info.value.fields == ("plans[O-7].cost.currency",)


def test_an_empty_wave_costs_nothing() -> None:
    result = source_wave([], scarce_network(), COST_OPTIMAL, Fairness.PRIORITY)
    assert (result.plans, result.failed, result.cost, result.units_shipped) == ((), (), eur("0.00"), 0)


# -- properties on small random waves ----------------------------------------------------------------------

SKUS = (A, B, C)


@st.composite
def waves(draw: st.DrawFn) -> tuple[NetworkStock, list[WaveOrder]]:
    nodes = []
    for n in range(draw(st.integers(1, 4))):
        stock = {str(s): draw(st.integers(0, 2)) for s in SKUS}
        ns = node(
            f"W{n}",
            per_unit=draw(st.sampled_from(["0", "1", "2.5"])),
            per_unit_km=draw(st.sampled_from(["0", "0.002"])),
            at=GeoPoint(draw(st.integers(45, 55)), draw(st.integers(5, 15))),
            **stock,
        )
        capacity = draw(st.one_of(st.none(), st.integers(0, 3)))
        nodes.append(NodeStock(ns.node, ns.available, capacity_left=capacity))
    orders = []
    for i in range(draw(st.integers(1, 6))):
        skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3, unique=True))
        policy = SourcingPolicy(
            allow_split=draw(st.booleans()),
            allow_backorder=draw(st.booleans()),
            respect_capacity=draw(st.booleans()),
        )
        orders.append(
            order(
                f"O-{i}",
                *[(s, draw(st.integers(1, 2))) for s in skus],
                to=GeoPoint(draw(st.integers(45, 55)), draw(st.integers(5, 15))),
                priority=draw(st.integers(0, 2)),
                policy=policy,
            )
        )
    return NetworkStock(nodes), orders


def check_consistent(result: WaveResult, wave: Sequence[WaveOrder], stock: NetworkStock) -> None:
    """Every line is accounted for, and all the plans together fit in the stock."""
    requests = {o.order_ref: o.request for o in wave}
    assert sorted([ref for ref, _ in result.plans] + [ref for ref, _ in result.failed]) == sorted(requests)
    work = stock.copy()
    for ref, plan in result.plans:
        for line in requests[ref].lines:
            assert plan.allocated(line.line_id) + plan.backordered(line.line_id) == line.quantity
        work.apply(requests[ref], plan)  # raises if the wave takes more than a node holds
    assert result.units_shipped == sum(s.units for _, p in result.plans for s in p.shipments)


@settings(max_examples=150, deadline=None)
@given(
    case=waves(),
    name=st.sampled_from(sorted(STRATEGIES)),
    fairness=st.sampled_from(Fairness),
)
def test_the_wave_is_never_dearer_nor_less_fair_than_one_by_one(
    case: tuple[NetworkStock, list[WaveOrder]], name: str, fairness: Fairness
) -> None:
    stock, wave = case
    before = snapshot(stock)
    strategy = STRATEGIES[name]
    alone = source_one_by_one(wave, stock, strategy, fairness)
    joint = source_wave(wave, stock, strategy, fairness)
    assert snapshot(stock) == before
    assert joint.cost <= alone.cost
    assert joint.one_by_one_cost == alone.cost
    assert {ref for ref, _ in joint.failed} <= {ref for ref, _ in alone.failed}
    for ref, plan in alone.plans:
        assert units(joint, ref) >= sum(s.units for s in plan.shipments)
    check_consistent(alone, wave, stock)
    check_consistent(joint, wave, stock)
