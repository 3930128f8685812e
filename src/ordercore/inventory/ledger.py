"""The values of the stock ledger: reservations, expected supply and ledger entries.

A stock position (:mod:`ordercore.inventory.stock`) changes only by recording :class:`LedgerEntry` values.
Entries are never edited or removed: a reservation given back is a RELEASED entry that points at the
RESERVED entry it undoes (``compensates``), a cancelled purchase order a SUPPLY_CANCELLED entry pointing at
its SUPPLY_EXPECTED entry.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, date, datetime

import attrs

from ordercore.errors import InvalidQuantity, InvalidValue, Problem, ValidationFailed
from ordercore.inventory.nodes import MAX_NODE_ID, check_node_id
from ordercore.values import MAX_QUANTITY, Sku, check_aware, check_quantity, check_text_fault, plain_text

__all__ = [
    "RESERVATION_KINDS",
    "EntryKind",
    "LedgerEntry",
    "Reservation",
    "ReservationKind",
    "Supply",
    "SupplyKind",
    "check_key",
    "check_reason",
]

MAX_KEY = 200
MAX_REASON = 1000


def check_key(value: object, field: str = "key") -> str:
    """Return ``value`` if it is a valid reservation key, reference or supply reference: a non-empty string
    of at most 200 characters without surrounding spaces."""
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > MAX_KEY:
        raise InvalidValue(
            f"must be a non-empty string of at most {MAX_KEY} characters without surrounding spaces",
            field=field,
            value=value,
        )
    check_text_fault(value, field)
    return value


def check_reason(value: object, field: str = "reason") -> str:
    """Return ``value`` if it is a reason: a string of at most 1000 characters (empty is allowed)."""
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise InvalidValue(f"must be a string of at most {MAX_REASON} characters", field=field, value=value)
    check_text_fault(value, field)
    return value


def collect(subject: str, *checks: Callable[[], object]) -> None:
    """Run every check; raise the one error if one failed, or every problem at once in ValidationFailed."""
    errors: list[InvalidValue] = []
    for check in checks:
        try:
            check()
        except InvalidValue as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ValidationFailed([e.problem() for e in errors], subject=subject)


def _problems(*checks: Callable[[], object]) -> list[Problem]:
    problems: list[Problem] = []
    for check in checks:
        try:
            check()
        except InvalidValue as e:
            problems.append(e.problem())
    return problems


def _is_date(value: object) -> bool:
    return isinstance(value, date) and not isinstance(value, datetime)


class ReservationKind(enum.Enum):
    SOFT = "soft"
    """Held for a while (a cart, a quote): lapses at ``expires_at`` unless confirmed."""
    HARD = "hard"
    """Held for an order until released or consumed."""


@attrs.frozen
class Reservation:
    """``quantity`` units held under ``key`` for ``reference`` (an order, a cart).

    A soft reservation is live until ``expires_at``; a hard one has no expiry. ``sequence`` is the ledger
    entry (RESERVED) that made it, for the entries that later release it; it is bookkeeping and not part
    of equality.
    """

    key: str
    reference: str
    quantity: int
    kind: ReservationKind
    created_at: datetime
    expires_at: datetime | None = None
    sequence: int = attrs.field(default=0, eq=False)

    def __attrs_post_init__(self) -> None:
        if (  # an order's hard reservation, as the ledger makes it, passes at a glance
            self.kind is ReservationKind.HARD
            and self.expires_at is None
            and type(self.quantity) is int
            and 0 < self.quantity <= MAX_QUANTITY
            and type(self.sequence) is int
            and self.sequence >= 0
            and type(self.created_at) is datetime
            and self.created_at.tzinfo is UTC
            and plain_text(self.key, MAX_KEY)
            and plain_text(self.reference, MAX_KEY)
        ):
            return
        problems = _problems(
            lambda: check_key(self.key, "key"),
            lambda: check_key(self.reference, "reference"),
            lambda: check_quantity(self.quantity, "quantity"),
            lambda: check_aware(self.created_at, "created_at"),
            lambda: check_quantity(self.sequence, "sequence", allow_zero=True),
        )
        if self.kind is ReservationKind.HARD:
            if self.expires_at is not None:
                problems.append(
                    Problem(
                        "expires_at", InvalidValue.code, "a hard reservation never expires", self.expires_at
                    )
                )
        elif self.kind is ReservationKind.SOFT:
            try:
                check_aware(self.expires_at, "expires_at")
            except InvalidValue as e:
                problems.append(e.problem())
            else:
                assert self.expires_at is not None
                created = self.created_at
                aware = isinstance(created, datetime) and created.utcoffset() is not None
                if aware and not self.expires_at > created:
                    problems.append(
                        Problem("expires_at", InvalidValue.code, "must be after created_at", self.expires_at)
                    )
        else:
            problems.append(Problem("kind", InvalidValue.code, "must be a ReservationKind", self.kind))
        if problems:
            raise ValidationFailed(problems, subject=f"reservation {self.key!r}")

    @property
    def hard(self) -> bool:
        return self.kind is ReservationKind.HARD

    def live(self, at: datetime) -> bool:
        """Whether the reservation holds stock at ``at``: a hard one always, a soft one before it expires."""
        check_aware(at, "at")
        return self.expires_at is None or at < self.expires_at


class SupplyKind(enum.Enum):
    PURCHASE_ORDER = "purchase_order"
    TRANSFER = "transfer"


@attrs.frozen
class Supply:
    """``quantity`` units expected on ``expected_on`` under ``ref`` (a purchase order, a transfer).

    ``sequence`` is the ledger entry (SUPPLY_EXPECTED) that announced it; bookkeeping, not part of
    equality.
    """

    ref: str
    quantity: int
    expected_on: date
    kind: SupplyKind = SupplyKind.PURCHASE_ORDER
    sequence: int = attrs.field(default=0, eq=False)

    def __attrs_post_init__(self) -> None:
        problems = _problems(
            lambda: check_key(self.ref, "ref"),
            lambda: check_quantity(self.quantity, "quantity"),
            lambda: check_quantity(self.sequence, "sequence", allow_zero=True),
        )
        if not _is_date(self.expected_on):
            problems.append(Problem("expected_on", InvalidValue.code, "must be a date", self.expected_on))
        if not isinstance(self.kind, SupplyKind):
            problems.append(Problem("kind", InvalidValue.code, "must be a SupplyKind", self.kind))
        if problems:
            raise ValidationFailed(problems, subject=f"supply {self.ref!r}")

    def same_as(self, other: Supply) -> bool:
        """Whether ``other`` announces the same supply (reference, units, date and kind)."""
        return (self.ref, self.quantity, self.expected_on, self.kind) == (
            other.ref,
            other.quantity,
            other.expected_on,
            other.kind,
        )


class EntryKind(enum.Enum):
    """What a ledger entry records, and what its ``quantity`` means."""

    OPENED = "opened"
    """The position starts: ``quantity`` units on hand, ``backorderable`` set."""
    RECEIVED = "received"
    """``quantity`` units arrived; ``key`` is the supply they fulfil, if any."""
    ADJUSTED = "adjusted"
    """A count: on hand moved by ``quantity`` (signed: counted minus recorded)."""
    SAFETY_STOCK_SET = "safety_stock_set"
    """Safety stock is now ``quantity``."""
    RESERVED = "reserved"
    """``quantity`` units held under ``key`` for ``reference``; soft when ``expires_at`` is set."""
    CONFIRMED = "confirmed"
    """The soft reservation ``key`` (of ``quantity`` units) became hard."""
    RELEASED = "released"
    """``quantity`` units of reservation ``key`` given back; ``compensates`` is its RESERVED entry."""
    CONSUMED = "consumed"
    """``quantity`` reserved units of ``key`` left the building (shipped): on hand drops too."""
    EXPIRED = "expired"
    """The soft reservation ``key`` lapsed; ``compensates`` is its RESERVED entry."""
    SUPPLY_EXPECTED = "supply_expected"
    """``quantity`` units expected on ``expected_on`` under ``key`` (a purchase order, a transfer)."""
    SUPPLY_CANCELLED = "supply_cancelled"
    """The expected supply ``key`` (``quantity`` units left) will not come; ``compensates`` is its
    SUPPLY_EXPECTED entry."""


#: the entries that change a reservation: each names it by its ``key`` (always set for these kinds)
RESERVATION_KINDS = frozenset(
    {EntryKind.RESERVED, EntryKind.CONFIRMED, EntryKind.RELEASED, EntryKind.CONSUMED, EntryKind.EXPIRED}
)

# what each kind requires: (lowest quantity or None for any, key required, compensates required)
_RULES: dict[EntryKind, tuple[int | None, bool, bool]] = {
    EntryKind.OPENED: (0, False, False),
    EntryKind.RECEIVED: (1, False, False),
    EntryKind.ADJUSTED: (None, False, False),
    EntryKind.SAFETY_STOCK_SET: (0, False, False),
    EntryKind.RESERVED: (1, True, False),
    EntryKind.CONFIRMED: (1, True, False),
    EntryKind.RELEASED: (1, True, True),
    EntryKind.CONSUMED: (1, True, False),
    EntryKind.EXPIRED: (1, True, True),
    EntryKind.SUPPLY_EXPECTED: (1, True, False),
    EntryKind.SUPPLY_CANCELLED: (1, True, True),
}
_RESERVATION_KINDS = frozenset(
    {EntryKind.RESERVED, EntryKind.CONFIRMED, EntryKind.RELEASED, EntryKind.CONSUMED, EntryKind.EXPIRED}
)


@attrs.frozen
class LedgerEntry:
    """One change of the stock of ``sku`` at ``node_id``: entry number ``sequence`` (1, 2, 3... per
    position), of ``kind``, at ``at``, for ``reason``. See :class:`EntryKind` for what ``quantity`` and
    ``key`` mean for each kind. ``reference`` is the reservation's order or cart on reservation entries;
    ``expires_at`` the end of a soft reservation; ``expected_on`` and ``supply_kind`` describe expected
    supply; ``backorderable`` is set by OPENED.
    """

    node_id: str
    sku: Sku
    sequence: int
    kind: EntryKind
    quantity: int
    at: datetime
    reason: str = ""
    key: str = ""
    compensates: int | None = None
    reference: str = ""
    expires_at: datetime | None = None
    expected_on: date | None = None
    supply_kind: SupplyKind | None = None
    backorderable: bool = False

    def __attrs_post_init__(self) -> None:
        if (  # an order's hard reservation, as a position records it, passes at a glance
            self.kind is EntryKind.RESERVED
            and self.expires_at is None
            and self.compensates is None
            and self.expected_on is None
            and self.supply_kind is None
            and self.backorderable is False
            and type(self.quantity) is int
            and 0 < self.quantity <= MAX_QUANTITY
            and type(self.sequence) is int
            and self.sequence > 0
            and type(self.at) is datetime
            and self.at.tzinfo is UTC
            and type(self.sku) is Sku
            and type(self.reason) is str
            and len(self.reason) <= MAX_REASON
            and self.reason.isascii()  # other text takes the full check (see text_fault)
            and "\x00" not in self.reason
            and plain_text(self.key, MAX_KEY)
            and plain_text(self.reference, MAX_KEY)
            and plain_text(self.node_id, MAX_NODE_ID)
        ):
            return
        problems = _problems(
            lambda: check_node_id(self.node_id),
            lambda: check_quantity(self.sequence, "sequence"),
            lambda: check_aware(self.at, "at"),
            lambda: check_reason(self.reason),
        )
        if not isinstance(self.sku, Sku):
            problems.append(Problem("sku", InvalidValue.code, "must be a Sku", self.sku))
        if not isinstance(self.backorderable, bool):
            problems.append(
                Problem("backorderable", InvalidValue.code, "must be true or false", self.backorderable)
            )
        if not isinstance(self.kind, EntryKind):
            problems.append(Problem("kind", InvalidValue.code, "must be an EntryKind", self.kind))
            raise ValidationFailed(problems, subject="ledger entry")
        least, needs_key, needs_compensates = _RULES[self.kind]
        kind = self.kind.value
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            problems.append(
                Problem("quantity", InvalidQuantity.code, "must be a whole number", self.quantity)
            )
        elif least is not None and self.quantity < least:
            problems.append(
                Problem(
                    "quantity", InvalidQuantity.code, f"must be at least {least} for {kind}", self.quantity
                )
            )
        if needs_key or self.key != "":
            try:
                check_key(self.key)
            except InvalidValue as e:
                problems.append(e.problem())
        if needs_compensates:
            c = self.compensates
            if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c < _int_or(self.sequence, 2**63):
                problems.append(
                    Problem("compensates", InvalidValue.code, f"must name an earlier entry for {kind}", c)
                )
        elif self.compensates is not None:
            problems.append(
                Problem("compensates", InvalidValue.code, f"must be None for {kind}", self.compensates)
            )
        if self.kind is EntryKind.RESERVED or (self.kind in _RESERVATION_KINDS and self.reference != ""):
            try:
                check_key(self.reference, "reference")
            except InvalidValue as e:
                problems.append(e.problem())
        elif self.reference != "":
            problems.append(
                Problem("reference", InvalidValue.code, f"must be empty for {kind}", self.reference)
            )
        if self.expires_at is not None:
            if self.kind is not EntryKind.RESERVED:
                problems.append(
                    Problem("expires_at", InvalidValue.code, f"must be None for {kind}", self.expires_at)
                )
            else:
                try:
                    check_aware(self.expires_at, "expires_at")
                except InvalidValue as e:
                    problems.append(e.problem())
        supply = self.kind is EntryKind.SUPPLY_EXPECTED
        if supply != (self.expected_on is not None) or (supply and not _is_date(self.expected_on)):
            what = "must be a date" if supply else "must be None"
            problems.append(Problem("expected_on", InvalidValue.code, f"{what} for {kind}", self.expected_on))
        if supply != (self.supply_kind is not None) or (
            supply and not isinstance(self.supply_kind, SupplyKind)
        ):
            what = "must be a SupplyKind" if supply else "must be None"
            problems.append(Problem("supply_kind", InvalidValue.code, f"{what} for {kind}", self.supply_kind))
        if self.backorderable and self.kind is not EntryKind.OPENED:
            problems.append(Problem("backorderable", InvalidValue.code, f"must be false for {kind}", True))
        if problems:
            raise ValidationFailed(problems, subject=f"ledger entry {self.sequence!r} ({kind})")

    def describe(self) -> str:
        """A human-readable line: when, which entry, what and why."""
        parts = [f"{self.at.isoformat(timespec='seconds')}  #{self.sequence:<4} {self.kind.value:<16}"]
        parts.append(f"{self.quantity:+d}" if self.kind is EntryKind.ADJUSTED else str(self.quantity))
        if self.key:
            parts.append(f"key={self.key}")
        if self.reference:
            parts.append(f"for {self.reference}")
        if self.expires_at is not None:
            parts.append(f"until {self.expires_at.isoformat(timespec='seconds')}")
        if self.expected_on is not None:
            parts.append(f"on {self.expected_on.isoformat()}")
        if self.compensates is not None:
            parts.append(f"undoes #{self.compensates}")
        if self.reason:
            parts.append(f"- {self.reason}")
        return " ".join(parts)


def _int_or(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
