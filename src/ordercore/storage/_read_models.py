"""The read models' rows of an order (its age, holds, backorders and digest), as every store keeps them
for the queries operators run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from ordercore.errors import InvalidValue
from ordercore.lifecycle import OrderStatus
from ordercore.lines import OrderLine
from ordercore.order import Hold, Order
from ordercore.ports import BackorderedLine, BackorderSummary, HeldOrder, OrderDigest
from ordercore.values import CustomerId, CustomerRef, OrderId, Sku

# -- read models: what a store keeps next to each order, rewritten whenever the order is written ------------
#: the largest limit a query passes on: SQL stores bind it as a 64-bit integer, and no store holds more rows
MAX_LIMIT = 2**63 - 1


def check_limit(limit: object) -> int:
    """The most rows a query may return: an integer (InvalidValue otherwise), a negative one meaning none,
    one above :data:`MAX_LIMIT` meaning that many (every row)."""
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise InvalidValue("must be an integer", field="limit", value=limit)
    return min(max(limit, 0), MAX_LIMIT)


def status_since(order: Order) -> datetime:
    """When ``order`` entered its current status: the first event of the latest run of events that left
    it in that status (``updated_at`` for an order without history)."""
    since, previous = order.updated_at, None
    for ev in order.history:
        if ev.status.name != previous:
            since, previous = ev.occurred_at, ev.status.name
    return since


def hold_rows(order: Order) -> list[HeldOrder]:
    """The active holds of ``order``, in code order."""
    return _hold_rows(order.id, order.holds)


def backorder_rows(order: Order) -> list[tuple[Sku, BackorderedLine]]:
    """The lines of ``order`` with backordered units, with their SKU, in line order; ``placed_at`` is when
    the order was placed (created, for one never placed)."""
    return _backorder_rows(order.id, order.lines, order.placed_at or order.created_at)


def _hold_rows(order_id: OrderId, holds: Iterable[Hold]) -> list[HeldOrder]:
    return sorted((HeldOrder(order_id, h.code, h.message, h.placed_at) for h in holds), key=lambda h: h.code)


def _backorder_rows(
    order_id: OrderId, lines: Iterable[OrderLine], placed_at: datetime
) -> list[tuple[Sku, BackorderedLine]]:
    return [
        (line.sku, BackorderedLine(order_id, line.id, line.qty.backordered, placed_at))
        for line in lines
        if line.qty.backordered > 0
    ]


class _ReadModelInputs(NamedTuple):
    """Everything the read model rows of an order are made of (its holds, lines, adjustments and
    customer are immutable, replaced when they change), and the version it was read at."""

    version: int
    holds: tuple[Hold, ...]
    lines: tuple[OrderLine, ...]
    placed_at: datetime
    # what its digest is made of, besides its lines
    placed: datetime | None
    live: bool
    customer: CustomerRef
    currency: str
    adjustments: tuple[tuple[Any, ...], ...]

    def same_objects(self, other: _ReadModelInputs) -> bool:
        return (
            self.holds is other.holds
            and self.lines is other.lines
            and self.placed_at == other.placed_at
            and self.placed == other.placed
            and self.live is other.live
            and self.customer is other.customer
            and self.currency == other.currency
            and all(a is b for a, b in zip(self.adjustments, other.adjustments, strict=True))
        )

    def rows(self, order_id: OrderId) -> tuple[list[HeldOrder], list[tuple[Sku, BackorderedLine]]]:
        return _hold_rows(order_id, self.holds), _backorder_rows(order_id, self.lines, self.placed_at)

    def digest_key(self) -> tuple[Any, ...] | None:
        """Everything the digest (see :func:`order_digest`) depends on, None for an order with none: its
        items and its total, which depends on each line's price, live units and adjustments only."""
        if self.placed is None or not self.live:
            return None
        lines = tuple(
            (line.sku, line.unit_price, line.qty.ordered, line.qty.cancelled, line.discounts, line.taxes)
            for line in self.lines
        )
        return self.placed, self.customer.id, self.currency, self.adjustments, lines


def _read_model_inputs(order: Order) -> _ReadModelInputs:
    return _ReadModelInputs(
        order.persisted_version,
        order.holds,
        order.lines,
        order.placed_at or order.created_at,
        order.placed_at,
        _is_live(order),
        order.customer,
        order.currency,
        (order.discounts, order.shipping_charges, order.shipping_taxes),
    )


#: statuses whose orders no longer count as placed for :func:`order_digest`
_NOT_LIVE = frozenset({OrderStatus.REJECTED.name, OrderStatus.CANCELLED.name})


def _is_live(order: Order) -> bool:
    return order.placed_at is not None and order.status.name not in _NOT_LIVE


def order_digest(order: Order) -> OrderDigest | None:
    """What a store's recent orders (``RecentOrders.placed_since``) say of ``order``: its customer, when
    it was placed, its items (SKU and live units, ordered less cancelled, per line) and its grand total;
    None for an order never placed, rejected or cancelled."""
    if not _is_live(order):
        return None
    assert order.placed_at is not None
    return OrderDigest(
        order.id,
        order.customer.id,
        order.placed_at,
        frozenset((str(line.sku), line.qty.ordered - line.qty.cancelled) for line in order.lines),
        order.totals().grand_total,
    )


def check_recent_orders_query(customer_id: object, since: object) -> None:
    """Refuse what ``placed_since`` cannot answer (InvalidValue): a customer id that is not a
    :class:`~ordercore.values.CustomerId`, a moment that is not a timezone-aware datetime."""
    if not isinstance(customer_id, CustomerId):
        raise InvalidValue("must be a CustomerId", field="customer_id", value=customer_id)
    if not isinstance(since, datetime) or since.tzinfo is None:
        raise InvalidValue("must be a timezone-aware datetime", field="since", value=since)


def newest_first(digests: Iterable[OrderDigest]) -> list[OrderDigest]:
    """``digests`` newest first (the later order id first among orders placed at one moment)."""
    return sorted(digests, key=lambda d: (d.placed_at, d.order_id.value), reverse=True)


def summarise_backorders(rows: Iterable[tuple[Sku, BackorderedLine]]) -> list[BackorderSummary]:
    """One summary per SKU of ``rows`` (sorted by SKU, then as given), sorted by SKU; lines keep the order
    of ``rows``."""
    by_sku: dict[Sku, list[BackorderedLine]] = {}
    for sku, line in rows:
        by_sku.setdefault(sku, []).append(line)
    return [
        BackorderSummary(
            sku,
            sum(line.quantity for line in lines),
            len({line.order_id for line in lines}),
            min(line.placed_at for line in lines),
            tuple(lines),
        )
        for sku, lines in sorted(by_sku.items(), key=lambda item: item[0].value)
    ]
