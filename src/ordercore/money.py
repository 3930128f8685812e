"""Money: an exact ``Decimal`` amount in an ISO 4217 currency, always held at the currency's minor unit.

Amounts never pass through ``float``. Arithmetic between different currencies is refused. Splitting an
amount (:meth:`Money.allocate`) never loses or invents a minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import attrs

from ordercore.errors import CurrencyMismatch, InvalidMoney

__all__ = ["CURRENCY_MINOR_UNITS", "Money", "minor_units", "sum_money"]

_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMALS = "CLF UYW"
_TWO_DECIMALS = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL "
    "GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD "
    "LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN "
    "PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL "
    "THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)

#: ISO 4217 currency code -> number of digits after the decimal point (its minor unit).
CURRENCY_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_TWO_DECIMALS.split(), 2),
    **dict.fromkeys(_ZERO_DECIMALS.split(), 0),
    **dict.fromkeys(_THREE_DECIMALS.split(), 3),
    **dict.fromkeys(_FOUR_DECIMALS.split(), 4),
}

_QUANTUM = {digits: Decimal(1).scaleb(-digits) for digits in set(CURRENCY_MINOR_UNITS.values())}


def minor_units(currency: str) -> int:
    """Digits after the decimal point for ``currency``; raises :class:`InvalidMoney` for unknown codes."""
    try:
        return CURRENCY_MINOR_UNITS[currency]
    except (KeyError, TypeError):
        raise InvalidMoney("is not an ISO 4217 currency code", field="currency", value=currency) from None


def _as_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, bool | float):
        raise InvalidMoney(
            f"must be a Decimal, an int or a decimal string, not {type(value).__name__}",
            field=field,
            value=value,
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            raise InvalidMoney("is not a decimal number", field=field, value=value) from None
    else:
        raise InvalidMoney(
            f"must be a Decimal, an int or a decimal string, not {type(value).__name__}",
            field=field,
            value=value,
        )
    if not result.is_finite():
        raise InvalidMoney("must be a finite number", field=field, value=value)
    return result


@attrs.frozen(order=False, repr=False)
class Money:
    """An amount of money. ``Money(Decimal("12.30"), "EUR")`` or ``Money.of("12.30", "EUR")``.

    The amount must be representable in the currency's minor unit (``12.345 EUR`` is refused; use
    :meth:`rounded` to round explicitly). It is stored quantized, so ``12.3 EUR`` is kept as ``12.30``.
    """

    amount: Decimal
    currency: str

    def __attrs_post_init__(self) -> None:
        digits = minor_units(self.currency)
        amount = _as_decimal(self.amount, "amount")
        quantum = _QUANTUM[digits]
        try:
            quantized = amount.quantize(quantum)
        except InvalidOperation:
            raise InvalidMoney("is too large", field="amount", value=self.amount) from None
        if quantized != amount:
            raise InvalidMoney(
                f"has more decimal places than {self.currency} allows ({digits})",
                field="amount",
                value=self.amount,
            )
        if not quantized:
            quantized = abs(quantized)  # no "-0.00"
        object.__setattr__(self, "amount", quantized)

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str) -> Money:
        """Exact money from a Decimal, an int or a decimal string; floats are refused."""
        return cls(_as_decimal(amount, "amount"), currency)

    @classmethod
    def rounded(cls, amount: Decimal | int | str, currency: str, rounding: str = ROUND_HALF_UP) -> Money:
        """Money rounded to the currency's minor unit (half up by default)."""
        value = _as_decimal(amount, "amount")
        try:
            quantized = value.quantize(_QUANTUM[minor_units(currency)], rounding=rounding)
        except InvalidOperation:
            raise InvalidMoney("is too large", field="amount", value=value) from None
        if cls is Money:
            return exact_money(quantized, currency)
        return cls(quantized, currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        if cls is Money and type(currency) is str:  # one (immutable) zero per currency
            zero = _ZEROS.get(currency)
            if zero is None:
                zero = _ZEROS[currency] = Money(Decimal(0), currency)
            return zero
        return cls(Decimal(0), currency)

    # -- arithmetic ---------------------------------------------------------------------------------------
    def _same(self, other: object, op: str) -> Money:
        if not isinstance(other, Money):
            raise InvalidMoney(f"cannot {op} Money and {type(other).__name__}", value=other)
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot {op} {self.currency} and {other.currency}", field="currency", value=other.currency
            )
        return other

    def __add__(self, other: Money) -> Money:
        if type(other) is Money and other.currency == self.currency:
            return exact_money(self.amount + other.amount, self.currency)
        return Money(self.amount + self._same(other, "add").amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        if type(other) is Money and other.currency == self.currency:
            return exact_money(self.amount - other.amount, self.currency)
        return Money(self.amount - self._same(other, "subtract").amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: int | Decimal) -> Money:
        """Multiply by a count (exact) or a Decimal factor (rounded half up to the minor unit)."""
        if isinstance(factor, bool) or not isinstance(factor, int | Decimal):
            raise InvalidMoney(
                f"can only be multiplied by an int or a Decimal, not {type(factor).__name__}", value=factor
            )
        if type(factor) is int:  # exact: the product keeps the amount's exponent (unless it is too large)
            return exact_money(self.amount * factor, self.currency)
        return Money.rounded(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def multiply(self, factor: int | Decimal, rounding: str = ROUND_HALF_UP) -> Money:
        """Multiply with an explicit rounding mode (``decimal.ROUND_*``)."""
        return Money.rounded(_as_decimal(factor, "factor") * self.amount, self.currency, rounding)

    # -- comparisons (same currency only) -----------------------------------------------------------------
    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other, "compare").amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other, "compare").amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other, "compare").amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other, "compare").amount

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    @property
    def minor(self) -> int:
        """The amount in minor units (cents): ``Money.of("12.30", "EUR").minor == 1230``."""
        return int(self.amount.scaleb(minor_units(self.currency)))

    @classmethod
    def from_minor(cls, units: int, currency: str) -> Money:
        return cls(Decimal(units).scaleb(-minor_units(currency)), currency)

    # -- splitting ----------------------------------------------------------------------------------------
    def allocate(self, weights: Sequence[int | Decimal]) -> tuple[Money, ...]:
        """Split into parts proportional to ``weights``; the parts always add up to exactly ``self``.

        Uses the largest-remainder method on minor units; ties go to the earlier weight, so the result is
        deterministic. All weights zero splits evenly.
        """
        if not weights:
            raise InvalidMoney("cannot allocate over no weights", field="weights", value=weights)
        parsed: list[Decimal] = []
        for i, w in enumerate(weights):
            d = _as_decimal(w, f"weights[{i}]")
            if d < 0:
                raise InvalidMoney("must not be negative", field=f"weights[{i}]", value=w)
            parsed.append(d)
        total_weight = sum(parsed, Decimal(0))
        if total_weight == 0:
            parsed = [Decimal(1)] * len(parsed)
            total_weight = Decimal(len(parsed))
        sign = -1 if self.amount < 0 else 1
        units = abs(self.minor)
        shares: list[int] = []
        remainders: list[tuple[Decimal, int]] = []
        for i, w in enumerate(parsed):
            exact = units * w / total_weight
            floor = int(exact)
            shares.append(floor)
            remainders.append((exact - floor, i))
        left = units - sum(shares)
        for _, i in sorted(remainders, key=lambda r: (-r[0], r[1]))[:left]:
            shares[i] += 1
        return tuple(Money.from_minor(sign * s, self.currency) for s in shares)

    def split(self, parts: int) -> tuple[Money, ...]:
        """Split into ``parts`` near-equal amounts that add up exactly (earlier parts get the extra cents)."""
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise InvalidMoney("must be a positive int", field="parts", value=parts)
        return self.allocate([1] * parts)

    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    def to_dict(self) -> dict[str, Any]:
        return {"amount": str(self.amount), "currency": self.currency}


_ZEROS: dict[str, Money] = {}


def exact_money(amount: Decimal, currency: str) -> Money:
    """``Money(amount, currency)`` for a sum, a difference or a quantized amount of a valid currency: when
    ``amount`` already has the currency's exponent (it was computed exactly), the checks ``Money`` makes
    would pass and leave it as it is, so they are skipped; otherwise they are made (and refuse it)."""
    digits = CURRENCY_MINOR_UNITS.get(currency)
    if digits is None or amount.as_tuple().exponent != -digits:
        return Money(amount, currency)
    money: Money = object.__new__(Money)
    object.__setattr__(money, "amount", amount if amount else abs(amount))  # no "-0.00"
    object.__setattr__(money, "currency", currency)
    return money


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """Add up ``items`` (which must all be in ``currency``); an empty iterable gives zero."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total
