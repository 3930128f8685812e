"""Order lines and their quantity buckets, discounts, charges and tax lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, NoReturn, TypeVar

import attrs

from ordercore.errors import InvalidQuantity, InvalidValue, QuantityExceeded
from ordercore.money import Money, sum_money
from ordercore.values import LineId, Sku, check_quantity, check_text_fault, text_fault

__all__ = [
    "BUCKETS",
    "NO_ATTRIBUTES",
    "Adjustment",
    "FrozenAttributes",
    "LineQuantities",
    "NewLine",
    "OrderLine",
    "TaxLine",
]

#: The exclusive stages a unit of a line can be in; they always add up to ``ordered``.
BUCKETS = ("open", "backordered", "allocated", "released", "shipped", "delivered", "returned", "cancelled")
_INDEX = {name: i for i, name in enumerate(BUCKETS)}

T = TypeVar("T")


def _text(max_len: int, *, required: bool = False) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str):
            raise InvalidValue(
                f"must be a string, not {type(value).__name__}", field=attribute.name, value=value
            )
        if len(value) > max_len:
            raise InvalidValue(f"must be at most {max_len} characters", field=attribute.name, value=value)
        if required and not value.strip():
            raise InvalidValue("is required", field=attribute.name, value=value)
        check_text_fault(value, attribute.name)

    return check


# attrs converters: any iterable (not text) to a tuple, so that values stay immutable and hashable; one per
# field, so that a refusal names it. Elements are checked where nothing later does: the lines of an order
# are checked by Order.create (``lines[0]: must be a NewLine``), its adjustments and tax lines are not.
def _items(value: object, field: str) -> tuple[Any, ...]:
    if type(value) is tuple:
        return value
    if type(value) is list:  # the common cases first: no ABC checks
        return tuple(value)
    if isinstance(value, str | bytes | bytearray | Mapping) or not isinstance(value, Iterable):
        raise InvalidValue(f"must be a sequence, not {type(value).__name__}", field=field, value=value)
    return tuple(value)


def _of_type(value: Iterable[T], kind: type[T], field: str, what: str) -> tuple[T, ...]:
    """``value`` as a tuple of ``kind`` (``what`` in the refusal naming ``field``)."""
    items = _items(value, field)
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise InvalidValue(
                f"must be {what}, not {type(item).__name__}", field=f"{field}[{i}]", value=item
            )
    return items


def new_lines(value: Iterable[NewLine]) -> tuple[NewLine, ...]:
    """An order's new lines (each checked by Order.create, with its position)."""
    return _items(value, "lines")


class FrozenAttributes(dict[str, str]):
    """Free attributes (strings to strings) that cannot be changed: those of a line and of an order's
    creation event. Lines and events are immutable values that every copy of an order shares (and whose
    text a store keeps), so a change made through one copy would reach them all, and the store; here it
    raises ``TypeError`` instead. A ``dict`` in every other way (equality, JSON, ``isinstance``); ``dict(a)``
    or ``a | {...}`` make a changed copy, and copying one gives it back (it cannot change)."""

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("these attributes cannot be changed: make a changed copy, dict(attributes) | {...}")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse

    def __ior__(self, other: object) -> NoReturn:  # type: ignore[misc]
        self._refuse()

    def __reduce__(self) -> tuple[type[FrozenAttributes], tuple[dict[str, str]]]:
        return (FrozenAttributes, (dict(self),))

    def __copy__(self) -> FrozenAttributes:
        return self

    def __deepcopy__(self, memo: object) -> FrozenAttributes:
        return self


#: the attributes of a line that has none
NO_ATTRIBUTES = FrozenAttributes()


def frozen_attributes(value: object, field: str = "attributes") -> FrozenAttributes:
    """``value`` as :class:`FrozenAttributes`: a mapping of strings to strings (InvalidValue naming the
    entry otherwise), given back as it is when it is one already."""
    if type(value) is FrozenAttributes:
        return value
    if not isinstance(value, Mapping):
        raise InvalidValue("must be a mapping of strings to strings", field=field, value=value)
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidValue("must map strings to strings", field=f"{field}[{k!r}]", value=v)
        fault = text_fault(k) or text_fault(v)
        if fault is not None:
            raise InvalidValue(fault, field=f"{field}[{k!r}]", value=v)
    return FrozenAttributes(value) if value else NO_ATTRIBUTES


@attrs.frozen
class Adjustment:
    """A discount or a charge: a non-negative amount with a code (``SUMMER10``, ``shipping-express``)."""

    code: str = attrs.field(validator=_text(64, required=True))
    amount: Money
    description: str = attrs.field(default="", validator=_text(200))

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.amount, Money):
            raise InvalidValue("must be Money", field="amount", value=self.amount)
        if self.amount.is_negative:
            raise InvalidValue("must not be negative", field="amount", value=self.amount)


@attrs.frozen
class TaxLine:
    """A tax on a line or a charge, as computed by the channel or the tax port: ``VAT 19% = 3.80 EUR``."""

    code: str = attrs.field(validator=_text(64, required=True))
    rate: Decimal
    amount: Money

    def __attrs_post_init__(self) -> None:
        if isinstance(self.rate, bool) or not isinstance(self.rate, Decimal) or not self.rate.is_finite():
            raise InvalidValue("must be a finite Decimal", field="rate", value=self.rate)
        if self.rate < 0:
            raise InvalidValue("must not be negative", field="rate", value=self.rate)
        if not isinstance(self.amount, Money):
            raise InvalidValue("must be Money", field="amount", value=self.amount)
        if self.amount.is_negative:
            raise InvalidValue("must not be negative", field="amount", value=self.amount)


def adjustments(value: Iterable[Adjustment]) -> tuple[Adjustment, ...]:
    """Discounts (of a line or an order)."""
    return _of_type(value, Adjustment, "discounts", "an Adjustment")


def charges(value: Iterable[Adjustment]) -> tuple[Adjustment, ...]:
    """An order's shipping charges."""
    return _of_type(value, Adjustment, "shipping_charges", "an Adjustment")


def tax_lines(value: Iterable[TaxLine]) -> tuple[TaxLine, ...]:
    """A line's taxes."""
    return _of_type(value, TaxLine, "taxes", "a TaxLine")


def shipping_taxes(value: Iterable[TaxLine]) -> tuple[TaxLine, ...]:
    """An order's taxes on shipping."""
    return _of_type(value, TaxLine, "shipping_taxes", "a TaxLine")


class _Quantities(NamedTuple):
    ordered: int
    open: int
    backordered: int = 0
    allocated: int = 0
    released: int = 0
    shipped: int = 0
    delivered: int = 0
    returned: int = 0
    cancelled: int = 0


class LineQuantities(_Quantities):
    """How many units of a line are in each stage. Every unit is in exactly one bucket, so the buckets
    always add up to ``ordered``; no bucket is ever negative.

    An immutable named tuple rather than an attrs class: it is rebuilt on every quantity change of every
    line, and a tuple is several times cheaper to build; it is checked here like any other value.
    """

    __slots__ = ()

    def __new__(
        cls,
        ordered: int,
        open: int,
        backordered: int = 0,
        allocated: int = 0,
        released: int = 0,
        shipped: int = 0,
        delivered: int = 0,
        returned: int = 0,
        cancelled: int = 0,
    ) -> LineQuantities:
        values = (open, backordered, allocated, released, shipped, delivered, returned, cancelled)
        if not (
            type(ordered) is int
            and {type(v) for v in values} == {int}
            and min(values) >= 0
            and sum(values) == ordered
        ):
            # the precise error is worked out only when something is wrong
            for name, value in zip(BUCKETS, values, strict=True):
                check_quantity(value, name, allow_zero=True)
            check_quantity(ordered, "ordered", allow_zero=True)
            total = sum(values)
            raise InvalidQuantity(
                f"buckets add up to {total}, not to the {ordered} ordered", field="ordered", value=total
            )
        return tuple.__new__(cls, (ordered, *values))

    def buckets(self) -> tuple[int, ...]:
        """The bucket counts in :data:`BUCKETS` order."""
        return self[1:]

    @classmethod
    def new(cls, ordered: int) -> LineQuantities:
        return cls(ordered=ordered, open=ordered)

    @property
    def live(self) -> int:
        """Units not cancelled."""
        return self.ordered - self.cancelled

    def move(
        self, sources: tuple[str, ...], target: str, quantity: int, *, field: str = "quantity"
    ) -> LineQuantities:
        """Move ``quantity`` units into ``target``, drawing from ``sources`` in order."""
        return self.move_by_index(tuple(_INDEX[s] for s in sources), _INDEX[target], quantity, field=field)

    def move_by_index(
        self, sources: tuple[int, ...], target: int, quantity: int, *, field: str = "quantity"
    ) -> LineQuantities:
        """:meth:`move` with buckets given by their position in :data:`BUCKETS` (the order's hot path)."""
        if type(quantity) is not int or quantity < 0:
            check_quantity(quantity, field, allow_zero=True)
        values = list(self[1:])
        available = 0
        for i in sources:
            available += values[i]
        if quantity > available:
            names = " or ".join(BUCKETS[i] for i in sources)
            raise QuantityExceeded(
                f"asks for {quantity} but only {available} are {names}", field=field, value=quantity
            )
        left = quantity
        for i in sources:
            take = left if left < values[i] else values[i]
            values[i] -= take
            left -= take
        values[target] += quantity
        # units moved between buckets, no more than were there: the invariant holds by construction
        return tuple.__new__(LineQuantities, (self.ordered, *values))

    def take_all(self, sources: tuple[int, ...], target: int) -> tuple[LineQuantities, int]:
        """Every unit of ``sources`` (positions in :data:`BUCKETS`) moved to ``target``, and how many."""
        values = list(self[1:])
        n = 0
        for i in sources:
            n += values[i]
            values[i] = 0
        values[target] += n
        return tuple.__new__(LineQuantities, (self.ordered, *values)), n

    def resize(self, ordered: int, *, field: str = "quantity") -> LineQuantities:
        """Change the ordered quantity: growth is open; shrinking takes open, then backordered, then
        allocated units (released, shipped and later units cannot be un-ordered)."""
        check_quantity(ordered, field)
        delta = ordered - self.ordered
        if delta >= 0:
            return LineQuantities(ordered, self.open + delta, *self.buckets()[1:])
        values = {name: getattr(self, name) for name in BUCKETS}
        left = -delta
        for s in ("open", "backordered", "allocated"):
            take = min(left, values[s])
            values[s] -= take
            left -= take
        if left:
            floor = self.ordered - self.open - self.backordered - self.allocated
            raise QuantityExceeded(
                f"cannot go below {max(floor, 1)}: the rest is released, shipped, delivered, returned or cancelled",
                field=field,
                value=ordered,
            )
        result = LineQuantities(ordered=ordered, **values)
        if result.live == 0:
            raise InvalidQuantity(
                "would leave no live units; cancel the line instead", field=field, value=ordered
            )
        return result

    @classmethod
    def total(cls, items: Iterable[LineQuantities]) -> LineQuantities:
        """The buckets summed over ``items``."""
        sums = list(map(sum, zip(*items, strict=True)))
        if not sums:
            return cls.new(0)
        return _trusted(sums[0], sums[1:])  # sums of valid quantities are valid


def _trusted(ordered: int, values: Sequence[int]) -> LineQuantities:
    """Build quantities known to be valid without checking them again (see the callers)."""
    return tuple.__new__(LineQuantities, (ordered, *values))


@attrs.frozen
class NewLine:
    """A line as a channel sends it. ``line_id`` defaults to the line's position (``"1"``, ``"2"``...)."""

    sku: Sku
    quantity: int
    unit_price: Money
    line_id: LineId | None = None
    discounts: tuple[Adjustment, ...] = attrs.field(default=(), converter=adjustments)
    taxes: tuple[TaxLine, ...] = attrs.field(default=(), converter=tax_lines)
    description: str = attrs.field(default="", validator=_text(500))
    uom: str = attrs.field(default="EA", validator=_text(16, required=True))
    attributes: dict[str, str] = attrs.field(factory=dict, converter=frozen_attributes, hash=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.sku, Sku):
            raise InvalidValue("must be a Sku", field="sku", value=self.sku)
        check_quantity(self.quantity, "quantity")
        if not isinstance(self.unit_price, Money):
            raise InvalidValue("must be Money", field="unit_price", value=self.unit_price)
        if self.line_id is not None and not isinstance(self.line_id, LineId):
            raise InvalidValue("must be a LineId", field="line_id", value=self.line_id)


class _LineFields(NamedTuple):
    id: LineId
    sku: Sku
    unit_price: Money
    qty: LineQuantities
    discounts: tuple[Adjustment, ...] = ()
    taxes: tuple[TaxLine, ...] = ()
    description: str = ""
    uom: str = "EA"
    attributes: dict[str, str] = NO_ATTRIBUTES  # a FrozenAttributes: lines are shared by the order's copies


class OrderLine(_LineFields):
    """A line of an order: what was ordered, at what price, and where each unit is now.

    An immutable named tuple, like :class:`LineQuantities` and for the same reason: a line is rebuilt
    whenever units of it move. Lines are made by :meth:`from_new` (from a validated :class:`NewLine`).
    """

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self[:8])  # the free attributes are a dict and take no part

    def with_qty(self, qty: LineQuantities) -> OrderLine:
        """The same line with other quantities."""
        return tuple.__new__(OrderLine, (*self[:3], qty, *self[4:]))

    def with_amounts(
        self, qty: LineQuantities, discounts: tuple[Adjustment, ...], taxes: tuple[TaxLine, ...]
    ) -> OrderLine:
        """The same line with other quantities, discounts and taxes (after a quantity change)."""
        return tuple.__new__(OrderLine, (*self[:3], qty, discounts, taxes, *self[6:]))

    @classmethod
    def from_new(cls, new: NewLine, line_id: LineId) -> OrderLine:
        return cls(
            id=line_id,
            sku=new.sku,
            unit_price=new.unit_price,
            qty=LineQuantities.new(new.quantity),
            discounts=new.discounts,
            taxes=new.taxes,
            description=new.description,
            uom=new.uom,
            attributes=frozen_attributes(new.attributes),
        )

    # Amounts follow the live (not cancelled) quantity. Discounts and taxes given for the ordered quantity
    # are pro-rated exactly (largest remainder), so partial cancellations never lose or invent a cent.
    def _prorate(self, amount: Money) -> Money:
        q = self.qty
        if q.cancelled == 0:
            return amount
        return amount.allocate([q.live, q.cancelled])[0]

    @property
    def gross(self) -> Money:
        return self.unit_price * self.qty.live

    @property
    def ordered_gross(self) -> Money:
        return self.unit_price * self.qty.ordered

    @property
    def discount_total(self) -> Money:
        return self._prorate(sum_money((d.amount for d in self.discounts), self.unit_price.currency))

    @property
    def tax_total(self) -> Money:
        return self._prorate(sum_money((t.amount for t in self.taxes), self.unit_price.currency))

    @property
    def net(self) -> Money:
        return self.gross - self.discount_total
