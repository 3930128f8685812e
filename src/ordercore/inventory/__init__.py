"""Inventory: fulfilment nodes, and stock per node and SKU."""

from ordercore.inventory.nodes import (
    Capability,
    FulfilmentNode,
    NodeKind,
    ShippingCost,
    TransitTime,
    WorkingCalendar,
    Zone,
    check_node_id,
)
from ordercore.inventory.stock import StockLevel

__all__ = [
    "Capability",
    "FulfilmentNode",
    "NodeKind",
    "ShippingCost",
    "StockLevel",
    "TransitTime",
    "WorkingCalendar",
    "Zone",
    "check_node_id",
]
