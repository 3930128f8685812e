"""Every error of ordercore's hierarchy pickles with what it carries: a worker process can hand one to
its parent (multiprocessing, a task queue) and the parent sees the same code, message and fields."""

from __future__ import annotations

import pickle
from datetime import date

import pytest

import ordercore
from ordercore.errors import OrderCoreError, Problem, RuleProblem
from ordercore.values import OrderId, Sku
from ordercore_adapters.broker import BrokerRefused, BrokerUnavailable

O1 = OrderId("O-1")
PROBLEM = RuleProblem("r1", "bad", "no such field", 1, 2)

SAMPLES: dict[str, OrderCoreError] = {
    "OrderCoreError": ordercore.OrderCoreError("plain"),
    "InvalidValue": ordercore.InvalidValue("too long", field="lines[0].sku", value="x" * 80),
    "InvalidMoney": ordercore.InvalidMoney("not a number", field="amount", value="ten"),
    "CurrencyMismatch": ordercore.CurrencyMismatch("USD in an EUR order", field="unit_price"),
    "InvalidQuantity": ordercore.InvalidQuantity("must be at least 1", field="quantity", value=0),
    "QuantityExceeded": ordercore.QuantityExceeded("only 2 open", field="lines.1", value=3),
    "InvalidAddress": ordercore.InvalidAddress("unknown postal code", field="postal_code", value="0"),
    "InvalidIdentifier": ordercore.InvalidIdentifier("empty", field="order_id", value=""),
    "InvalidTimestamp": ordercore.InvalidTimestamp("naive", field="at"),
    "ValidationFailed": ordercore.ValidationFailed(
        [Problem("sku", "invalid_value", "empty", "")], subject="line"
    ),
    "NotFound": ordercore.NotFound("nothing here"),
    "OrderNotFound": ordercore.OrderNotFound(O1),
    "LineNotFound": ordercore.LineNotFound(O1, "3"),
    "HoldNotFound": ordercore.HoldNotFound(O1, "FRAUD"),
    "StockNotFound": ordercore.StockNotFound("BER", Sku("MUG")),
    "UnknownNode": ordercore.UnknownNode("XYZ"),
    "IllegalTransition": ordercore.IllegalTransition(order_id=O1, state="shipped", trigger="cancel"),
    "LifecycleDefinitionError": ordercore.LifecycleDefinitionError(["state x is unreachable"]),
    "ConcurrencyConflict": ordercore.ConcurrencyConflict(O1, 3, 4),
    "DuplicateOrder": ordercore.DuplicateOrder("already there", existing_order_id=O1),
    "IdempotencyConflict": ordercore.IdempotencyConflict("REQ-1", existing_order_id=O1),
    "InsufficientStock": ordercore.InsufficientStock("BER", Sku("MUG"), requested=3, available=1),
    "CapacityExhausted": ordercore.CapacityExhausted("BER", date(2026, 3, 2), limit=1, used=1),
    "ReservationConflict": ordercore.ReservationConflict("taken", key="K-1"),
    "InvalidExpression": ordercore.InvalidExpression([PROBLEM]),
    "InvalidRuleSet": ordercore.InvalidRuleSet([PROBLEM]),
    "RuleEvaluationFailed": ordercore.RuleEvaluationFailed("division by zero", rule_id="r1"),
    "SourcingFailed": ordercore.SourcingFailed("no node", reasons=["offline"]),
    "UnknownStore": ordercore.UnknownStore("mongodb:// is no store"),
    "StoreUnavailable": ordercore.StoreUnavailable("server gone", retryable=True),
    "PublishRefused": ordercore.PublishRefused("too large", event_id="O-1#2"),
    "EventHandlerFailed": ordercore.EventHandlerFailed([]),
    "ReevaluationFailed": ordercore.ReevaluationFailed([(O1, ordercore.StoreUnavailable("down"))], ()),
}


def test_every_exported_error_has_a_sample() -> None:
    exported = {
        name
        for name in ordercore.__all__
        if isinstance(getattr(ordercore, name), type) and issubclass(getattr(ordercore, name), OrderCoreError)
    }
    assert exported == set(SAMPLES)


@pytest.mark.parametrize(
    "error",
    [
        *SAMPLES.values(),
        BrokerUnavailable("NATS gone", retryable=True),
        BrokerRefused("too large for the stream", event_id="O-1#1"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_error_unpickled_is_the_same_error(error: OrderCoreError) -> None:
    error.add_note("seen by the worker")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert (back.code, str(back), back.args) == (error.code, str(error), error.args)
    assert repr(back.to_dict()) == repr(error.to_dict())
    assert back.__notes__ == ["seen by the worker"]
