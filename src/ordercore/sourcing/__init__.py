"""Sourcing: which fulfilment nodes ship which units of an order, and why."""

from ordercore.sourcing.model import (
    NodeStock,
    PlannedBackorder,
    PlannedShipment,
    Rejection,
    RejectReason,
    SourcingLine,
    SourcingPlan,
    SourcingPolicy,
    SourcingRequest,
    SourcingStrategy,
)

__all__ = [
    "NodeStock",
    "PlannedBackorder",
    "PlannedShipment",
    "RejectReason",
    "Rejection",
    "SourcingLine",
    "SourcingPlan",
    "SourcingPolicy",
    "SourcingRequest",
    "SourcingStrategy",
]
