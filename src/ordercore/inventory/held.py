"""The open reservations and the expected supply of a stock position, as immutable mappings: copies of a
position share them, and a change replaces them.

A best-selling SKU holds thousands of open reservations at one node, and every order that reserves one
more makes a new position: the copy a unit of work changes, while the store keeps the one it read.
Copying a plain ``dict`` of every reservation for each of them costs the more the more reservations the
position holds. :class:`Reservations` instead keeps a base map, shared by every copy and never changed,
and the few changes made since it was built; a change copies those changes only, and they are folded
into a new base once they outnumber the square root of its size (at least 32). Adding or removing one
reservation then costs about the square root of the number held, not the number held.

:class:`Supplies` holds the purchase orders and transfers a position expects. They change seldom (an order
placed with a supplier, a delivery), so a change copies them whole; being immutable, the same object can
stand for them in every copy of the position and its stored text be kept by identity, however often the
position's reservations change.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, Mapping, ValuesView
from math import isqrt
from typing import Any, overload

from ordercore.inventory.ledger import Reservation, Supply

__all__ = ["Reservations", "Supplies"]

#: the fewest changes kept apart from the base before they are folded into it
_MIN_CHANGES = 32


class Reservations(Mapping[str, Reservation]):
    """Reservations by key: a read-only mapping; :meth:`with_` and :meth:`without` give changed copies and
    leave this one as it is. It equals any mapping holding the same items (a ``dict`` included)."""

    __slots__ = ("_base", "_changes", "_len")

    _base: dict[str, Reservation]
    #: keys changed since the base was built: the reservation now held, or None for one given up
    _changes: dict[str, Reservation | None]
    _len: int

    def __init__(self, items: Mapping[str, Reservation] | Iterable[tuple[str, Reservation]] = ()) -> None:
        self._base = dict(items)
        self._changes = {}
        self._len = len(self._base)

    @classmethod
    def _made(
        cls, base: dict[str, Reservation], changes: dict[str, Reservation | None], length: int
    ) -> Reservations:
        made: Reservations = object.__new__(cls)
        if len(changes) > max(_MIN_CHANGES, isqrt(len(base))):  # fold them into a base of its own
            merged = {k: v for k, v in base.items() if k not in changes}
            merged.update((k, v) for k, v in changes.items() if v is not None)
            base, changes = merged, {}
        made._base, made._changes, made._len = base, changes, length
        return made

    # -- reading ------------------------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Reservation:
        changes = self._changes
        if key in changes:
            held = changes[key]
            if held is None:
                raise KeyError(key)
            return held
        return self._base[key]

    @overload
    def get(self, key: str, /) -> Reservation | None: ...
    @overload
    def get(self, key: str, default: Any, /) -> Any: ...

    def get(self, key: str, default: Any = None, /) -> Any:
        changes = self._changes
        if key in changes:
            held = changes[key]
            return default if held is None else held
        return self._base.get(key, default)

    def __contains__(self, key: object) -> bool:
        changes = self._changes
        if key in changes:
            return changes[key] is not None
        return key in self._base

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        changes = self._changes
        if not changes:
            return iter(self._base)
        return self._iter(changes)

    def _iter(self, changes: dict[str, Reservation | None]) -> Iterator[str]:
        base = self._base
        for key in base:
            if key not in changes or changes[key] is not None:
                yield key
        for key, held in changes.items():
            if held is not None and key not in base:
                yield key

    def values(self) -> ValuesView[Reservation]:
        return self._base.values() if not self._changes else ValuesView(self)

    def items(self) -> ItemsView[str, Reservation]:
        return self._base.items() if not self._changes else ItemsView(self)

    def as_dict(self) -> dict[str, Reservation]:
        """A plain ``dict`` of the same items."""
        if not self._changes:
            return dict(self._base)
        return {k: self[k] for k in self}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Reservations) and other._base is self._base and other._changes == self._changes:
            return True
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self) == len(other) and self.as_dict() == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Reservations({self.as_dict()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Reservations, (self.as_dict(),))

    # -- changed copies -----------------------------------------------------------------------------------
    def with_(self, key: str, reservation: Reservation) -> Reservations:
        """A copy that holds ``reservation`` under ``key`` (in place of what this one holds there)."""
        changes = dict(self._changes)
        length = self._len if key in self else self._len + 1
        changes[key] = reservation
        return Reservations._made(self._base, changes, length)

    def without(self, key: str) -> Reservations:
        """A copy that holds nothing under ``key``; KeyError when this one holds nothing there either."""
        if key not in self:
            raise KeyError(key)
        changes = dict(self._changes)
        if key in self._base:
            changes[key] = None
        else:
            del changes[key]
        return Reservations._made(self._base, changes, self._len - 1)


class Supplies(Mapping[str, Supply]):
    """Expected supply by reference: a read-only mapping; :meth:`with_` and :meth:`without` give changed
    copies and leave this one as it is. It equals any mapping holding the same items (a ``dict``
    included)."""

    __slots__ = ("_items",)

    _items: dict[str, Supply]

    def __init__(self, items: Mapping[str, Supply] | Iterable[tuple[str, Supply]] = ()) -> None:
        self._items = dict(items)

    @classmethod
    def _of(cls, items: dict[str, Supply]) -> Supplies:
        """One holding ``items`` itself (a dict nobody else holds), without copying it."""
        made: Supplies = object.__new__(cls)
        made._items = items
        return made

    def __getitem__(self, ref: str) -> Supply:
        return self._items[ref]

    def __contains__(self, ref: object) -> bool:
        return ref in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def values(self) -> ValuesView[Supply]:
        return self._items.values()

    def items(self) -> ItemsView[str, Supply]:
        return self._items.items()

    def as_dict(self) -> dict[str, Supply]:
        """A ``dict`` of the same items (a new one)."""
        return dict(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self) == len(other) and self._items == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Supplies({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Supplies, (self._items,))

    def with_(self, ref: str, supply: Supply) -> Supplies:
        """A copy that holds ``supply`` under ``ref`` (in place of what this one holds there)."""
        return Supplies._of({**self._items, ref: supply})

    def without(self, ref: str) -> Supplies:
        """A copy that holds nothing under ``ref``; KeyError when this one holds nothing there either."""
        items = dict(self._items)
        del items[ref]
        return Supplies._of(items)
