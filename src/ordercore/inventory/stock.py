"""Stock of one SKU at one fulfilment node, kept as an append-only ledger.

A :class:`StockPosition` changes only through its methods. Each method checks everything first, raises a
typed error and changes nothing when a check fails, and otherwise records ledger entries
(:class:`~ordercore.inventory.ledger.LedgerEntry`) and applies them. ``StockPosition.replay(entries)``
rebuilds an equal position from its full ledger.

Available-to-promise (ATP) at a moment is ``on_hand - safety_stock - live reservations``, never below
zero. Stock on hand never goes below zero, and nothing is reserved beyond what is available unless the SKU
is backorderable at the node. A count (:meth:`StockPosition.adjust`) is a fact and is always recorded, even
when it leaves reservations uncovered: :meth:`StockPosition.shortfall` then says by how much.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import NamedTuple

import attrs

from ordercore.errors import (
    InsufficientStock,
    InvalidQuantity,
    InvalidValue,
    NotFound,
    Problem,
    ReservationConflict,
    ValidationFailed,
)
from ordercore.inventory.held import Reservations, Supplies
from ordercore.inventory.ledger import (
    MAX_KEY,
    MAX_REASON,
    RESERVATION_KINDS,
    EntryKind,
    LedgerEntry,
    Reservation,
    ReservationKind,
    Supply,
    SupplyKind,
    check_key,
    check_reason,
    collect,
)
from ordercore.inventory.nodes import check_node_id
from ordercore.values import MAX_QUANTITY, Sku, check_aware, check_quantity, plain_text

__all__ = ["Availability", "StockPosition", "earliest_date"]

Incoming = tuple[tuple[date, int], ...]


def _check_sku(value: object, field: str = "sku") -> Sku:
    if not isinstance(value, Sku):
        raise InvalidValue("must be a Sku", field=field, value=value)
    return value


def _check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue("must be true or false", field=field, value=value)
    return value


def _check_optional_quantity(value: object, field: str) -> None:
    if value is not None:
        check_quantity(value, field)


def _check_expiry(hard: object, expires_at: object, at: object) -> None:
    if hard is True:
        if expires_at is not None:
            raise InvalidValue(
                "a hard reservation never expires: leave it None", field="expires_at", value=expires_at
            )
        return
    if hard is not False:
        return  # reported for `hard`
    end = check_aware(expires_at, "expires_at")
    if isinstance(at, datetime) and at.utcoffset() is not None and not end > at:
        raise InvalidValue("a soft reservation must expire after `at`", field="expires_at", value=expires_at)


def earliest_date(stocks: Iterable[tuple[int, Incoming]], quantity: int, today: date) -> date | None:
    """The first day from ``today`` on by which ``quantity`` units are promisable from ``stocks``, each a
    ``(net, incoming)`` pair: ``net`` is on hand minus safety stock minus live reservations (negative when
    a node is short) and ``incoming`` its expected supply. Supply due before ``today`` counts from today;
    a node's supply first covers its own shortfall. None when even all the supply is not enough."""
    nodes = [(net, tuple((max(day, today), units) for day, units in incoming)) for net, incoming in stocks]
    if sum(max(0, net) for net, _ in nodes) >= quantity:
        return today
    for day in sorted({d for _, incoming in nodes for d, _ in incoming}):
        total = sum(max(0, net + sum(u for d, u in incoming if d <= day)) for net, incoming in nodes)
        if total >= quantity:
            return day
    return None


@attrs.frozen
class Availability:
    """What a node can promise of a SKU at ``at``: ``available = max(0, on_hand - safety_stock -
    reserved)``; ``shortfall`` is the live reserved units that stock on hand does not cover."""

    node_id: str
    sku: Sku
    at: datetime
    on_hand: int
    safety_stock: int
    reserved: int
    available: int
    shortfall: int
    backorderable: bool
    incoming: Incoming

    @property
    def net(self) -> int:
        """``on_hand - safety_stock - reserved``: negative when reservations eat into safety stock or
        beyond."""
        return self.on_hand - self.safety_stock - self.reserved

    def earliest(self, quantity: int) -> date | None:
        """The first day by which ``quantity`` units are promisable here, counting incoming supply."""
        check_quantity(quantity, "quantity")
        return earliest_date([(self.net, self.incoming)], quantity, self.at.date())


@attrs.define(eq=True)
class StockPosition:
    """Stock of ``sku`` at ``node_id``: units ``on_hand``, ``safety_stock`` kept back, ``reservations`` by
    key, expected ``supply`` by reference. ``version`` is the number of ledger entries recorded so far;
    ``persisted_version`` the number already stored. Open one with :meth:`open`; rebuild one with
    :meth:`replay`."""

    node_id: str
    sku: Sku
    on_hand: int
    safety_stock: int
    backorderable: bool
    #: open reservations by key (a :class:`~ordercore.inventory.held.Reservations`: any mapping given is
    #: taken as one)
    reservations: Reservations = attrs.field(factory=Reservations)
    #: expected supply by reference (a :class:`~ordercore.inventory.held.Supplies`: any mapping given is
    #: taken as one)
    supply: Supplies = attrs.field(factory=Supplies)
    version: int = 0
    persisted_version: int = attrs.field(default=0, eq=False, repr=False)
    _recorded: list[LedgerEntry] = attrs.field(factory=list, init=False, eq=False, repr=False)
    #: units held by hard reservations and by soft ones, and which soft ones had lapsed over a span of
    #: time (see :class:`_Held`): worked out on first use, then moved by each entry that changes a
    #: reservation (never changed in place: clones share it)
    _held_sum: _Held | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        problems: list[Problem] = []

        def check(fn: Callable[[], object]) -> None:
            try:
                fn()
            except InvalidValue as e:
                problems.append(e.problem())

        check(lambda: check_node_id(self.node_id))
        check(lambda: _check_sku(self.sku))
        check(lambda: check_quantity(self.on_hand, "on_hand", allow_zero=True))
        check(lambda: check_quantity(self.safety_stock, "safety_stock", allow_zero=True))
        check(lambda: _check_bool(self.backorderable, "backorderable"))
        check(lambda: check_quantity(self.version, "version", allow_zero=True))
        check(lambda: check_quantity(self.persisted_version, "persisted_version", allow_zero=True))
        if type(self.reservations) is not Reservations and isinstance(self.reservations, Mapping):
            self.reservations = Reservations(self.reservations)
        if not isinstance(self.reservations, Reservations) or not all(
            isinstance(r, Reservation) and r.key == k for k, r in self.reservations.items()
        ):
            problems.append(
                Problem(
                    "reservations", InvalidValue.code, "must map keys to their Reservation", self.reservations
                )
            )
        if type(self.supply) is not Supplies and isinstance(self.supply, Mapping):
            self.supply = Supplies(self.supply)
        if not isinstance(self.supply, Supplies) or not all(
            isinstance(s, Supply) and s.ref == k for k, s in self.supply.items()
        ):
            problems.append(
                Problem("supply", InvalidValue.code, "must map references to their Supply", self.supply)
            )
        if problems:
            raise ValidationFailed(problems, subject=f"stock position {self.node_id}/{self.sku}")

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        node_id: str,
        sku: Sku,
        *,
        at: datetime,
        on_hand: int = 0,
        safety_stock: int = 0,
        backorderable: bool = False,
        reason: str = "",
    ) -> StockPosition:
        """A new position: records OPENED (and SAFETY_STOCK_SET when ``safety_stock`` is not zero)."""
        collect(
            "stock position",
            lambda: check_node_id(node_id),
            lambda: _check_sku(sku),
            lambda: check_aware(at, "at"),
            lambda: check_quantity(on_hand, "on_hand", allow_zero=True),
            lambda: check_quantity(safety_stock, "safety_stock", allow_zero=True),
            lambda: _check_bool(backorderable, "backorderable"),
            lambda: check_reason(reason),
        )
        position = cls(node_id, sku, on_hand=0, safety_stock=0, backorderable=False)
        position._record(
            LedgerEntry(node_id, sku, 1, EntryKind.OPENED, on_hand, at, reason, backorderable=backorderable)
        )
        if safety_stock:
            position._record(position._entry(EntryKind.SAFETY_STOCK_SET, safety_stock, at, reason))
        return position

    @classmethod
    def replay(cls, entries: Iterable[LedgerEntry]) -> StockPosition:
        """Rebuild a position from its full ledger: OPENED first, then sequence numbers 2, 3... without
        gaps, all of one node and SKU. Every entry counts as new (``persisted_version`` is 0)."""
        it = _entries(entries)
        first = next(it, None)
        if not isinstance(first, LedgerEntry) or first.kind is not EntryKind.OPENED or first.sequence != 1:
            raise InvalidValue("must start with OPENED, sequence 1", field="entries[0]", value=first)
        position = cls(first.node_id, first.sku, on_hand=0, safety_stock=0, backorderable=False)
        position._record(first)
        position._apply_next(it, start=1)
        return position

    def clone(self) -> StockPosition:
        """An independent copy. A copy of a valid position is valid, so it is not checked again. The two
        share their reservations (immutable: a change replaces them, at the cost of the change, however
        many the position holds) and their supply (immutable too): stores clone many positions per
        command, most only to be read."""
        copy: StockPosition = object.__new__(StockPosition)
        copy.node_id = self.node_id
        copy.sku = self.sku
        copy.on_hand = self.on_hand
        copy.safety_stock = self.safety_stock
        copy.backorderable = self.backorderable
        copy.reservations = self.reservations
        copy.supply = self.supply
        copy.version = self.version
        copy.persisted_version = self.persisted_version
        copy._recorded = list(self._recorded) if self._recorded else []
        copy._held_sum = self._held_sum
        return copy

    def _apply_next(self, entries: Iterable[LedgerEntry], *, start: int) -> None:
        """Record ``entries``, each this position's next one, as read from its ledger; InvalidValue names
        the first that is not (``entries[start]`` is the first given)."""
        for i, entry in enumerate(entries, start=start):
            if (
                not isinstance(entry, LedgerEntry)
                or entry.node_id != self.node_id
                or entry.sku != self.sku
                or entry.sequence != self.version + 1
            ):
                raise InvalidValue(
                    f"expected entry {self.version + 1} of {self.node_id}/{self.sku}",
                    field=f"entries[{i}]",
                    value=entry,
                )
            try:
                self._record(entry)
            except InvalidValue as e:
                raise InvalidValue(
                    f"cannot be applied: {e.reason}", field=f"entries[{i}]", value=entry
                ) from e

    def new_entries(self) -> list[LedgerEntry]:
        """Entries recorded since the position was loaded or last stored, in order."""
        return [e for e in self._recorded if e.sequence > self.persisted_version]

    def mark_persisted(self) -> None:
        """What a store calls once the new entries are committed: they are no longer new."""
        self.persisted_version = self.version
        self._recorded.clear()

    def advanced(self, entries: Iterable[LedgerEntry]) -> StockPosition:
        """A copy of this stored position (one without new entries) with ``entries`` applied: the entries
        its ledger recorded after it (sequence ``version + 1`` on, without gaps), as another writer stored
        them. It equals what :meth:`replay` of the whole ledger gives, at the cost of the new entries only,
        and counts them as stored. InvalidValue when this position has entries not yet stored, or an entry
        is not its next one or cannot be applied; this position is unchanged either way."""
        if self.new_entries():
            raise InvalidValue(
                "has entries not yet stored: only a stored position is advanced",
                field="position",
                value=f"{self.node_id}/{self.sku}",
            )
        it = _entries(entries)
        copy = self.clone()
        copy._apply_next(it, start=0)
        copy.mark_persisted()
        return copy

    # -- reading ------------------------------------------------------------------------------------------
    def reserved(self, at: datetime) -> int:
        """Units held by reservations live at ``at`` (soft ones past their expiry do not count)."""
        if type(at) is not datetime or at.tzinfo is not UTC:  # a UTC datetime is aware: no need to ask
            check_aware(at, "at")
        summary = self._held_sum
        if summary is None or (summary.soft and not summary.since <= at < summary.until):
            summary = self._held_sum = _Held.of(self.reservations.values(), at)
        return summary.hard + summary.soft - summary.lapsed

    def available(self, at: datetime) -> int:
        """Available-to-promise at ``at``: ``on_hand - safety_stock - reserved(at)``, never below zero."""
        return max(0, self.on_hand - self.safety_stock - self.reserved(at))

    def shortfall(self, at: datetime) -> int:
        """Live reserved units that stock on hand does not cover (after a count found less, or for a
        backorderable SKU): what must be re-sourced or waited for."""
        return max(0, self.reserved(at) - self.on_hand)

    def reservation(self, key: str) -> Reservation | None:
        """The reservation held under ``key`` (live or lapsed but not yet expired), or None."""
        return self.reservations.get(key)

    def incoming(self) -> Incoming:
        """Expected supply as ``(date, units)`` pairs, one per date, sorted by date."""
        if not self.supply:
            return ()
        by_day: dict[date, int] = {}
        for s in self.supply.values():
            by_day[s.expected_on] = by_day.get(s.expected_on, 0) + s.quantity
        return tuple(sorted(by_day.items()))

    def earliest(self, quantity: int, at: datetime) -> date | None:
        """The first day by which ``quantity`` units are promisable here counting incoming supply: the day
        of ``at`` (in its time zone) when they are available now; supply overdue counts from that day; None
        when even all the expected supply is not enough."""
        collect("earliest", lambda: check_quantity(quantity, "quantity"), lambda: check_aware(at, "at"))
        net = self.on_hand - self.safety_stock - self.reserved(at)
        return earliest_date([(net, self.incoming())], quantity, at.date())

    def availability(self, at: datetime) -> Availability:
        """A summary of the position at ``at``."""
        reserved = self.reserved(at)
        return Availability(
            node_id=self.node_id,
            sku=self.sku,
            at=at,
            on_hand=self.on_hand,
            safety_stock=self.safety_stock,
            reserved=reserved,
            available=max(0, self.on_hand - self.safety_stock - reserved),
            shortfall=max(0, reserved - self.on_hand),
            backorderable=self.backorderable,
            incoming=self.incoming(),
        )

    # -- reservations -------------------------------------------------------------------------------------
    def reserve(
        self,
        key: str,
        quantity: int,
        *,
        reference: str,
        at: datetime,
        hard: bool = True,
        expires_at: datetime | None = None,
        reason: str = "",
    ) -> Reservation:
        """Hold ``quantity`` units under ``key`` for ``reference``: hard (for an order) by default, soft
        (for a cart) with ``hard=False`` and an ``expires_at`` after ``at``.

        Idempotent: asking again with the same key, quantity, reference and kind returns the reservation
        held and records nothing (a different ``expires_at`` on the retry is ignored); the same key with
        anything else is a ReservationConflict. A soft reservation that has lapsed frees its key: it is
        expired (EXPIRED) and the key reserved anew. More than :meth:`available` is InsufficientStock
        unless the SKU is backorderable here.
        """
        if not (  # what every order's reservation gives passes at a glance; anything else is checked in full
            hard is True
            and expires_at is None
            and type(quantity) is int
            and 0 < quantity <= MAX_QUANTITY
            and plain_text(key, MAX_KEY)
            and plain_text(reference, MAX_KEY)
            and type(at) is datetime
            and at.tzinfo is UTC
            and type(reason) is str
            and len(reason) <= MAX_REASON
            and reason.isascii()  # other text takes the full check (see text_fault)
            and "\x00" not in reason
        ):
            collect(
                "reservation",
                lambda: check_key(key, "key"),
                lambda: check_quantity(quantity, "quantity"),
                lambda: check_key(reference, "reference"),
                lambda: check_aware(at, "at"),
                lambda: _check_bool(hard, "hard"),
                lambda: _check_expiry(hard, expires_at, at),
                lambda: check_reason(reason),
            )
        kind = ReservationKind.HARD if hard else ReservationKind.SOFT
        held = self.reservations.get(key)
        if held is not None and held.live(at):
            if (held.quantity, held.reference, held.kind) == (quantity, reference, kind):
                return held
            raise ReservationConflict(
                f"{self.node_id}/{self.sku}: key {key!r} holds {held.quantity} for {held.reference!r}"
                f" ({held.kind.value}); asked for {quantity} for {reference!r} ({kind.value})",
                key=key,
            )
        if not self.backorderable:
            available = self.available(at)
            if quantity > available:
                raise InsufficientStock(self.node_id, self.sku, requested=quantity, available=available)
        if held is not None:  # a lapsed soft reservation: it expires now, which frees its key
            self._record(self._expiry(held, at))
        self._record(
            self._entry(
                EntryKind.RESERVED, quantity, at, reason, key=key, reference=reference, expires_at=expires_at
            )
        )
        return self.reservations[key]

    def confirm(self, key: str, *, at: datetime, reason: str = "") -> Reservation:
        """Make the soft reservation ``key`` hard (it no longer expires). Confirming a hard reservation
        returns it and records nothing. NotFound for an unknown key; ReservationConflict when the soft
        reservation has lapsed by ``at``."""
        collect(
            "confirmation",
            lambda: check_key(key, "key"),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
        )
        held = self._held(key)
        if held.kind is ReservationKind.HARD:
            return held
        self._check_live(held, at)
        self._record(
            self._entry(EntryKind.CONFIRMED, held.quantity, at, reason, key=key, reference=held.reference)
        )
        return self.reservations[key]

    def release(self, key: str, quantity: int | None = None, *, at: datetime, reason: str) -> int:
        """Give back ``quantity`` units of reservation ``key`` (all of them by default); returns the units
        released. An unknown (or already released) key releases nothing and records nothing. A soft
        reservation lapsed by ``at`` holds nothing to give back: it is recorded as EXPIRED (which frees its
        key, as :meth:`expire` does) and 0 is returned. The RELEASED entry's ``compensates`` is the
        reservation's RESERVED entry."""
        collect(
            "release",
            lambda: check_key(key, "key"),
            lambda: _check_optional_quantity(quantity, "quantity"),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
        )
        held = self.reservations.get(key)
        if held is None:
            return 0
        expires_at = held.expires_at
        if expires_at is not None and not at < expires_at:  # lapsed: nothing is held any more
            self._record(self._expiry(held, at))
            return 0
        units = held.quantity if quantity is None else quantity
        if units > held.quantity:
            raise InvalidQuantity(
                f"only {held.quantity} units are reserved under {key!r}", field="quantity", value=quantity
            )
        self._record(
            self._entry(
                EntryKind.RELEASED,
                units,
                at,
                reason,
                key=key,
                reference=held.reference,
                compensates=held.sequence,
            )
        )
        return units

    def consume(self, key: str, quantity: int, *, at: datetime, reason: str) -> None:
        """``quantity`` reserved units of ``key`` left the node (shipped): on hand and the reservation both
        drop. NotFound for an unknown key; ReservationConflict for a lapsed soft reservation;
        InvalidQuantity beyond the reservation; InsufficientStock beyond what is on hand."""
        collect(
            "consumption",
            lambda: check_key(key, "key"),
            lambda: check_quantity(quantity, "quantity"),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
        )
        held = self._held(key)
        self._check_live(held, at)
        if quantity > held.quantity:
            raise InvalidQuantity(
                f"only {held.quantity} units are reserved under {key!r}", field="quantity", value=quantity
            )
        if quantity > self.on_hand:
            raise InsufficientStock(self.node_id, self.sku, requested=quantity, available=self.on_hand)
        self._record(self._entry(EntryKind.CONSUMED, quantity, at, reason, key=key, reference=held.reference))

    def expire(self, at: datetime) -> list[str]:
        """Record EXPIRED for every soft reservation lapsed by ``at``; returns their keys, earliest expiry
        first."""
        check_aware(at, "at")
        lapsed = sorted(
            (r for r in self.reservations.values() if r.expires_at is not None and not at < r.expires_at),
            key=lambda r: (r.expires_at, r.key),
        )
        for r in lapsed:
            self._record(self._expiry(r, at))
        return [r.key for r in lapsed]

    # -- stock on hand ------------------------------------------------------------------------------------
    def receive(
        self, quantity: int, *, at: datetime, reason: str = "", supply_ref: str | None = None
    ) -> None:
        """``quantity`` units arrived. With ``supply_ref``, that expected supply shrinks by as much (and is
        gone at zero); a receipt is a fact, so a reference not (or no longer) expected is recorded as
        given, shrinking nothing."""
        collect(
            "receipt",
            lambda: check_quantity(quantity, "quantity"),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
            lambda: supply_ref is None or check_key(supply_ref, "supply_ref"),
        )
        if self.on_hand + quantity > MAX_QUANTITY:  # what every store keeps, and a count may set
            raise InvalidQuantity(
                f"would take the units on hand to {self.on_hand + quantity:,}, beyond the most a position"
                f" holds ({MAX_QUANTITY:,}); {self.on_hand:,} are on hand",
                field="quantity",
                value=quantity,
            )
        self._record(self._entry(EntryKind.RECEIVED, quantity, at, reason, key=supply_ref or ""))

    def adjust(self, on_hand: int, *, at: datetime, reason: str) -> None:
        """A count found ``on_hand`` units: recorded as ADJUSTED by the difference (zero when the count
        confirms the books). A count is a fact, so it is never refused for leaving reservations uncovered;
        :meth:`shortfall` reports what is then short."""
        collect(
            "adjustment",
            lambda: check_quantity(on_hand, "on_hand", allow_zero=True),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
        )
        self._record(self._entry(EntryKind.ADJUSTED, on_hand - self.on_hand, at, reason))

    def set_safety_stock(self, quantity: int, *, at: datetime, reason: str = "") -> None:
        """Keep ``quantity`` units back from promising. Setting the current value records nothing."""
        collect(
            "safety stock",
            lambda: check_quantity(quantity, "quantity", allow_zero=True),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
        )
        if quantity != self.safety_stock:
            self._record(self._entry(EntryKind.SAFETY_STOCK_SET, quantity, at, reason))

    # -- supply -------------------------------------------------------------------------------------------
    def expect(self, supply: Supply, *, at: datetime, reason: str = "") -> None:
        """Expect ``supply`` (a purchase order or transfer). Expecting the same supply again records
        nothing; another supply under an expected reference is refused (cancel it first to change its
        date or quantity)."""
        collect(
            "supply",
            lambda: _check_supply(supply),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
        )
        known = self.supply.get(supply.ref)
        if known is not None:
            if known.same_as(supply):
                return
            raise InvalidValue(
                f"{supply.ref!r} already expects {known.quantity} on {known.expected_on} ({known.kind.value});"
                " cancel it first to change it",
                field="supply",
                value=supply,
                code="supply_conflict",
            )
        self._record(
            self._entry(
                EntryKind.SUPPLY_EXPECTED,
                supply.quantity,
                at,
                reason,
                key=supply.ref,
                expected_on=supply.expected_on,
                supply_kind=supply.kind,
            )
        )

    def cancel_supply(self, ref: str, *, at: datetime, reason: str) -> None:
        """The expected supply ``ref`` will not come (what is left of it). An unknown (or already
        cancelled or received) reference records nothing."""
        collect(
            "supply cancellation",
            lambda: check_key(ref, "ref"),
            lambda: check_aware(at, "at"),
            lambda: check_reason(reason),
        )
        known = self.supply.get(ref)
        if known is not None:
            self._record(
                self._entry(
                    EntryKind.SUPPLY_CANCELLED,
                    known.quantity,
                    at,
                    reason,
                    key=ref,
                    compensates=known.sequence,
                )
            )

    # -- internals ----------------------------------------------------------------------------------------
    def _held(self, key: str) -> Reservation:
        held = self.reservations.get(key)
        if held is None:
            raise NotFound(f"{self.node_id}/{self.sku} holds no reservation {key!r}")
        return held

    def _check_live(self, held: Reservation, at: datetime) -> None:
        if not held.live(at):
            assert held.expires_at is not None
            raise ReservationConflict(
                f"{self.node_id}/{self.sku}: the soft reservation {held.key!r} expired at"
                f" {held.expires_at.isoformat()}",
                key=held.key,
            )

    def _entry(
        self,
        kind: EntryKind,
        quantity: int,
        at: datetime,
        reason: str,
        *,
        key: str = "",
        reference: str = "",
        compensates: int | None = None,
        expires_at: datetime | None = None,
        expected_on: date | None = None,
        supply_kind: SupplyKind | None = None,
    ) -> LedgerEntry:
        return LedgerEntry(
            self.node_id,
            self.sku,
            self.version + 1,
            kind,
            quantity,
            at,
            reason,
            key=key,
            compensates=compensates,
            reference=reference,
            expires_at=expires_at,
            expected_on=expected_on,
            supply_kind=supply_kind,
        )

    def _expiry(self, held: Reservation, at: datetime) -> LedgerEntry:
        return self._entry(
            EntryKind.EXPIRED,
            held.quantity,
            at,
            "",
            key=held.key,
            reference=held.reference,
            compensates=held.sequence,
        )

    def _record(self, entry: LedgerEntry) -> None:
        """Apply an entry (already checked, or read from the ledger) and keep it as new."""
        summary, key = self._held_sum, entry.key
        if summary is None or key is None or entry.kind not in RESERVATION_KINDS:
            _APPLY[entry.kind](self, entry)  # reserved units unchanged, or not worked out yet
        else:
            before = self.reservations.get(key)
            self._held_sum = None  # until the entry is applied: it may refuse
            _APPLY[entry.kind](self, entry)
            self._held_sum = _moved(summary, before, self.reservations.get(key))
        self.version = entry.sequence
        self._recorded.append(entry)


class _Held(NamedTuple):
    """What a position's reservations hold: ``hard`` units, ``soft`` units, and of those ``lapsed`` the
    units of soft reservations whose expiry is at or before ``since``. No soft reservation expires after
    ``since`` and before ``until``, so at any moment from ``since`` up to ``until`` the live units are
    ``hard + soft - lapsed``. Reading the units at a moment outside that span works out a new one from
    every reservation; each change of a reservation moves it at the cost of that reservation alone. Time
    moves on, so a position is read whole once each time it passes the next soft expiry, however many
    times it is read in between."""

    hard: int
    soft: int
    lapsed: int
    since: datetime
    until: datetime

    @staticmethod
    def of(reservations: Iterable[Reservation], at: datetime) -> _Held:
        hard = soft = lapsed = 0
        until = _NEVER
        for r in reservations:
            expires_at = r.expires_at
            if expires_at is None:
                hard += r.quantity
            else:
                soft += r.quantity
                if expires_at <= at:
                    lapsed += r.quantity
                elif expires_at < until:
                    until = expires_at
        return _Held(hard, soft, lapsed, at, until)


#: later than any expiry: the end of the span when no soft reservation expires after its start
_NEVER = datetime.max.replace(tzinfo=UTC)


def _moved(summary: _Held, before: Reservation | None, after: Reservation | None) -> _Held:
    """The summary once a reservation went from ``before`` to ``after`` (None: not held)."""
    hard, soft, lapsed, since, until = summary
    for r, sign in ((before, -1), (after, 1)):
        if r is None:
            continue
        expires_at = r.expires_at
        if expires_at is None:
            hard += sign * r.quantity
            continue
        soft += sign * r.quantity
        if expires_at <= since:
            lapsed += sign * r.quantity
        elif expires_at < until:  # only an added one: none held expires in between
            until = expires_at
    return _Held(hard, soft, lapsed, since, until)


def _entries(entries: Iterable[LedgerEntry]) -> Iterator[LedgerEntry]:
    """An iterator over ``entries``; InvalidValue naming ``entries`` when it is not iterable."""
    try:
        return iter(entries)
    except TypeError:
        raise InvalidValue(
            f"must be an iterable of ledger entries, not {type(entries).__name__}",
            field="entries",
            value=entries,
        ) from None


def _check_supply(value: object) -> Supply:
    if not isinstance(value, Supply):
        raise InvalidValue("must be a Supply", field="supply", value=value)
    return value


# -- how each entry changes the position (used live and by replay) -------------------------------------------
def _refuse(entry: LedgerEntry, why: str, field: str = "key") -> InvalidValue:
    return InvalidValue(f"{entry.kind.value} {why}", field=field, value=getattr(entry, field))


def _apply_opened(p: StockPosition, e: LedgerEntry) -> None:
    if p.version != 0:
        raise _refuse(e, "comes only first", "kind")
    p.on_hand = e.quantity
    p.backorderable = e.backorderable


def _apply_received(p: StockPosition, e: LedgerEntry) -> None:
    p.on_hand += e.quantity
    expected = p.supply.get(e.key) if e.key else None
    if expected is not None:
        if expected.quantity > e.quantity:
            p.supply = p.supply.with_(e.key, attrs.evolve(expected, quantity=expected.quantity - e.quantity))
        else:
            p.supply = p.supply.without(e.key)


def _apply_adjusted(p: StockPosition, e: LedgerEntry) -> None:
    if p.on_hand + e.quantity < 0:
        raise _refuse(e, f"would leave {p.on_hand + e.quantity} on hand", "quantity")
    p.on_hand += e.quantity


def _apply_safety_stock(p: StockPosition, e: LedgerEntry) -> None:
    p.safety_stock = e.quantity


def _apply_reserved(p: StockPosition, e: LedgerEntry) -> None:
    if e.key in p.reservations:
        raise _refuse(e, "of a key already held")
    kind = ReservationKind.HARD if e.expires_at is None else ReservationKind.SOFT
    p.reservations = p.reservations.with_(
        e.key, Reservation(e.key, e.reference, e.quantity, kind, e.at, e.expires_at, e.sequence)
    )


def _reservation_of(p: StockPosition, e: LedgerEntry) -> Reservation:
    held = p.reservations.get(e.key)
    if held is None:
        raise _refuse(e, "of a key not held")
    return held


def _apply_confirmed(p: StockPosition, e: LedgerEntry) -> None:
    held = _reservation_of(p, e)
    if held.kind is not ReservationKind.SOFT:
        raise _refuse(e, "of a reservation that is not soft")
    p.reservations = p.reservations.with_(
        e.key, attrs.evolve(held, kind=ReservationKind.HARD, expires_at=None)
    )


def _apply_drawn(p: StockPosition, e: LedgerEntry) -> None:
    """RELEASED, EXPIRED, CONSUMED: the reservation shrinks (and is gone at zero)."""
    held = _reservation_of(p, e)
    if e.quantity > held.quantity:
        raise _refuse(e, f"of more than the {held.quantity} units held", "quantity")
    if e.compensates is not None and e.compensates != held.sequence:
        raise _refuse(e, f"must compensate entry {held.sequence}", "compensates")
    if e.kind is EntryKind.CONSUMED:
        if e.quantity > p.on_hand:
            raise _refuse(e, f"of more than the {p.on_hand} units on hand", "quantity")
        p.on_hand -= e.quantity
    if e.quantity < held.quantity:
        p.reservations = p.reservations.with_(e.key, attrs.evolve(held, quantity=held.quantity - e.quantity))
    else:
        p.reservations = p.reservations.without(e.key)


def _apply_supply_expected(p: StockPosition, e: LedgerEntry) -> None:
    if e.key in p.supply:
        raise _refuse(e, "of a reference already expected")
    assert e.expected_on is not None and e.supply_kind is not None  # checked by LedgerEntry
    p.supply = p.supply.with_(e.key, Supply(e.key, e.quantity, e.expected_on, e.supply_kind, e.sequence))


def _apply_supply_cancelled(p: StockPosition, e: LedgerEntry) -> None:
    expected = p.supply.get(e.key)
    if expected is None:
        raise _refuse(e, "of a reference not expected")
    if e.compensates != expected.sequence:
        raise _refuse(e, f"must compensate entry {expected.sequence}", "compensates")
    p.supply = p.supply.without(e.key)


_APPLY: dict[EntryKind, Callable[[StockPosition, LedgerEntry], None]] = {
    EntryKind.OPENED: _apply_opened,
    EntryKind.RECEIVED: _apply_received,
    EntryKind.ADJUSTED: _apply_adjusted,
    EntryKind.SAFETY_STOCK_SET: _apply_safety_stock,
    EntryKind.RESERVED: _apply_reserved,
    EntryKind.CONFIRMED: _apply_confirmed,
    EntryKind.RELEASED: _apply_drawn,
    EntryKind.CONSUMED: _apply_drawn,
    EntryKind.EXPIRED: _apply_drawn,
    EntryKind.SUPPLY_EXPECTED: _apply_supply_expected,
    EntryKind.SUPPLY_CANCELLED: _apply_supply_cancelled,
}
