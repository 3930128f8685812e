"""Shipment capacity of a fulfilment node on one dispatch day.

A node's ``daily_capacity`` (:class:`~ordercore.inventory.nodes.FulfilmentNode`) caps the shipments it takes
on for one day. :class:`NodeDay` counts what a node has taken on for a day, each shipment (or group of
shipments) under a key, so that taking the same key again, after a retry say, counts once. Like a stock
position, it changes only through its methods; a refused call raises a typed error and changes nothing.
Stores keep one per node and day, checked for concurrent changes at commit like any aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

import attrs

from ordercore.errors import CapacityExhausted, InvalidValue, Problem, ValidationFailed
from ordercore.inventory.ledger import check_key, collect
from ordercore.inventory.nodes import check_node_id
from ordercore.values import check_quantity

__all__ = ["NodeDay", "check_day", "check_limit"]


def check_day(value: object, field: str = "day") -> date:
    """Return ``value`` if it is a calendar date (a ``date``, not a ``datetime``)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidValue("must be a date (not a datetime)", field=field, value=value)
    return value


def check_limit(value: object, field: str = "limit") -> int | None:
    """Return ``value`` if it is a daily capacity: a whole number >= 0, or None for no limit."""
    if value is None:
        return None
    return check_quantity(value, field, allow_zero=True)


def _check_taken(value: object) -> None:
    if not isinstance(value, dict):
        raise InvalidValue("must map keys to shipments", field="taken", value=value)
    for key, shipments in value.items():
        check_key(key, "taken")
        check_quantity(shipments, f"taken[{key!r}]")


@attrs.define(eq=True)
class NodeDay:
    """Shipments node ``node_id`` has taken on for dispatch day ``day``, each under a key (idempotent):
    ``taken`` maps a key to its shipments (normally 1). ``version`` counts the changes made so far;
    ``persisted_version`` is the version stored. Start one with :meth:`open`."""

    node_id: str
    day: date
    taken: dict[str, int]
    version: int = 0
    persisted_version: int = attrs.field(default=0, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []

        def check(fn: Callable[[], object]) -> None:
            try:
                fn()
            except InvalidValue as e:
                problems.append(e.problem())

        check(lambda: check_node_id(self.node_id))
        check(lambda: check_day(self.day))
        check(lambda: _check_taken(self.taken))
        check(lambda: check_quantity(self.version, "version", allow_zero=True))
        check(lambda: check_quantity(self.persisted_version, "persisted_version", allow_zero=True))
        if not problems and self.persisted_version > self.version:
            problems.append(
                Problem(
                    "persisted_version",
                    InvalidValue.code,
                    f"must not be above version ({self.version})",
                    self.persisted_version,
                )
            )
        if problems:
            raise ValidationFailed(problems, subject=f"node day {self.node_id}/{self.day}")

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, node_id: str, day: date) -> NodeDay:
        """An empty day at version 0: nothing taken on, not stored yet."""
        collect("node day", lambda: check_node_id(node_id), lambda: check_day(day))
        return cls(node_id, day, {})

    def clone(self) -> NodeDay:
        """An independent copy (``taken`` is copied)."""
        return NodeDay(self.node_id, self.day, dict(self.taken), self.version, self.persisted_version)

    def mark_persisted(self) -> None:
        """What a store calls once the day is committed: its version is the stored one."""
        self.persisted_version = self.version

    # -- reading ------------------------------------------------------------------------------------------
    @property
    def used(self) -> int:
        """Shipments taken on so far."""
        return sum(self.taken.values())

    @property
    def changed(self) -> bool:
        """Whether the day changed since it was loaded or last stored."""
        return self.version != self.persisted_version

    def left(self, limit: int | None) -> int | None:
        """Shipments still possible under ``limit`` (the node's daily capacity): None for no limit, else
        ``limit - used``, never below zero (a limit lowered after the fact leaves nothing)."""
        cap = check_limit(limit)
        return None if cap is None else max(0, cap - self.used)

    # -- changing -----------------------------------------------------------------------------------------
    def take(self, key: str, *, limit: int | None, shipments: int = 1) -> bool:
        """Take on ``shipments`` under ``key``, within ``limit`` (None for no limit). True when recorded;
        False when ``key`` already holds as many shipments (a retry), and nothing changes. The same key
        with another number of shipments is refused (give it back first). CapacityExhausted when it would
        take the day beyond ``limit``."""
        collect(
            "capacity",
            lambda: check_key(key, "key"),
            lambda: check_limit(limit),
            lambda: check_quantity(shipments, "shipments"),
        )
        held = self.taken.get(key)
        if held is not None:
            if held == shipments:
                return False
            raise InvalidValue(
                f"key {key!r} already holds {held} shipment(s) at {self.node_id} on {self.day}: "
                "give it back before taking another number",
                field="shipments",
                value=shipments,
            )
        used = self.used
        if limit is not None and used + shipments > limit:
            raise CapacityExhausted(self.node_id, self.day, limit=limit, used=used, requested=shipments)
        self.taken[key] = shipments
        self.version += 1
        return True

    def give_back(self, key: str) -> bool:
        """Give back what ``key`` took on: True when it held something, False (and nothing changes) when
        the key is unknown."""
        check_key(key, "key")
        if key not in self.taken:
            return False
        del self.taken[key]
        self.version += 1
        return True
