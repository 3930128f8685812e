"""Whether fulfilment nodes are online: operational state that every worker of a store shares.

A node's definition (:class:`~ordercore.inventory.FulfilmentNode`) is configuration; whether it ships right
now is set at run time by an operator (a warehouse closed by a storm, a store's system down). That state is
kept by the store, so that every process sourcing orders from it sees the same: a :class:`NodeStatus` per
node ever switched, who switched it, when and why, and a version of the whole (:class:`NodeStates`) that
grows with every change. A node that was never switched is online.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from ordercore.errors import InvalidValue
from ordercore.inventory.ledger import check_reason, collect
from ordercore.inventory.nodes import check_node_id
from ordercore.values import Actor, check_aware

__all__ = ["NodeStates", "NodeStatus"]


def _check_status(status: NodeStatus) -> None:
    collect(
        "node status",
        lambda: check_node_id(status.node_id),
        lambda: _check_bool(status.online),
        lambda: check_aware(status.changed_at, "changed_at"),
        lambda: _check_actor(status.actor),
        lambda: check_reason(status.reason),
    )


def _check_bool(value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidValue("must be true or false", field="online", value=value)


def _check_actor(value: object) -> None:
    if not isinstance(value, Actor):
        raise InvalidValue("must be an Actor", field="actor", value=value)


@attrs.frozen
class NodeStatus:
    """Whether ``node_id`` is online, as ``actor`` last set it at ``changed_at``, and why."""

    node_id: str
    online: bool
    changed_at: datetime
    actor: Actor
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        _check_status(self)


@attrs.frozen
class NodeStates:
    """The stored status of every node ever switched (sorted by node id), at ``version``: 0 before any
    change, one more with every change committed."""

    version: int = 0
    statuses: tuple[NodeStatus, ...] = ()

    def __attrs_post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise InvalidValue("must be a whole number, 0 or more", field="version", value=self.version)
        if not isinstance(self.statuses, tuple) or not all(isinstance(s, NodeStatus) for s in self.statuses):
            raise InvalidValue("must be a tuple of NodeStatus", field="statuses", value=self.statuses)
        ids = [s.node_id for s in self.statuses]
        if ids != sorted(set(ids)):
            raise InvalidValue("must hold each node once, sorted by node id", field="statuses", value=ids)

    @classmethod
    def of(cls, version: int, statuses: Iterable[NodeStatus]) -> NodeStates:
        """The states at ``version`` holding ``statuses`` (the last one given for a node counts)."""
        by_node = {s.node_id: s for s in statuses}
        return cls(version, tuple(by_node[k] for k in sorted(by_node)))

    @property
    def offline(self) -> frozenset[str]:
        """The nodes switched offline."""
        return frozenset(s.node_id for s in self.statuses if not s.online)

    def status(self, node_id: str) -> NodeStatus | None:
        """The status ``node_id`` was last given, or None for a node never switched (online)."""
        return next((s for s in self.statuses if s.node_id == node_id), None)

    def is_online(self, node_id: str) -> bool:
        status = self.status(node_id)
        return status is None or status.online
