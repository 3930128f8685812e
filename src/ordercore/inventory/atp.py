"""Available-to-promise across the network: the stock positions of one SKU at every node, taken together.

Network ATP is the sum of the nodes' ATP, each node's never below zero (a node short of stock does not
take units from another). The network's earliest date pools every node's stock and incoming supply: the
first day by which the nodes together can promise the quantity, possibly split across nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import attrs

from ordercore.errors import InvalidValue
from ordercore.inventory.ledger import collect
from ordercore.inventory.stock import Availability, Incoming, StockPosition, earliest_date
from ordercore.values import Sku, check_aware, check_quantity

__all__ = ["NetworkAvailability", "network_availability", "network_available", "network_earliest"]


def _of_sku(positions: Iterable[StockPosition], sku: Sku) -> list[StockPosition]:
    """The positions of ``sku`` (others are skipped); each node at most once."""
    if not isinstance(sku, Sku):
        raise InvalidValue("must be a Sku", field="sku", value=sku)
    if isinstance(positions, str | bytes) or not isinstance(positions, Iterable):
        raise InvalidValue("must be an iterable of StockPosition", field="positions", value=positions)
    chosen: dict[str, StockPosition] = {}
    for i, p in enumerate(positions):
        if not isinstance(p, StockPosition):
            raise InvalidValue("must be a StockPosition", field=f"positions[{i}]", value=p)
        if p.sku != sku:
            continue
        if p.node_id in chosen:
            raise InvalidValue(f"holds node {p.node_id!r} twice for {sku}", field=f"positions[{i}]", value=p)
        chosen[p.node_id] = p
    return [chosen[n] for n in sorted(chosen)]


def network_available(positions: Iterable[StockPosition], sku: Sku, at: datetime) -> int:
    """Units of ``sku`` the network can promise at ``at``: the sum of each node's ATP. Positions of other
    SKUs are skipped."""
    check_aware(at, "at")
    return sum(p.available(at) for p in _of_sku(positions, sku))


def network_earliest(
    positions: Iterable[StockPosition], sku: Sku, quantity: int, at: datetime
) -> date | None:
    """The first day by which the network can promise ``quantity`` units of ``sku``, pooling every node's
    stock and incoming supply (the day of ``at`` when they are available now); None if never."""
    collect("earliest", lambda: check_quantity(quantity, "quantity"), lambda: check_aware(at, "at"))
    nodes = [p.availability(at) for p in _of_sku(positions, sku)]
    return earliest_date([(n.net, n.incoming) for n in nodes], quantity, at.date())


@attrs.frozen
class NetworkAvailability:
    """What the network can promise of ``sku`` at ``at``: the total and each node's part (sorted by node
    id), and the network's incoming supply by date."""

    sku: Sku
    at: datetime
    available: int
    nodes: tuple[Availability, ...]
    incoming: Incoming

    def node(self, node_id: str) -> Availability | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def earliest(self, quantity: int) -> date | None:
        """The first day by which the network can promise ``quantity`` units (see
        :func:`network_earliest`)."""
        check_quantity(quantity, "quantity")
        return earliest_date([(n.net, n.incoming) for n in self.nodes], quantity, self.at.date())


def network_availability(positions: Iterable[StockPosition], sku: Sku, at: datetime) -> NetworkAvailability:
    """A summary of ``sku`` across the network at ``at``, node by node."""
    check_aware(at, "at")
    nodes = tuple(p.availability(at) for p in _of_sku(positions, sku))
    by_day: dict[date, int] = {}
    for n in nodes:
        for day, units in n.incoming:
            by_day[day] = by_day.get(day, 0) + units
    return NetworkAvailability(
        sku=sku,
        at=at,
        available=sum(n.available for n in nodes),
        nodes=nodes,
        incoming=tuple(sorted(by_day.items())),
    )
