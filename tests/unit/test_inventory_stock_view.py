"""The sourcing view of stock positions: a view built from an earlier one of the same nodes (as
stock_view does for every order) is the view built from scratch."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ordercore import GeoPoint, Sku
from ordercore.errors import InvalidTimestamp
from ordercore.inventory import FulfilmentNetwork, FulfilmentNode, NodeKind, ShippingCost, StockPosition
from ordercore.inventory.ledger import Supply, SupplyKind
from ordercore.service.sourcing import stock_view
from ordercore.sourcing import NodeStock
from ordercore.sourcing.network import NetworkStock, NodeFacts

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SKUS = (Sku("A"), Sku("B"))
COST = ShippingCost("EUR", per_shipment=Decimal(5), per_unit_km=Decimal("0.01"))


def nodes() -> list[FulfilmentNode]:
    return [FulfilmentNode(f"N{i}", NodeKind.WAREHOUSE, GeoPoint(48.0 + i, 8.0 + i), COST) for i in range(4)]


def positions(on_hand: int, *, reserve: int = 0, supply: bool = False) -> list[StockPosition]:
    out = []
    for i in range(4):
        for sku in SKUS:
            pos = StockPosition.open(f"N{i}", sku, at=AT - timedelta(days=1), on_hand=on_hand + i)
            if reserve:
                pos.reserve(f"r-{i}-{sku}", reserve, reference="O-1", at=AT)
            if supply:
                pos.expect(Supply(f"PO-{i}-{sku}", 7, date(2026, 3, 9), SupplyKind.PURCHASE_ORDER), at=AT)
            out.append(pos)
    return out


def summary(view: NetworkStock) -> object:
    facts = {
        node_id: {name: getattr(view.facts(node_id), name) for name in NodeFacts.__slots__}
        for node_id in view.node_ids
    }
    return (
        list(view),
        facts,
        {sku: view.incoming(sku) for sku in SKUS},
        {sku: view.total(sku) for sku in SKUS},
        view._static.offline,
        view.currency,
    )


def test_a_view_built_like_an_earlier_one_is_the_view_built_from_scratch() -> None:
    network = FulfilmentNetwork(nodes())
    first = stock_view(network, positions(10), AT)
    assert summary(first) == summary(stock_view(FulfilmentNetwork(network.nodes), positions(10), AT))
    network.set_online("N2", False)
    again = stock_view(network, positions(5, reserve=2, supply=True), AT, {"N1": 0})
    fresh = FulfilmentNetwork(network.nodes)
    fresh.set_online("N2", False)
    scratch = stock_view(fresh, positions(5, reserve=2, supply=True), AT, {"N1": 0})
    assert again._static.geo is first._static.geo  # the node-only part is shared
    assert summary(again) == summary(scratch)
    assert "N2" in again._static.offline
    assert again.capacity_left("N1") == 0
    assert first.available("N0", Sku("A")) == 10  # the earlier view is left as it was


def test_a_view_reads_positions_in_any_order_and_ignores_nodes_outside_the_network() -> None:
    network = FulfilmentNetwork(nodes())
    stock_view(network, positions(10), AT)  # the view later ones are built like
    listed = positions(5, reserve=2, supply=True)
    stray = StockPosition.open("ELSEWHERE", SKUS[0], at=AT - timedelta(days=1), on_hand=99)
    shuffled = [*reversed(listed[4:]), stray, *listed[:4]]
    network.set_online("N3", False)
    view = stock_view(network, shuffled, AT, {"N0": 2}, offline=frozenset({"N1"}))
    fresh = FulfilmentNetwork(network.nodes)
    fresh.set_online("N3", False)
    scratch = stock_view(fresh, listed, AT, {"N0": 2}, offline=frozenset({"N1"}))
    assert summary(view) == summary(scratch)
    assert "ELSEWHERE" not in view and view.total(SKUS[0]) == sum(3 + i for i in range(4))
    assert list(view.holders(SKUS[0])) == ["N0", "N1", "N2", "N3"]  # node id order, as from scratch
    assert view._static.offline == {"N1", "N3"}


def test_a_view_of_other_nodes_is_built_from_scratch() -> None:
    earlier = NetworkStock([NodeStock(n) for n in nodes()])
    other = [FulfilmentNode("X", NodeKind.WAREHOUSE, GeoPoint(50.0, 9.0), COST)]
    view = NetworkStock([NodeStock(n, {Sku("A"): 3}) for n in other], like=earlier)
    assert view.node_ids == ("X",)
    assert view._static.geo is not earlier._static.geo
    assert view.available("X", Sku("A")) == 3


def test_a_view_like_another_still_refuses_a_node_listed_twice() -> None:
    earlier = NetworkStock([NodeStock(n) for n in nodes()])
    twice = [NodeStock(n) for n in nodes()] + [NodeStock(nodes()[0])]
    with pytest.raises(ValueError, match="network stock"):
        NetworkStock(twice, like=earlier)


def test_reserved_still_refuses_naive_times_and_reads_any_zone() -> None:
    pos = positions(10, reserve=3)[0]
    with pytest.raises(InvalidTimestamp):
        pos.reserved(datetime(2026, 3, 2, 9, 0))
    plus_two = AT.astimezone(timezone(timedelta(hours=2)))
    assert pos.reserved(plus_two) == pos.reserved(AT) == 3
    assert pos.incoming() == ()
