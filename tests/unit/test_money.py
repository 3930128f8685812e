"""Money: exact Decimal amounts in an ISO 4217 currency; splitting never loses or invents a minor unit."""

from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordercore import CurrencyMismatch, InvalidMoney, InvalidValue, Money, OrderCoreError, sum_money
from ordercore.money import CURRENCY_MINOR_UNITS, minor_units
from ordercore.testing.strategies import currencies, money

FAST = settings(max_examples=200, deadline=None)
LIGHT = settings(max_examples=100, deadline=None)

# amounts in minor units, negative ones included, up to ten billion major units
minor_amounts = st.integers(-(10**12), 10**12)
int_weights = st.integers(0, 10**6)
decimal_weights = st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False)
weight_lists = st.lists(int_weights | decimal_weights, min_size=1, max_size=12).filter(
    lambda ws: sum(Decimal(w) for w in ws) > 0
)


def eur(amount: str) -> Money:
    return Money.of(amount, "EUR")


# -- construction ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (Decimal("12.30"), Decimal("12.30")),
        (Decimal("12.3"), Decimal("12.30")),
        (12, Decimal("12.00")),
        (-7, Decimal("-7.00")),
        ("12.3", Decimal("12.30")),
        (" 12.30 ", Decimal("12.30")),
        ("1e2", Decimal("100.00")),
        ("0", Decimal("0.00")),
    ],
)
def test_decimal_int_and_str_amounts_are_accepted_and_stored_exactly(
    amount: object, expected: Decimal
) -> None:
    m = Money.of(amount, "EUR")  # type: ignore[arg-type]
    assert m.amount == expected
    assert m.currency == "EUR"


def test_amount_is_stored_quantized_to_the_minor_unit() -> None:
    m = Money.of("12.3", "EUR")
    assert m.amount == Decimal("12.30")
    assert str(m.amount) == "12.30"
    assert str(m) == "12.30 EUR"
    assert repr(m) == "Money('12.30', 'EUR')"
    assert m.to_dict() == {"amount": "12.30", "currency": "EUR"}
    assert str(Money.of(5, "JPY")) == "5 JPY"
    assert str(Money.of("1.5", "KWD")) == "1.500 KWD"
    assert str(Money.of("1", "CLF")) == "1.0000 CLF"


def test_the_constructor_validates_like_of() -> None:
    assert Money(Decimal("1.5"), "EUR") == Money.of("1.50", "EUR")
    assert Money(Decimal("1.5"), "EUR").amount == Decimal("1.50")
    with pytest.raises(InvalidMoney):
        Money(Decimal("1.555"), "EUR")
    with pytest.raises(InvalidMoney):
        Money(1.5, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1.5, 0.0, 12.30, True, False])
@pytest.mark.parametrize("make", [Money.of, Money, Money.rounded])
def test_float_and_bool_amounts_are_refused_naming_the_amount(make: object, bad: object) -> None:
    with pytest.raises(InvalidMoney) as info:
        make(bad, "EUR")  # type: ignore[operator]
    assert info.value.field == "amount"
    assert info.value.value is bad
    assert info.value.code == "invalid_money"


@pytest.mark.parametrize(
    "bad", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"), Decimal("-Infinity")]
)
def test_nan_and_infinity_are_refused(bad: object) -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.of(bad, "EUR")  # type: ignore[arg-type]
    assert info.value.field == "amount"


@pytest.mark.parametrize("bad", ["", "abc", "12,30", "1.2.3", "€5", None, [1], object()])
def test_non_numbers_are_refused(bad: object) -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.of(bad, "EUR")  # type: ignore[arg-type]
    assert info.value.field == "amount"


@pytest.mark.parametrize("code", ["XXX", "eur", "EURO", "", "EU", None, 978])
def test_unknown_currency_is_refused_naming_the_currency(code: object) -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.of("1.00", code)  # type: ignore[arg-type]
    assert info.value.field == "currency"
    assert info.value.value == code
    with pytest.raises(InvalidMoney):
        minor_units(code)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("1.005", "EUR"),
        ("0.001", "USD"),
        ("1.5", "JPY"),
        ("0.1", "KRW"),
        ("1.0005", "KWD"),
        ("1.00001", "CLF"),
    ],
)
def test_more_decimals_than_the_currency_allows_are_refused(amount: str, currency: str) -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.of(amount, currency)
    assert info.value.field == "amount"
    assert currency in info.value.reason


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [("1.005", "KWD", "1.005"), ("1.0", "JPY", "1"), ("1.2345", "CLF", "1.2345"), ("0.1", "EUR", "0.10")],
)
def test_decimals_within_the_minor_unit_are_fine(amount: str, currency: str, expected: str) -> None:
    assert str(Money.of(amount, currency).amount) == expected


def test_trailing_zeros_beyond_the_minor_unit_are_not_extra_decimals() -> None:
    assert Money.of("12.3000", "EUR") == Money.of("12.30", "EUR")
    assert str(Money.of("12.3000", "EUR").amount) == "12.30"


def test_absurdly_large_amounts_are_refused_not_mangled() -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.of("1e40", "EUR")
    assert info.value.field == "amount"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Money.rounded(Decimal("1e40"), "EUR"),
        lambda: Money.of("1" + "0" * 25, "EUR") * 10**5,
        lambda: Money.of("1" + "0" * 25, "EUR") * Decimal(10**5),
        lambda: Money.of("1" + "0" * 25, "EUR").multiply(Decimal("1e5")),
    ],
)
def test_results_too_large_to_hold_exactly_are_refused_as_invalid_money(make: Callable[[], Money]) -> None:
    with pytest.raises(InvalidMoney) as info:
        make()
    assert info.value.field == "amount"
    assert "too large" in str(info.value)


def test_minor_units_table() -> None:
    assert minor_units("EUR") == 2
    assert minor_units("JPY") == 0
    assert minor_units("KWD") == 3
    assert minor_units("CLF") == 4
    assert all(len(code) == 3 and code.isupper() for code in CURRENCY_MINOR_UNITS)


def test_money_is_an_immutable_hashable_value() -> None:
    m = eur("1.00")
    with pytest.raises(AttributeError):
        m.amount = Decimal(2)  # type: ignore[misc]
    assert hash(eur("1.0")) == hash(eur("1.00"))
    assert len({eur("1"), eur("1.00"), Money.of(1, "USD")}) == 2


def test_errors_are_in_the_hierarchy() -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.of("x", "EUR")
    assert isinstance(info.value, InvalidValue)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, OrderCoreError)
    assert issubclass(CurrencyMismatch, InvalidValue)


# -- rounding -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1.005", "EUR", "1.01"),
        ("1.004", "EUR", "1.00"),
        ("-1.005", "EUR", "-1.01"),
        ("2.5", "JPY", "3"),
        ("0.0005", "KWD", "0.001"),
        ("12", "EUR", "12.00"),
        (Decimal("0.125"), "USD", "0.13"),
    ],
)
def test_rounded_rounds_half_up_by_default(amount: object, currency: str, expected: str) -> None:
    assert Money.rounded(amount, currency) == Money.of(expected, currency)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "rounding", "expected"),
    [
        ("0.125", ROUND_HALF_EVEN, "0.12"),
        ("0.135", ROUND_HALF_EVEN, "0.14"),
        ("0.129", ROUND_DOWN, "0.12"),
        ("-0.129", ROUND_DOWN, "-0.12"),
        ("0.121", ROUND_UP, "0.13"),
        ("0.125", ROUND_HALF_UP, "0.13"),
    ],
)
def test_rounded_with_an_explicit_mode(amount: str, rounding: str, expected: str) -> None:
    assert Money.rounded(amount, "EUR", rounding) == eur(expected)


def test_rounded_refuses_unknown_currency() -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.rounded("1.005", "XYZ")
    assert info.value.field == "currency"


@LIGHT
@given(st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False), currencies())
def test_rounded_is_within_half_a_minor_unit(amount: Decimal, currency: str) -> None:
    m = Money.rounded(amount, currency)
    half = Decimal(1).scaleb(-minor_units(currency)) / 2
    assert abs(m.amount - amount) <= half


# -- arithmetic -----------------------------------------------------------------------------------------------
def test_addition_subtraction_negation_and_abs() -> None:
    assert eur("1.10") + eur("2.25") == eur("3.35")
    assert eur("1.10") - eur("2.25") == eur("-1.15")
    assert -eur("1.10") == eur("-1.10")
    assert -eur("-1.10") == eur("1.10")
    assert abs(eur("-1.10")) == eur("1.10")
    assert abs(eur("1.10")) == eur("1.10")
    assert (eur("1.10") + eur("2.25")).currency == "EUR"


def test_multiplying_by_an_int_is_exact() -> None:
    assert eur("19.99") * 3 == eur("59.97")
    assert 3 * eur("19.99") == eur("59.97")
    assert eur("19.99") * 0 == Money.zero("EUR")
    assert eur("19.99") * -2 == eur("-39.98")
    assert Money.of(7, "JPY") * 1000 == Money.of(7000, "JPY")


def test_multiplying_by_a_decimal_rounds_half_up_to_the_minor_unit() -> None:
    assert eur("10.00") * Decimal("0.3335") == eur("3.34")
    assert eur("10.00") * Decimal("0.3334") == eur("3.33")
    assert eur("-10.00") * Decimal("0.3335") == eur("-3.34")
    assert eur("0.01") * Decimal("0.5") == eur("0.01")
    assert Decimal("0.19") * eur("19.99") == eur("3.80")


def test_multiply_with_an_explicit_rounding_mode() -> None:
    assert eur("10.00").multiply(Decimal("0.3339"), ROUND_DOWN) == eur("3.33")
    assert eur("10.00").multiply(Decimal("0.125"), ROUND_HALF_EVEN) == eur("1.25")
    assert eur("0.05").multiply(Decimal("0.5"), ROUND_HALF_EVEN) == eur("0.02")
    assert eur("0.05").multiply(Decimal("0.5")) == eur("0.03")
    with pytest.raises(InvalidMoney):
        eur("1.00").multiply(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("factor", [1.5, True, "2", None, Fraction(1, 2)])
def test_multiplying_by_anything_but_int_or_decimal_is_refused(factor: object) -> None:
    with pytest.raises(InvalidMoney):
        eur("1.00") * factor  # type: ignore[operator]


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
    ids=["add", "sub", "lt", "le", "gt", "ge"],
)
def test_mixing_currencies_is_refused(op: object) -> None:
    with pytest.raises(CurrencyMismatch) as info:
        op(eur("1.00"), Money.of("1.00", "USD"))  # type: ignore[operator]
    assert info.value.field == "currency"
    assert info.value.value == "USD"
    assert info.value.code == "currency_mismatch"


@pytest.mark.parametrize("other", [1, Decimal("1.00"), "1.00", None])
def test_arithmetic_with_non_money_is_refused(other: object) -> None:
    with pytest.raises(InvalidMoney):
        eur("1.00") + other  # type: ignore[operator]
    with pytest.raises(InvalidMoney):
        eur("1.00") - other  # type: ignore[operator]
    with pytest.raises(InvalidMoney):
        assert eur("1.00") < other  # type: ignore[operator]


def test_equality_needs_the_same_currency_and_amount() -> None:
    assert eur("1.00") == eur("1")
    assert eur("1.00") != Money.of("1.00", "USD")
    assert eur("1.00") != eur("1.01")
    assert eur("1.00") != Decimal("1.00")


def test_comparisons() -> None:
    a, b = eur("1.00"), eur("2.00")
    assert a < b
    assert a <= b
    assert a <= eur("1")
    assert b > a
    assert b >= a
    assert b >= eur("2")
    assert not a > b
    assert not b < a
    assert sorted([b, eur("-3"), a]) == [eur("-3"), a, b]
    assert max(a, b) == b


def test_zero_and_sign_helpers() -> None:
    assert Money.zero("JPY") == Money.of(0, "JPY")
    assert Money.zero("EUR").is_zero
    assert not eur("0.01").is_zero
    assert eur("-0.01").is_negative
    assert not Money.zero("EUR").is_negative
    assert not eur("0.01").is_negative


def test_zero_is_never_shown_with_a_minus_sign() -> None:
    assert str(eur("-5.00") * 0) == "0.00 EUR"
    assert str(Money.rounded("-0.004", "EUR")) == "0.00 EUR"
    assert Money.of("-0", "EUR").to_dict() == {"amount": "0.00", "currency": "EUR"}
    assert str(eur("-1.00").allocate([1, 0])[1]) == "0.00 EUR"


@LIGHT
@given(minor_amounts, minor_amounts, currencies())
def test_add_and_sub_agree_with_minor_unit_arithmetic(a: int, b: int, currency: str) -> None:
    x, y = Money.from_minor(a, currency), Money.from_minor(b, currency)
    assert (x + y).minor == a + b
    assert (x - y).minor == a - b
    assert (x + y) - y == x
    assert -x + x == Money.zero(currency)
    assert (-x).minor == -a
    assert abs(x).minor == abs(a)
    assert (x < y) == (a < b)
    assert (x >= y) == (a >= b)


@LIGHT
@given(minor_amounts, st.integers(-1000, 1000), currencies())
def test_int_multiplication_is_exact(a: int, n: int, currency: str) -> None:
    assert (Money.from_minor(a, currency) * n).minor == a * n


# -- minor units ----------------------------------------------------------------------------------------------
def test_minor_examples() -> None:
    assert eur("12.30").minor == 1230
    assert eur("-0.05").minor == -5
    assert Money.of(1234, "JPY").minor == 1234
    assert Money.of("1.234", "KWD").minor == 1234
    assert Money.from_minor(1230, "EUR") == eur("12.30")
    assert Money.from_minor(-5, "EUR") == eur("-0.05")
    assert Money.from_minor(5, "JPY") == Money.of(5, "JPY")
    assert Money.from_minor(1, "KWD") == Money.of("0.001", "KWD")


def test_from_minor_refuses_unknown_currency() -> None:
    with pytest.raises(InvalidMoney) as info:
        Money.from_minor(100, "ABC")
    assert info.value.field == "currency"


@LIGHT
@given(minor_amounts, currencies())
def test_minor_round_trip(units: int, currency: str) -> None:
    m = Money.from_minor(units, currency)
    assert m.minor == units
    assert Money.from_minor(m.minor, m.currency) == m
    assert m.amount == Decimal(units).scaleb(-minor_units(currency))


@LIGHT
@given(money(min_minor=-(10**9)))
def test_str_and_to_dict_round_trip_through_of(m: Money) -> None:
    assert Money.of(m.to_dict()["amount"], m.currency) == m
    amount, currency = str(m).split(" ")
    assert Money.of(amount, currency) == m


# -- split and allocate ---------------------------------------------------------------------------------------
def test_split_examples() -> None:
    assert eur("0.10").split(3) == (eur("0.04"), eur("0.03"), eur("0.03"))
    assert eur("100.00").split(3) == (eur("33.34"), eur("33.33"), eur("33.33"))
    assert eur("-0.10").split(3) == (eur("-0.04"), eur("-0.03"), eur("-0.03"))
    assert eur("0.02").split(3) == (eur("0.01"), eur("0.01"), eur("0.00"))
    assert Money.of(10, "JPY").split(4) == tuple(Money.of(n, "JPY") for n in (3, 3, 2, 2))
    assert eur("5.00").split(1) == (eur("5.00"),)


@pytest.mark.parametrize("parts", [0, -1, True, 1.5, "2", None])
def test_split_refuses_a_non_positive_or_non_int_count(parts: object) -> None:
    with pytest.raises(InvalidMoney) as info:
        eur("1.00").split(parts)  # type: ignore[arg-type]
    assert info.value.field == "parts"


def test_allocate_examples() -> None:
    assert eur("100.00").allocate([1, 1, 1]) == (eur("33.34"), eur("33.33"), eur("33.33"))
    assert eur("0.05").allocate([3, 7]) == (eur("0.02"), eur("0.03"))
    assert eur("10.00").allocate([Decimal("0.5"), Decimal("0.25"), Decimal("0.25")]) == (
        eur("5.00"),
        eur("2.50"),
        eur("2.50"),
    )
    assert eur("10.00").allocate([0, 1]) == (eur("0.00"), eur("10.00"))
    assert eur("-1.00").allocate([1, 2]) == (eur("-0.33"), eur("-0.67"))


def test_allocate_ties_go_to_the_earlier_weight() -> None:
    assert eur("0.01").allocate([1, 1]) == (eur("0.01"), eur("0.00"))
    assert eur("0.01").allocate([0, 1, 1]) == (eur("0.00"), eur("0.01"), eur("0.00"))
    assert eur("0.02").allocate([1, 1, 1]) == (eur("0.01"), eur("0.01"), eur("0.00"))


def test_allocate_all_zero_weights_splits_evenly() -> None:
    assert eur("0.10").allocate([0, 0, 0]) == eur("0.10").split(3)
    assert eur("0.10").allocate([Decimal(0), 0]) == (eur("0.05"), eur("0.05"))


def test_allocate_refuses_a_negative_weight() -> None:
    with pytest.raises(InvalidMoney) as info:
        eur("1.00").allocate([1, -1, 2])
    assert info.value.field == "weights[1]"
    assert info.value.value == -1


def test_allocate_refuses_empty_weights() -> None:
    with pytest.raises(InvalidMoney) as info:
        eur("1.00").allocate([])
    assert info.value.field == "weights"


@pytest.mark.parametrize("bad", [0.5, True, "NaN", Decimal("Infinity"), None])
def test_allocate_refuses_non_decimal_weights(bad: object) -> None:
    with pytest.raises(InvalidMoney) as info:
        eur("1.00").allocate([1, bad])  # type: ignore[list-item]
    assert info.value.field == "weights[1]"


@FAST
@given(minor_amounts, currencies(), weight_lists)
def test_allocated_parts_sum_exactly_to_the_original(units: int, currency: str, weights: list) -> None:
    total = Money.from_minor(units, currency)
    parts = total.allocate(weights)
    assert len(parts) == len(weights)
    assert all(p.currency == currency for p in parts)
    assert sum_money(parts, currency) == total
    assert sum(p.minor for p in parts) == units


@FAST
@given(minor_amounts, currencies(), weight_lists)
def test_allocated_parts_are_proportional_within_one_minor_unit(
    units: int, currency: str, weights: list
) -> None:
    parts = Money.from_minor(units, currency).allocate(weights)
    total_weight = sum(Fraction(w) for w in weights)
    for part, w in zip(parts, weights, strict=True):
        exact = Fraction(units) * Fraction(w) / total_weight
        assert abs(Fraction(part.minor) - exact) < 1
        # every part has the sign of the whole (or is zero)
        assert part.minor * units >= 0


@FAST
@given(minor_amounts, currencies(), weight_lists, st.integers(1, 1000))
def test_allocation_is_deterministic_and_scale_invariant(
    units: int, currency: str, weights: list, scale: int
) -> None:
    m = Money.from_minor(units, currency)
    first = m.allocate(weights)
    assert m.allocate(list(weights)) == first
    assert m.allocate(tuple(weights)) == first
    assert m.allocate([w * scale for w in weights]) == first


@FAST
@given(minor_amounts, currencies(), st.integers(1, 50))
def test_split_and_all_zero_weights_give_near_equal_parts(units: int, currency: str, n: int) -> None:
    m = Money.from_minor(units, currency)
    parts = m.split(n)
    assert m.allocate([0] * n) == parts
    assert sum_money(parts, currency) == m
    sizes = [abs(p.minor) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)  # earlier parts get the extra minor units


@LIGHT
@given(minor_amounts, currencies(), weight_lists)
def test_allocating_the_negation_negates_every_part(units: int, currency: str, weights: list) -> None:
    m = Money.from_minor(units, currency)
    assert tuple(-p for p in m.allocate(weights)) == (-m).allocate(weights)


# -- sum_money ------------------------------------------------------------------------------------------------
def test_sum_money() -> None:
    assert sum_money([], "EUR") == Money.zero("EUR")
    assert sum_money(iter([eur("1.10"), eur("2.20"), eur("-0.30")]), "EUR") == eur("3.00")
    assert sum_money((m for m in [Money.of(5, "JPY")]), "JPY") == Money.of(5, "JPY")


def test_sum_money_refuses_other_currencies() -> None:
    with pytest.raises(CurrencyMismatch):
        sum_money([eur("1.00"), Money.of("1.00", "USD")], "EUR")
    with pytest.raises(CurrencyMismatch):
        sum_money([eur("1.00")], "USD")
    with pytest.raises(InvalidMoney) as info:
        sum_money([], "XYZ")
    assert info.value.field == "currency"


@LIGHT
@given(st.lists(minor_amounts, max_size=20), currencies())
def test_sum_money_matches_minor_unit_sum(amounts: list[int], currency: str) -> None:
    total = sum_money((Money.from_minor(a, currency) for a in amounts), currency)
    assert total.minor == sum(amounts)
    assert total.currency == currency


# -- arithmetic skips the checks only when they could not fail: the results are those Money(...) gives ------
def _checked(amount: Decimal, currency: str) -> Money | type[OrderCoreError]:
    try:
        return Money(amount, currency)
    except OrderCoreError as e:
        return type(e)


def _quick(op: Callable[[], Money]) -> Money | type[OrderCoreError]:
    try:
        return op()
    except OrderCoreError as e:
        return type(e)


def _same(a: Money | type[OrderCoreError], b: Money | type[OrderCoreError]) -> bool:
    if isinstance(a, Money) and isinstance(b, Money):  # same value, same exponent, no "-0"
        return a == b and str(a.amount) == str(b.amount) and a.currency == b.currency
    return a == b


_HUGE = st.decimals(min_value=-(10**27), max_value=10**27, places=0, allow_nan=False)


@FAST
@given(currencies().flatmap(lambda c: st.tuples(st.just(c), money(c) | _HUGE.map(lambda d: d), money(c))))
def test_sums_and_differences_are_what_money_checks_give(case: tuple[str, Money | Decimal, Money]) -> None:
    currency, first, b = case
    a = first if isinstance(first, Money) else _quick(lambda: Money(first, currency))
    if not isinstance(a, Money):
        return
    for x, y in ((a, b), (b, a), (a, a), (a, -a)):
        assert _same(_quick(lambda x=x, y=y: x + y), _checked(x.amount + y.amount, currency))
        assert _same(_quick(lambda x=x, y=y: x - y), _checked(x.amount - y.amount, currency))


@FAST
@given(
    currencies(),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, max_value=10**12, min_value=-(10**12)),
)
def test_rounded_amounts_are_what_money_checks_give(currency: str, amount: Decimal) -> None:
    quantum = Decimal(1).scaleb(-minor_units(currency))
    assert _same(Money.rounded(amount, currency), _checked(amount.quantize(quantum, ROUND_HALF_UP), currency))


def test_no_negative_zero_and_too_large_sums_are_refused() -> None:
    a = Money.of("1.50", "EUR")
    assert str((a - a).amount) == "0.00"
    assert str((-a + a).amount) == "0.00"
    assert str(Money.rounded("-0.001", "EUR").amount) == "0.00"
    big = Money.of("9" * 26 + ".99", "EUR")
    with pytest.raises(InvalidMoney):
        big + big
    assert Money.zero("EUR") == Money.of(0, "EUR")
    assert Money.zero("JPY").amount.as_tuple().exponent == 0
    with pytest.raises(InvalidMoney):
        Money.zero("XXX")
