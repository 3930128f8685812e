"""Inventory: fulfilment nodes, stock per node and SKU kept as an append-only ledger, and
available-to-promise at node and network level."""

from ordercore.inventory.atp import (
    NetworkAvailability,
    network_availability,
    network_available,
    network_earliest,
)
from ordercore.inventory.capacity import NodeDay
from ordercore.inventory.held import Reservations, Supplies
from ordercore.inventory.ledger import (
    EntryKind,
    LedgerEntry,
    Reservation,
    ReservationKind,
    Supply,
    SupplyKind,
)
from ordercore.inventory.nodes import (
    Capability,
    FulfilmentNetwork,
    FulfilmentNode,
    NodeKind,
    ShippingCost,
    TransitTime,
    WorkingCalendar,
    Zone,
    check_node_id,
)
from ordercore.inventory.status import NodeStates, NodeStatus
from ordercore.inventory.stock import Availability, StockPosition

__all__ = [
    "Availability",
    "Capability",
    "EntryKind",
    "FulfilmentNetwork",
    "FulfilmentNode",
    "LedgerEntry",
    "NetworkAvailability",
    "NodeDay",
    "NodeKind",
    "NodeStates",
    "NodeStatus",
    "Reservation",
    "ReservationKind",
    "Reservations",
    "ShippingCost",
    "StockPosition",
    "Supplies",
    "Supply",
    "SupplyKind",
    "TransitTime",
    "WorkingCalendar",
    "Zone",
    "check_node_id",
    "network_availability",
    "network_available",
    "network_earliest",
]
