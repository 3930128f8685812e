"""The one error hierarchy of ordercore.

Every error has a machine-readable ``code`` (stable, snake_case) and carries the data that explains it.
Validation errors name the field (a dotted path such as ``lines[0].unit_price``), the offending value and
the reason; :class:`ValidationFailed` collects every problem found at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import attrs

__all__ = [
    "CapacityExhausted",
    "ConcurrencyConflict",
    "CurrencyMismatch",
    "DuplicateOrder",
    "EventHandlerFailed",
    "HoldNotFound",
    "IdempotencyConflict",
    "IllegalTransition",
    "InsufficientStock",
    "InvalidAddress",
    "InvalidExpression",
    "InvalidIdentifier",
    "InvalidMoney",
    "InvalidQuantity",
    "InvalidRuleSet",
    "InvalidTimestamp",
    "InvalidValue",
    "LifecycleDefinitionError",
    "LineNotFound",
    "NotFound",
    "OrderCoreError",
    "OrderNotFound",
    "Problem",
    "PublishRefused",
    "QuantityExceeded",
    "ReevaluationFailed",
    "ReservationConflict",
    "RuleEvaluationFailed",
    "RuleProblem",
    "SourcingFailed",
    "StockNotFound",
    "StoreUnavailable",
    "UnknownNode",
    "UnknownStore",
    "ValidationFailed",
]


def _rebuilt(cls: type[OrderCoreError], args: tuple[Any, ...], state: dict[str, Any]) -> OrderCoreError:
    """An error unpickled: its arguments and attributes as they were, without running its ``__init__``
    (whose parameters differ from class to class and from ``args``)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class OrderCoreError(Exception):
    """Root of every error raised by ordercore. ``code`` is stable and machine-readable. Every error pickles
    with what it carries (to pass it to another process)."""

    code: ClassVar[str] = "ordercore_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description, for APIs and logs."""
        return {"code": self.code, "message": self.message}


@attrs.frozen
class Problem:
    """One thing wrong with an input: where (``field``), what kind (``code``), why, and the value seen."""

    field: str
    code: str
    message: str
    value: Any = None

    def at(self, prefix: str) -> Problem:
        """The same problem, located under ``prefix`` (``"lines[0]"`` + ``"sku"`` -> ``"lines[0].sku"``)."""
        if not prefix:
            return self
        if not self.field:
            return attrs.evolve(self, field=prefix)
        joiner = "" if self.field.startswith("[") else "."
        return attrs.evolve(self, field=f"{prefix}{joiner}{self.field}")

    def __str__(self) -> str:
        where = self.field or "<input>"
        return f"{where}: {self.message} ({self.code})"


class InvalidValue(OrderCoreError, ValueError):
    """A single value is not acceptable. ``field`` is the path of the value when it is known."""

    code: ClassVar[str] = "invalid_value"

    def __init__(self, message: str, *, field: str = "", value: Any = None, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = message
        self.field = field
        self.value = value
        if code is not None:
            self.code = code  # type: ignore[misc]  # a narrower code for this instance

    def problem(self) -> Problem:
        return Problem(field=self.field, code=self.code, message=self.reason, value=self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.reason, "field": self.field, "value": repr(self.value)}


class InvalidMoney(InvalidValue):
    code: ClassVar[str] = "invalid_money"


class CurrencyMismatch(InvalidValue):
    code: ClassVar[str] = "currency_mismatch"


class InvalidQuantity(InvalidValue):
    code: ClassVar[str] = "invalid_quantity"


class QuantityExceeded(InvalidValue):
    """A change asks for more units than the line has in the bucket it draws from."""

    code: ClassVar[str] = "quantity_exceeded"


class InvalidAddress(InvalidValue):
    code: ClassVar[str] = "invalid_address"


class InvalidIdentifier(InvalidValue):
    code: ClassVar[str] = "invalid_identifier"


class InvalidTimestamp(InvalidValue):
    code: ClassVar[str] = "invalid_timestamp"


class ValidationFailed(OrderCoreError, ValueError):
    """An input had one or more problems; ``problems`` lists every one of them."""

    code: ClassVar[str] = "validation_failed"

    def __init__(self, problems: Sequence[Problem], *, subject: str = "input") -> None:
        self.problems = tuple(problems)
        self.subject = subject
        listing = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{subject} is invalid ({len(self.problems)} problem(s)): {listing}")

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(p.field for p in self.problems)

    @classmethod
    def raise_for(cls, problems: Sequence[Problem], *, subject: str = "input") -> None:
        """Raise nothing when ``problems`` is empty, the one problem as an :class:`InvalidValue` (with its
        code), several as a ValidationFailed about ``subject``."""
        if len(problems) == 1:
            p = problems[0]
            raise InvalidValue(p.message, field=p.field, value=p.value, code=p.code)
        if problems:
            raise cls(problems, subject=subject)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "problems": [
                {"field": p.field, "code": p.code, "message": p.message, "value": repr(p.value)}
                for p in self.problems
            ],
        }


class NotFound(OrderCoreError, LookupError):
    code: ClassVar[str] = "not_found"


class OrderNotFound(NotFound):
    code: ClassVar[str] = "order_not_found"

    def __init__(self, order_id: object) -> None:
        super().__init__(f"order {order_id} does not exist")
        self.order_id = order_id


class LineNotFound(NotFound):
    code: ClassVar[str] = "line_not_found"

    def __init__(self, order_id: object, line_id: object) -> None:
        super().__init__(f"order {order_id} has no line {line_id}")
        self.order_id = order_id
        self.line_id = line_id


class HoldNotFound(NotFound):
    code: ClassVar[str] = "hold_not_found"

    def __init__(self, order_id: object, hold_code: str) -> None:
        super().__init__(f"order {order_id} has no active hold {hold_code!r}")
        self.order_id = order_id
        self.hold_code = hold_code


class IllegalTransition(OrderCoreError):
    """The lifecycle does not allow ``trigger`` in the order's current state; nothing was changed."""

    code: ClassVar[str] = "illegal_transition"

    def __init__(
        self,
        *,
        order_id: object,
        state: object,
        trigger: object,
        target: object = None,
        failed_guard: str | None = None,
        detail: str | None = None,
    ) -> None:
        msg = f"order {order_id}: {trigger} is not allowed in state {state}"
        if target is not None:
            msg += f" (it would lead to {target})"
        if failed_guard:
            msg += f": guard {failed_guard} refused"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)
        self.order_id = order_id
        self.state = state
        self.trigger = trigger
        self.target = target
        self.failed_guard = failed_guard

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "order_id": str(self.order_id),
            "state": str(self.state),
            "trigger": str(self.trigger),
            "target": None if self.target is None else str(self.target),
            "failed_guard": self.failed_guard,
        }


class LifecycleDefinitionError(OrderCoreError, ValueError):
    """A lifecycle (state machine) definition is inconsistent; ``problems`` lists every defect."""

    code: ClassVar[str] = "lifecycle_definition"

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("lifecycle definition is invalid: " + "; ".join(self.problems))


class ConcurrencyConflict(OrderCoreError):
    """Somebody else changed the aggregate since it was loaded (optimistic concurrency)."""

    code: ClassVar[str] = "concurrency_conflict"

    def __init__(self, aggregate_id: object, expected_version: int, actual_version: int | None) -> None:
        super().__init__(
            f"{aggregate_id} was changed concurrently: expected version {expected_version}, "
            f"found {actual_version}"
        )
        self.aggregate_id = aggregate_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class DuplicateOrder(OrderCoreError):
    """An order with this id, or this channel and external reference, already exists."""

    code: ClassVar[str] = "duplicate_order"

    def __init__(self, message: str, *, existing_order_id: object = None) -> None:
        super().__init__(message)
        self.existing_order_id = existing_order_id


class IdempotencyConflict(DuplicateOrder):
    """An idempotency key came back with a request other than the one it first placed an order for."""

    code: ClassVar[str] = "idempotency_conflict"

    def __init__(self, key: str, *, existing_order_id: object = None) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for order {existing_order_id} with another request",
            existing_order_id=existing_order_id,
        )
        self.key = key


class InsufficientStock(OrderCoreError):
    """Not enough stock to reserve at a node, and the SKU is not backorderable there."""

    code: ClassVar[str] = "insufficient_stock"

    def __init__(self, node_id: object, sku: object, *, requested: int, available: int) -> None:
        super().__init__(f"{node_id} has {available} of {sku} available, {requested} requested")
        self.node_id = node_id
        self.sku = sku
        self.requested = requested
        self.available = available

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "node_id": str(self.node_id),
            "sku": str(self.sku),
            "requested": self.requested,
            "available": self.available,
        }


class CapacityExhausted(OrderCoreError):
    """A node has no shipment capacity left for the day: taking ``requested`` more shipments would exceed
    its daily ``limit``, ``used`` being what it has taken on already."""

    code: ClassVar[str] = "capacity_exhausted"

    def __init__(self, node_id: object, day: object, *, limit: int, used: int, requested: int = 1) -> None:
        super().__init__(
            f"{node_id} has taken on {used} of {limit} shipment(s) for {day}; {requested} more requested"
        )
        self.node_id = node_id
        self.day = day
        self.limit = limit
        self.used = used
        self.requested = requested

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "node_id": str(self.node_id),
            "day": str(self.day),
            "limit": self.limit,
            "used": self.used,
            "requested": self.requested,
        }


class ReservationConflict(OrderCoreError):
    """A reservation key was used before for a different reservation (another quantity, order or kind)."""

    code: ClassVar[str] = "reservation_conflict"

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "key": self.key}


class UnknownNode(NotFound):
    """No fulfilment node has this id in the network."""

    code: ClassVar[str] = "unknown_node"

    def __init__(self, node_id: object) -> None:
        super().__init__(f"no fulfilment node {node_id!r}")
        self.node_id = node_id


class StockNotFound(NotFound):
    """The node keeps no stock position for the SKU."""

    code: ClassVar[str] = "stock_not_found"

    def __init__(self, node_id: object, sku: object) -> None:
        super().__init__(f"{node_id} keeps no stock of {sku}")
        self.node_id = node_id
        self.sku = sku


class SourcingFailed(OrderCoreError):
    """No plan satisfies the order's sourcing policy (ship complete with no node holding everything and
    backorders not allowed, say). ``reasons`` says why, node by node where that applies."""

    code: ClassVar[str] = "sourcing_failed"

    def __init__(self, message: str, *, reasons: Sequence[str] = ()) -> None:
        super().__init__(message if not reasons else message + ": " + "; ".join(reasons))
        self.reasons = tuple(reasons)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reasons": list(self.reasons)}


class UnknownStore(OrderCoreError, ValueError):
    """No store adapter is registered for the URL's scheme."""

    code: ClassVar[str] = "unknown_store"


class StoreUnavailable(OrderCoreError):
    """The store could not be reached or failed mid-operation.

    ``retryable``: nothing was written and another attempt may well succeed (a pooled connection found
    broken when the unit first used it, a transaction the database itself rolled back, a write lock not
    granted in time); the message bus then runs the command again, up to ``unavailable_retries`` times.
    ``outcome_unknown``: the connection broke while a commit was on its way, so the database may or may
    not have applied it; nothing was retried, and the caller can read the order back (or send the
    command again under the same idempotency key, which returns the order if it was placed). Otherwise
    nothing was committed and another attempt is not expected to help soon (the server does not answer,
    the schema is not the one this version reads, a row cannot be read)."""

    code: ClassVar[str] = "store_unavailable"

    def __init__(self, message: str, *, retryable: bool = False, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable and not outcome_unknown
        self.outcome_unknown = outcome_unknown

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "retryable": self.retryable, "outcome_unknown": self.outcome_unknown}


class PublishRefused(StoreUnavailable):
    """An event publisher refused an event for good (too large for the broker, say): not retryable.

    ``event_id`` names the first event of those given that was not stored; every event given before it
    was stored, so the outbox relay marks those published and stops at this one, which waits in the outbox
    until an operator acts. None when the refusal is not about one event (nothing is marked then)."""

    code: ClassVar[str] = "publish_refused"

    def __init__(self, message: str, *, event_id: str | None = None) -> None:
        super().__init__(message, retryable=False)
        self.event_id = event_id

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "event_id": self.event_id}


class EventHandlerFailed(OrderCoreError):
    """Raised by a strict message bus after every handler ran, when one or more of them failed."""

    code: ClassVar[str] = "event_handler_failed"

    def __init__(self, failures: Sequence[Any]) -> None:
        self.failures = tuple(failures)
        super().__init__(
            f"{len(self.failures)} event handler(s) failed: "
            + "; ".join(f"{f.handler} on {f.event_type}: {f.error}" for f in self.failures)
        )


class ReevaluationFailed(OrderCoreError):
    """Raised by ``OrderCore.reevaluate_held`` after every held order was tried, when one or more failed.

    ``failures`` pairs each failed order's id with its error, in the order they were tried; ``results``
    holds the results of the orders re-evaluated meanwhile (they committed). The first error is also the
    ``__cause__``. Re-evaluating again is harmless: the orders that went through are no longer held for
    those codes, or are held again for the same reasons."""

    code: ClassVar[str] = "reevaluation_failed"

    def __init__(self, failures: Sequence[tuple[Any, BaseException]], results: Sequence[Any] = ()) -> None:
        self.failures = tuple(failures)
        self.results = tuple(results)
        super().__init__(
            f"{len(self.failures)} held order(s) failed to be re-evaluated: "
            + "; ".join(f"{order_id}: {type(e).__name__}: {e}" for order_id, e in self.failures)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "failures": [
                {
                    "order_id": str(order_id),
                    "code": e.code if isinstance(e, OrderCoreError) else type(e).__name__,
                    "message": str(e),
                }
                for order_id, e in self.failures
            ],
            "reevaluated": [str(r.order_id) for r in self.results],
        }


@attrs.frozen
class RuleProblem:
    """One thing wrong with a rule set: which rule, where (1-based line and column), what kind, and why.

    ``line``/``column`` are positions in the rule file when the problem was found while loading one, and
    positions inside the expression text otherwise; 0 means unknown.
    """

    rule_id: str
    code: str
    message: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        where = self.rule_id or "<rule set>"
        if self.line:
            where += f" (line {self.line}, column {self.column})"
        return f"{where}: {self.message} ({self.code})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "column": self.column,
        }


class InvalidExpression(OrderCoreError, ValueError):
    """A rule condition that does not parse, does not type-check or breaks a size limit; never run."""

    code: ClassVar[str] = "invalid_expression"

    def __init__(self, problems: Iterable[RuleProblem], message: str = "invalid rule expression") -> None:
        self.problems = tuple(problems)
        super().__init__(message + ": " + "; ".join(str(p) for p in self.problems))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "problems": [p.to_dict() for p in self.problems]}


class InvalidRuleSet(InvalidExpression):
    """A rule set refused at load, with every problem found in it at once."""

    code: ClassVar[str] = "invalid_rule_set"

    def __init__(self, problems: Iterable[RuleProblem], message: str = "invalid rule set") -> None:
        super().__init__(problems, message)


class RuleEvaluationFailed(OrderCoreError):
    """A checked rule failed while it ran (a missing value, a currency mismatch, a division by zero).

    The rule engine catches it per rule and records the rule's outcome as an error, so one broken rule
    never stops an order from being evaluated.
    """

    code: ClassVar[str] = "rule_evaluation_failed"

    def __init__(self, message: str, *, rule_id: str = "") -> None:
        super().__init__(message)
        self.rule_id = rule_id

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "rule_id": self.rule_id}
