"""Sourcing strategies and policies on small hand-made networks, and the NetworkStock API."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import attrs
import pytest

from ordercore.errors import InvalidValue, SourcingFailed, UnknownNode, ValidationFailed
from ordercore.geo import haversine_km
from ordercore.inventory.nodes import (
    Capability,
    FulfilmentNode,
    NodeKind,
    ShippingCost,
    TransitTime,
    WorkingCalendar,
    Zone,
)
from ordercore.money import Money
from ordercore.sourcing import (
    STRATEGIES,
    CostOptimal,
    FewestShipments,
    GreedyStrategy,
    Nearest,
    NetworkStock,
    NodeStock,
    PlannedBackorder,
    Priority,
    RejectReason,
    SourcingLine,
    SourcingPlan,
    SourcingPolicy,
    SourcingRequest,
    source,
)
from ordercore.values import GeoPoint, Sku

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
BERLIN = GeoPoint(52.52, 13.405)
R = RejectReason
DEFAULT_CALENDAR = WorkingCalendar()
DEFAULT_TRANSIT = TransitTime()


def node(
    node_id: str,
    lat: float = 52.52,
    lon: float = 13.405,
    *,
    fixed: str = "8",
    unit: str = "1",
    unit_km: str = "0",
    per_km: str = "0",
    zones: tuple[Zone, ...] = (),
    capabilities: Iterable[Capability] = (Capability.SHIP,),
    priority: int = 100,
    calendar: WorkingCalendar = DEFAULT_CALENDAR,
    transit: TransitTime = DEFAULT_TRANSIT,
) -> FulfilmentNode:
    cost = ShippingCost(
        "EUR",
        per_shipment=Decimal(fixed),
        per_unit=Decimal(unit),
        per_unit_km=Decimal(unit_km),
        per_km=Decimal(per_km),
        zones=zones,
    )
    return FulfilmentNode(
        node_id,
        NodeKind.WAREHOUSE,
        GeoPoint(lat, lon),
        cost,
        capabilities=capabilities,
        priority=priority,
        calendar=calendar,
        transit=transit,
    )


def stock(
    n: FulfilmentNode,
    available: Mapping[str, int],
    *,
    incoming: Mapping[str, tuple[tuple[date, int], ...]] | None = None,
    capacity_left: int | None = None,
    online: bool = True,
) -> NodeStock:
    return NodeStock(
        n,
        {Sku(k): v for k, v in available.items()},
        {Sku(k): v for k, v in (incoming or {}).items()},
        capacity_left=capacity_left,
        online=online,
    )


def request(
    *lines: tuple[str, str, int], policy: SourcingPolicy | None = None, **kw: object
) -> SourcingRequest:
    return SourcingRequest(
        str(kw.get("ref", "O-1")),
        tuple(SourcingLine(lid, Sku(sku), q) for lid, sku, q in lines),
        kw.get("destination", BERLIN),  # type: ignore[arg-type]
        kw.get("at", AT),  # type: ignore[arg-type]
        policy or SourcingPolicy(),
    )


def reasons(plan: SourcingPlan) -> dict[str, RejectReason]:
    return {r.node_id: r.reason for r in plan.rejected}


def float_cost(plan: SourcingPlan, network: NetworkStock) -> float:
    total = 0.0
    for s in plan.shipments:
        ns = network.get(s.node_id)
        assert ns is not None
        rates = ns.node.cost.rates(s.distance_km)
        assert rates is not None
        total += rates[0] + rates[1] * s.units
    return total


# -- NetworkStock ---------------------------------------------------------------------------------------------
class TestNetworkStock:
    def test_iterates_nodes_by_id_whatever_the_input_order(self) -> None:
        stocks = [stock(node(n), {"A": 1}) for n in ("c", "a", "b")]
        network = NetworkStock(stocks)
        assert [s.node_id for s in network] == ["a", "b", "c"]
        assert len(network) == 3
        assert network.currency == "EUR"
        assert network.get("b") == stocks[2]
        assert network.get("zz") is None
        assert network.available("a", Sku("A")) == 1
        assert network.available("a", Sku("NOPE")) == 0
        assert network.available("zz", Sku("A")) == 0

    def test_refuses_duplicates_mixed_currencies_and_other_values(self) -> None:
        usd = attrs.evolve(node("b"), cost=ShippingCost("USD", per_shipment=Decimal(1)))
        with pytest.raises(ValidationFailed) as e:
            NetworkStock([stock(node("a"), {}), stock(node("a"), {}), stock(usd, {}), "x"])  # type: ignore[list-item]
        assert set(e.value.fields) == {"nodes[1]", "nodes[3]", "nodes"}

    def test_currency_is_required_without_nodes_and_must_match_them(self) -> None:
        with pytest.raises(ValidationFailed) as e:
            NetworkStock([])
        assert e.value.fields == ("currency",)
        assert NetworkStock([], currency="CHF").currency == "CHF"
        with pytest.raises(ValidationFailed) as e:
            NetworkStock([stock(node("a"), {})], currency="USD")
        assert e.value.fields == ("currency",)
        with pytest.raises(ValidationFailed):
            NetworkStock([], currency="XXX")

    def test_apply_takes_units_and_capacity_and_restore_undoes_it(self) -> None:
        stocks = [stock(node("a"), {"A": 5, "B": 1}, capacity_left=2), stock(node("b", 50.0, 8.0), {"A": 5})]
        network = NetworkStock(stocks)
        req = request(("L1", "A", 3), ("L2", "B", 1))
        plan = CostOptimal().plan(req, network)
        assert plan.node_ids == ("a",)
        network.apply(req, plan)
        assert network.available("a", Sku("A")) == 2
        assert network.available("a", Sku("B")) == 0
        assert network.capacity_left("a") == 1
        assert network.capacity_left("b") is None
        changed = network.get("a")
        assert changed is not None and changed.available == {Sku("A"): 2, Sku("B"): 0}
        network.restore(req, plan)
        assert list(network) == sorted(stocks, key=lambda s: s.node_id)

    def test_apply_refuses_to_take_more_than_is_there_and_changes_nothing(self) -> None:
        network = NetworkStock([stock(node("a"), {"A": 5}), stock(node("b"), {"A": 1})])
        req = request(("L1", "A", 4))
        plan = Nearest().plan(req, network)
        network.apply(req, plan)
        with pytest.raises(InvalidValue) as e:
            network.apply(req, plan)
        assert e.value.field == "plan.shipments"
        assert network.available("a", Sku("A")) + network.available("b", Sku("A")) == 2

    def test_apply_checks_the_plan_belongs_to_the_request(self) -> None:
        network = NetworkStock([stock(node("a"), {"A": 5})])
        plan = Nearest().plan(request(("L1", "A", 1)), network)
        with pytest.raises(InvalidValue) as e:
            network.apply(request(("L1", "A", 1), ref="O-2"), plan)
        assert e.value.field == "plan.order_ref"
        with pytest.raises(InvalidValue):
            network.apply(request(("L9", "A", 1)), plan)
        stray = attrs.evolve(plan, shipments=(attrs.evolve(plan.shipments[0], node_id="zz"),))
        with pytest.raises(UnknownNode):
            network.apply(request(("L1", "A", 1)), stray)

    def test_copies_are_independent(self) -> None:
        network = NetworkStock([stock(node("a"), {"A": 5}, capacity_left=3)])
        req = request(("L1", "A", 2))
        plan = Nearest().plan(req, network)
        other = network.copy()
        other.apply(req, plan)
        assert network.available("a", Sku("A")) == 5
        assert network.capacity_left("a") == 3
        assert other.available("a", Sku("A")) == 3
        network.apply(req, plan)
        network.apply(req, plan)
        assert other.available("a", Sku("A")) == 3
        assert network.available("a", Sku("A")) == 1

    def test_capacity_never_reads_below_zero_and_restore_is_exact(self) -> None:
        network = NetworkStock([stock(node("a"), {"A": 5}, capacity_left=0)])
        req = request(("L1", "A", 1), policy=SourcingPolicy(respect_capacity=False))
        plan = Nearest().plan(req, network)
        network.apply(req, plan)
        assert network.capacity_left("a") == 0
        network.restore(req, plan)
        assert network.capacity_left("a") == 0
        ns = network.get("a")
        assert ns is not None and ns.capacity_left == 0


# -- what every strategy shares ---------------------------------------------------------------------------------
ALL = sorted(STRATEGIES)


@pytest.mark.parametrize("name", ALL)
def test_a_node_holding_everything_ships_it_with_dates_and_exact_cost(name: str) -> None:
    n = node("a", 52.0, 13.0, unit="0.5", unit_km="0.01", transit=TransitTime(base_days=1, km_per_day=50))
    network = NetworkStock([stock(n, {"A": 3, "B": 2})])
    plan = STRATEGIES[name].plan(request(("L2", "B", 2), ("L1", "A", 3)), network)
    (s,) = plan.shipments
    km = haversine_km(n.location, BERLIN)
    assert s.distance_km == km
    assert s.lines == (("L1", 3), ("L2", 2))
    assert s.cost == Money.rounded(n.cost.cost(5, km), "EUR")
    assert plan.cost == s.cost
    assert s.dispatch_on == date(2026, 3, 2)
    assert s.deliver_on == s.dispatch_on + timedelta(days=1 + int(km // 50))
    assert plan.backorders == ()
    assert plan.strategy == name
    assert name in plan.explain()


@pytest.mark.parametrize("name", ALL)
def test_lines_split_over_nodes_and_a_sku_on_two_lines_fills_lines_by_id(name: str) -> None:
    network = NetworkStock([stock(node("a"), {"A": 3}), stock(node("b", 52.6, 13.5), {"A": 4})])
    plan = STRATEGIES[name].plan(request(("L2", "A", 3), ("L1", "A", 3)), network)
    assert plan.allocated("L1") == 3 and plan.allocated("L2") == 3
    assert sum(s.units for s in plan.shipments) == 6
    assert len(plan.shipments) == 2
    first = plan.shipments[0]
    assert first.node_id == "a" and first.lines[0][0] == "L1"


@pytest.mark.parametrize("name", ALL)
def test_orders_placed_after_the_cutoff_leave_on_the_next_working_day(name: str) -> None:
    friday_evening = datetime(2026, 3, 6, 18, 0, tzinfo=UTC)
    n = node("a", calendar=WorkingCalendar(cutoff=time(16, 0)))
    network = NetworkStock([stock(n, {"A": 1})])
    (s,) = STRATEGIES[name].plan(request(("L1", "A", 1), at=friday_evening), network).shipments
    assert s.dispatch_on == date(2026, 3, 9)
    assert s.deliver_on == date(2026, 3, 10)


# -- the four strategies ------------------------------------------------------------------------------------------
def spread_network() -> NetworkStock:
    """Two near nodes each holding one SKU, a farther one holding both."""
    return NetworkStock(
        [
            stock(node("near-a", 52.53, 13.41, unit_km="0.01"), {"A": 5}),
            stock(node("near-b", 52.51, 13.40, unit_km="0.01"), {"B": 5}),
            stock(node("far-ab", 52.2, 13.9, unit_km="0.01"), {"A": 5, "B": 5}),
        ]
    )


def test_nearest_fills_from_the_nearest_and_cost_optimal_finds_the_cheaper_single_shipment() -> None:
    network = spread_network()
    req = request(("L1", "A", 1), ("L2", "B", 1))
    nearest = Nearest().plan(req, network)
    assert set(nearest.node_ids) == {"near-a", "near-b"}
    assert reasons(nearest) == {"far-ab": R.NOT_NEEDED}
    best = CostOptimal().plan(req, network)
    assert best.node_ids == ("far-ab",)
    assert best.optimal and best.steps >= 1
    assert best.notes[0].startswith("proved optimal after")
    assert float_cost(best, network) < float_cost(nearest, network)
    assert {r.node_id for r in best.rejected} == {"near-a", "near-b"}
    assert all(r.reason in (R.COSTLIER, R.DOMINATED) for r in best.rejected)
    assert FewestShipments().plan(req, network).node_ids == ("far-ab",)


def test_cost_optimal_splits_when_two_shipments_cost_less_than_one() -> None:
    network = NetworkStock(
        [
            stock(node("near-a", 52.53, 13.41, unit_km="0.01"), {"A": 9}),
            stock(node("near-b", 52.51, 13.40, unit_km="0.01"), {"B": 9}),
            stock(node("far-ab", 48.1, 11.6, unit_km="0.01"), {"A": 9, "B": 9}),
        ]
    )
    req = request(("L1", "A", 5), ("L2", "B", 5))
    plan = CostOptimal().plan(req, network)
    assert set(plan.node_ids) == {"near-a", "near-b"}
    assert any("cost less than the best single node (far-ab" in n for n in plan.notes)
    detail = {r.node_id: r for r in plan.rejected}["far-ab"]
    assert detail.reason is R.COSTLIER and "costs" in detail.detail
    assert FewestShipments().plan(req, network).node_ids == ("far-ab",)


def test_priority_follows_node_priority_then_id() -> None:
    network = NetworkStock(
        [
            stock(node("a", priority=5), {"A": 1}),
            stock(node("b", 40.0, 3.0, priority=1), {"A": 1}),
            stock(node("c", 40.0, 3.0, priority=1), {"A": 1}),
        ]
    )
    plan = Priority().plan(request(("L1", "A", 2)), network)
    assert plan.node_ids == ("b", "c")
    assert reasons(plan) == {"a": R.NOT_NEEDED}


def test_a_custom_greedy_strategy_uses_its_key_and_the_shared_rules() -> None:
    network = spread_network()
    farthest_first = GreedyStrategy("farthest", lambda c: -c.km)
    plan = farthest_first.plan(request(("L1", "A", 1), ("L2", "B", 1)), network)
    assert plan.node_ids == ("far-ab",) and plan.strategy == "farthest"
    assert source(request(("L1", "A", 1)), network, farthest_first).strategy == "farthest"
    with pytest.raises(InvalidValue):
        GreedyStrategy("", lambda c: 0.0)


def test_strategies_by_name_and_their_settings_are_checked() -> None:
    assert list(STRATEGIES) == ["priority", "nearest", "fewest_shipments", "cost_optimal"]
    with pytest.raises(TypeError):
        STRATEGIES["mine"] = Nearest()  # type: ignore[index]
    network = spread_network()
    assert source(request(("L1", "A", 1)), network).strategy == "cost_optimal"
    with pytest.raises(InvalidValue) as e:
        source(request(("L1", "A", 1)), network, "cheapest")
    assert e.value.field == "strategy"
    with pytest.raises(InvalidValue) as e:
        CostOptimal(max_steps=0)
    assert e.value.field == "max_steps"
    with pytest.raises(InvalidValue) as e:
        FewestShipments(time_budget=-1)
    assert e.value.field == "time_budget"


def test_cost_optimal_reports_a_plan_it_could_not_prove_within_its_budget() -> None:
    rng = random.Random(5)
    stocks = [
        stock(
            node(
                f"n{k:02d}",
                50 + rng.random() * 4,
                8 + rng.random() * 6,
                unit=str(rng.randint(1, 9) / 10),
                unit_km="0.01",
            ),
            {s: rng.randint(1, 3) for s in "ABCDEFGH" if rng.random() < 0.4},
        )
        for k in range(40)
    ]
    network = NetworkStock(stocks)
    req = request(*((f"L{i}", s, 3) for i, s in enumerate("ABCDEFGH")))
    exact = CostOptimal().plan(req, network)
    rushed = CostOptimal(max_steps=1).plan(req, network)
    assert exact.optimal
    assert not rushed.optimal
    assert any("not proved optimal" in n for n in rushed.notes)
    assert float_cost(rushed, network) >= float_cost(exact, network) - 1e-9


# -- policies ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_excluded_offline_non_shipping_and_full_nodes_are_rejected(name: str) -> None:
    network = NetworkStock(
        [
            stock(node("excluded"), {"A": 9}),
            stock(node("offline"), {"A": 9}, online=False),
            stock(node("store", capabilities=[Capability.PICKUP]), {"A": 9}),
            stock(node("full"), {"A": 9}, capacity_left=0),
            stock(node("far", 48.1, 11.6, unit_km="0.01"), {"A": 9}),
            stock(node("other"), {"B": 9}),
        ]
    )
    policy = SourcingPolicy(excluded_nodes={"excluded"})
    plan = STRATEGIES[name].plan(request(("L1", "A", 2), policy=policy), network)
    assert plan.node_ids == ("far",)
    assert reasons(plan) == {
        "excluded": R.EXCLUDED,
        "offline": R.OFFLINE,
        "store": R.CANNOT_SHIP,
        "full": R.NO_CAPACITY,
    }
    ignoring_capacity = SourcingPolicy(excluded_nodes={"excluded"}, respect_capacity=False)
    plan = STRATEGIES[name].plan(request(("L1", "A", 2), policy=ignoring_capacity), network)
    assert "full" in plan.node_ids or reasons(plan)["full"] in (R.NOT_NEEDED, R.COSTLIER, R.DOMINATED)


@pytest.mark.parametrize("name", ALL)
def test_destinations_beyond_the_last_zone_and_late_nodes_are_rejected(name: str) -> None:
    zones = (Zone(Decimal(100), Decimal(1)), Zone(Decimal(300), Decimal(5)))
    slow = TransitTime(base_days=1, km_per_day=100)
    network = NetworkStock(
        [
            stock(node("zoned-far", 48.1, 11.6, zones=zones), {"A": 9}),  # ~500 km
            stock(node("zoned-near", 52.4, 13.1, zones=zones), {"A": 1}),
            stock(node("slow", 50.1, 8.7, transit=slow), {"A": 9}),  # ~420 km: 5 days
            stock(node("quick", 51.3, 12.4), {"A": 9}),
        ]
    )
    policy = SourcingPolicy(deliver_by=date(2026, 3, 4))
    plan = STRATEGIES[name].plan(request(("L1", "A", 2), policy=policy), network)
    got = {r.node_id: r for r in plan.rejected}
    assert got["zoned-far"].reason is R.OUT_OF_RANGE and "km" in got["zoned-far"].detail
    assert got["slow"].reason is R.TOO_LATE and "2026-03-04" in got["slow"].detail
    assert plan.node_ids in (("quick",), ("quick", "zoned-near"))


def test_a_zone_adds_its_charges_to_the_shipment() -> None:
    zones = (Zone(Decimal(100), Decimal(1), Decimal("0.5")), Zone(Decimal(300), Decimal(5)))
    network = NetworkStock([stock(node("zoned", 52.4, 13.1, zones=zones), {"A": 9})])
    (s,) = CostOptimal().plan(request(("L1", "A", 2)), network).shipments
    assert s.cost == Money.of("12.00", "EUR")  # 8 + 2 x 1, and the zone's 1 + 2 x 0.5


@pytest.mark.parametrize("name", ALL)
def test_preferred_nodes_alone_when_they_can_fill_what_the_network_can(name: str) -> None:
    network = NetworkStock(
        [
            stock(node("cheap"), {"A": 9}),
            stock(node("pref", 48.1, 11.6, unit="3"), {"A": 2}),
            stock(node("pref-empty"), {"Z": 1}),
        ]
    )
    policy = SourcingPolicy(preferred_nodes={"pref", "pref-empty"})
    plan = STRATEGIES[name].plan(request(("L1", "A", 2), policy=policy), network)
    assert plan.node_ids == ("pref",)
    assert reasons(plan) == {"cheap": R.NOT_PREFERRED, "pref-empty": R.NO_STOCK}
    assert "preferred nodes can fill the order alone" in plan.notes[0]
    plan = STRATEGIES[name].plan(request(("L1", "A", 4), policy=policy), network)
    assert "cheap" in plan.node_ids
    assert "every allowed node is considered" in plan.notes[0]


@pytest.mark.parametrize("name", ALL)
def test_pickup_orders_are_handed_over_at_the_pickup_node_only(name: str) -> None:
    store = node("store", 52.0, 13.0, capabilities=[Capability.PICKUP, Capability.SHIP_FROM_STORE])
    network = NetworkStock(
        [
            stock(store, {"A": 1}),
            stock(node("warehouse"), {"A": 9}),
            stock(node("shop", capabilities=[Capability.SHIP]), {"A": 9}),
        ]
    )
    policy = SourcingPolicy(pickup_node="store")
    plan = STRATEGIES[name].plan(request(("L1", "A", 2), policy=policy), network)
    (s,) = plan.shipments
    assert s.node_id == "store" and s.distance_km == 0.0 and s.deliver_on == s.dispatch_on
    assert s.cost == Money.of("9.00", "EUR")  # 8 per handover + 1 per unit, no distance
    assert reasons(plan) == {"warehouse": R.NOT_PICKUP_NODE, "shop": R.NOT_PICKUP_NODE}
    assert plan.backorders == (PlannedBackorder("L1", 1),)
    no_pickup = SourcingPolicy(pickup_node="shop")
    plan = STRATEGIES[name].plan(request(("L1", "A", 1), policy=no_pickup), network)
    assert plan.shipments == () and reasons(plan)["shop"] is R.CANNOT_SHIP
    with pytest.raises(UnknownNode):
        STRATEGIES[name].plan(request(("L1", "A", 1), policy=SourcingPolicy(pickup_node="nowhere")), network)


def ship_complete_network() -> NetworkStock:
    return NetworkStock(
        [
            stock(node("a"), {"A": 2}),
            stock(node("b"), {"B": 2}),
            stock(node("ab", 50.0, 9.0, unit="2"), {"A": 2, "B": 1}),
            stock(node("abc", 48.1, 11.6, unit="3"), {"A": 2, "B": 2, "C": 1}),
            stock(node("c"), {"C": 1}),
        ]
    )


@pytest.mark.parametrize("name", ALL)
def test_ship_complete_takes_one_node_that_holds_everything(name: str) -> None:
    plan = STRATEGIES[name].plan(
        request(("L1", "A", 2), ("L2", "B", 2), policy=SourcingPolicy(allow_split=False)),
        ship_complete_network(),
    )
    assert plan.node_ids == ("abc",)
    assert plan.backorders == ()
    assert reasons(plan)["a"] is R.INCOMPLETE


@pytest.mark.parametrize("name", ALL)
def test_ship_complete_without_a_complete_node_ships_the_most_and_the_rest_waits(name: str) -> None:
    req = request(("L1", "A", 2), ("L2", "B", 2), ("L3", "C", 2), policy=SourcingPolicy(allow_split=False))
    plan = STRATEGIES[name].plan(req, ship_complete_network())
    assert plan.node_ids == ("abc",)
    assert plan.backorders == (PlannedBackorder("L3", 1),)
    assert "ships complete: no node can ship all 6 units; abc ships 5 and the rest waits" in plan.notes
    assert reasons(plan)["c"] is R.INCOMPLETE


@pytest.mark.parametrize("name", ALL)
def test_max_shipments_leaves_the_rest_waiting(name: str) -> None:
    network = NetworkStock([stock(node(k, 52.5 + i / 100, 13.4), {k: 1}) for i, k in enumerate("ABC")])
    req = request(("L1", "A", 1), ("L2", "B", 1), ("L3", "C", 1), policy=SourcingPolicy(max_shipments=2))
    plan = STRATEGIES[name].plan(req, network)
    assert len(plan.shipments) == 2
    assert sum(b.quantity for b in plan.backorders) == 1
    assert list(reasons(plan).values()) == [R.SHIPMENT_LIMIT]


@pytest.mark.parametrize("name", ALL)
def test_waiting_units_are_promised_against_the_earliest_incoming_supply(name: str) -> None:
    network = NetworkStock(
        [
            stock(node("a"), {"A": 1}, incoming={"A": ((date(2026, 3, 20), 1), (date(2026, 3, 10), 2))}),
            stock(node("b"), {}, incoming={"A": ((date(2026, 3, 12), 5),)}),
            stock(node("gone"), {}, incoming={"A": ((date(2026, 3, 1), 9),)}),
        ]
    )
    policy = SourcingPolicy(excluded_nodes={"gone"})
    plan = STRATEGIES[name].plan(request(("L1", "A", 3), ("L2", "A", 3), policy=policy), network)
    assert plan.allocated("L1") == 1
    assert plan.backorders == (
        PlannedBackorder("L1", 2, "a", date(2026, 3, 10)),
        PlannedBackorder("L2", 3, "b", date(2026, 3, 12)),
    )
    assert "5 unit(s) wait for supply (5 pre-ordered against incoming stock)" in plan.notes
    no_preorder = SourcingPolicy(excluded_nodes={"gone"}, allow_preorder=False)
    plan = STRATEGIES[name].plan(request(("L1", "A", 3), policy=no_preorder), network)
    assert plan.backorders == (PlannedBackorder("L1", 2),)
    plan = STRATEGIES[name].plan(request(("L1", "Z", 3), ("L2", "A", 20), policy=policy), network)
    assert plan.backordered("L1") == 3 and plan.backordered("L2") == 19
    assert PlannedBackorder("L1", 3) in plan.backorders
    assert PlannedBackorder("L2", 11) in plan.backorders


@pytest.mark.parametrize("name", ALL)
def test_without_backorders_an_order_that_cannot_ship_in_full_fails(name: str) -> None:
    network = NetworkStock([stock(node("a"), {"A": 1}), stock(node("b"), {"A": 5}, online=False)])
    policy = SourcingPolicy(allow_backorder=False)
    with pytest.raises(SourcingFailed) as e:
        STRATEGIES[name].plan(request(("L1", "A", 2), policy=policy), network)
    assert any("line L1: 1 of 2 units" in r for r in e.value.reasons)
    assert "b: offline" in e.value.reasons
    assert STRATEGIES[name].plan(request(("L1", "A", 1), policy=policy), network).node_ids == ("a",)


def test_the_explanation_names_every_node_that_lost_by_node_id() -> None:
    network = NetworkStock(
        [
            stock(node("z"), {"A": 1}, online=False),
            stock(node("a"), {"A": 1}),
            stock(node("m"), {"B": 1}),
            stock(node("unrelated"), {"Q": 1}),
        ]
    )
    plan = Nearest().plan(request(("L1", "A", 2)), network)
    assert [r.node_id for r in plan.rejected] == ["z"]
    text = plan.explain()
    assert "ship from a" in text and "not z: offline" in text and "wait: L1 x1" in text


# -- large networks: the spatial grid and the early stop change nothing -----------------------------------------
def test_grid_and_early_stop_give_the_plans_of_a_full_scan() -> None:
    rng = random.Random(11)
    stocks = []
    for k in range(300):
        held = {f"S{s}": rng.randint(1, 6) for s in range(30) if rng.random() < 0.25}
        n = node(
            f"n{k:03d}",
            47 + rng.random() * 8,
            6 + rng.random() * 12,
            unit=str(rng.randint(4, 12) / 10),
            unit_km="0.012",
        )
        stocks.append(stock(n, held))
    indexed = NetworkStock(stocks)
    plain = NetworkStock(stocks)
    assert indexed._static.grid is not None
    plain._static.grid = None
    for i in range(25):
        lines = [
            (f"L{j}", f"S{s}", rng.randint(1, 3))
            for j, s in enumerate(rng.sample(range(30), rng.randint(1, 8)))
        ]
        dest = GeoPoint(47 + rng.random() * 8, 6 + rng.random() * 12)
        req = request(*lines, destination=dest, ref=f"O-{i}")
        for name in ("nearest", "cost_optimal"):
            assert STRATEGIES[name].plan(req, indexed).node_ids == STRATEGIES[name].plan(req, plain).node_ids
        best = CostOptimal().plan(req, indexed)
        assert best.optimal
        assert float_cost(best, indexed) <= float_cost(Nearest().plan(req, indexed), indexed) + 1e-9
