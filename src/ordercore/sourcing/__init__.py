"""Sourcing: which fulfilment nodes ship which units of an order, and why.

Build a :class:`NetworkStock` once from every node's :class:`NodeStock`, then ask a strategy for a plan::

    plan = source(request, network, "cost_optimal")   # or STRATEGIES["nearest"].plan(request, network)
    print(plan.explain())

Every strategy keeps the request's :class:`SourcingPolicy` and explains its choice; the functions are pure
(the network is only read, except by :meth:`NetworkStock.apply` and :meth:`NetworkStock.restore`).
"""

from ordercore.sourcing.batch import (
    DEFAULT_MAX_ROUNDS,
    Fairness,
    WaveOrder,
    WaveResult,
    fairness_order,
    source_one_by_one,
    source_wave,
)
from ordercore.sourcing.candidates import Candidate
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
from ordercore.sourcing.network import NetworkStock
from ordercore.sourcing.optimal import CostOptimal, FewestShipments
from ordercore.sourcing.strategies import STRATEGIES, GreedyStrategy, Nearest, Priority, source

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "Fairness",
    "WaveOrder",
    "WaveResult",
    "fairness_order",
    "source_one_by_one",
    "source_wave",
    "STRATEGIES",
    "Candidate",
    "CostOptimal",
    "FewestShipments",
    "GreedyStrategy",
    "Nearest",
    "NetworkStock",
    "NodeStock",
    "PlannedBackorder",
    "PlannedShipment",
    "Priority",
    "RejectReason",
    "Rejection",
    "SourcingLine",
    "SourcingPlan",
    "SourcingPolicy",
    "SourcingRequest",
    "SourcingStrategy",
    "source",
]
