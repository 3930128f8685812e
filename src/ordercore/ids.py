"""Identifier generators: random (UUID-based) for production, sequential for tests and demos."""

from __future__ import annotations

import itertools
import uuid

from ordercore.errors import InvalidValue
from ordercore.values import OrderId

__all__ = ["SequentialIds", "UuidIds"]


class UuidIds:
    """Collision-free ids from random UUIDs: ``O-3f2a...``."""

    def new_order_id(self) -> OrderId:
        return OrderId(f"O-{uuid.uuid4().hex}")

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex}"


class SequentialIds:
    """Readable, repeatable ids: ``O-000001``, ``O-000002``... (one process only)."""

    def __init__(self, order_prefix: str = "O", start: int = 1) -> None:
        if not isinstance(order_prefix, str):
            raise InvalidValue("must be a string", field="order_prefix", value=order_prefix)
        try:
            OrderId(f"{order_prefix}-{0:06d}")
        except InvalidValue as e:
            raise InvalidValue(
                f"makes no valid order id: {e.reason}", field="order_prefix", value=order_prefix
            ) from e
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise InvalidValue("must be a whole number of 0 or more", field="start", value=start)
        self._order_prefix = order_prefix
        self._orders = itertools.count(start)
        self._others: dict[str, itertools.count[int]] = {}

    def new_order_id(self) -> OrderId:
        return OrderId(f"{self._order_prefix}-{next(self._orders):06d}")

    def new_id(self, prefix: str) -> str:
        counter = self._others.setdefault(prefix, itertools.count(1))
        return f"{prefix}-{next(counter):06d}"
