"""The allow-listed functions of the language: their static signatures and their run-time helpers.

Helpers are the only names, besides constants, that compiled code can see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import attrs

from ordercore.errors import CurrencyMismatch, RuleEvaluationFailed
from ordercore.money import Money, minor_units

from .types import (
    BOOL,
    DATE,
    DATETIME,
    DECIMAL,
    DURATION,
    INT,
    MONEY,
    NUMBERS,
    ORDERED,
    STRING,
    ListOf,
    Type,
    unify,
)

__all__ = ["FUNCTIONS", "HELPERS", "Signature"]

Check = Callable[[list[Type]], "Type | str"]


@attrs.frozen
class Signature:
    """How a function is typed (``check`` returns the result type or a reason) and called (``helper``)."""

    min_args: int
    max_args: int | None
    check: Check
    helper: str
    doc: str


def _one(accepted: frozenset[Type] | set[Type], result: Type | None, what: str) -> Check:
    def check(args: list[Type]) -> Type | str:
        (arg,) = args
        if arg not in accepted:
            return f"needs {what}, not {arg}"
        return result if result is not None else arg

    return check


def _len(args: list[Type]) -> Type | str:
    (arg,) = args
    return INT if arg == STRING or isinstance(arg, ListOf) else f"needs a list or a string, not {arg}"


def _strings(result: Type) -> Check:
    def check(args: list[Type]) -> Type | str:
        bad = [str(a) for a in args if a != STRING]
        return f"needs strings, not {', '.join(bad)}" if bad else result

    return check


def _extreme(args: list[Type]) -> Type | str:
    result: Type | None = args[0]
    for arg in args[1:]:
        result = None if result is None else unify(result, arg)
    if result is None or result not in ORDERED:
        return (
            "needs values of one comparable type (numbers, money, strings, dates, datetimes or durations), not "
            + (", ".join(str(a) for a in args))
        )
    return result


def _round(args: list[Type]) -> Type | str:
    value = args[0]
    if len(args) == 2 and args[1] != INT:
        return f"needs an int number of places, not {args[1]}"
    if value in NUMBERS:
        return DECIMAL
    if value == MONEY:
        return MONEY
    return f"needs a number or money, not {value}"


FUNCTIONS: dict[str, Signature] = {
    "len": Signature(1, 1, _len, "_len", "len(list | string) -> int"),
    "lower": Signature(1, 1, _strings(STRING), "_lower", "lower(string) -> string"),
    "upper": Signature(1, 1, _strings(STRING), "_upper", "upper(string) -> string"),
    "starts_with": Signature(2, 2, _strings(BOOL), "_starts_with", "starts_with(string, prefix) -> bool"),
    "ends_with": Signature(2, 2, _strings(BOOL), "_ends_with", "ends_with(string, suffix) -> bool"),
    "matches": Signature(2, 2, _strings(BOOL), "", 'matches(string, "regex") -> bool'),
    "abs": Signature(
        1,
        1,
        _one({INT, DECIMAL, MONEY, DURATION}, None, "a number, money or a duration"),
        "_abs",
        "abs(x) -> x",
    ),
    "min": Signature(2, None, _extreme, "_min", "min(a, b, ...) -> smallest"),
    "max": Signature(2, None, _extreme, "_max", "max(a, b, ...) -> largest"),
    "round": Signature(1, 2, _round, "_round", "round(number | money, places=0) -> decimal | money"),
    "days": Signature(1, 1, _one({INT}, DURATION, "an int"), "_days", "days(int) -> duration"),
    "hours": Signature(1, 1, _one({INT}, DURATION, "an int"), "_hours", "hours(int) -> duration"),
    "date_of": Signature(1, 1, _one({DATETIME}, DATE, "a datetime"), "_date_of", "date_of(datetime) -> date"),
    "weekday": Signature(
        1,
        1,
        _one({DATE, DATETIME}, INT, "a date or a datetime"),
        "_weekday",
        "weekday(date | datetime) -> int",
    ),
    "hour": Signature(1, 1, _one({DATETIME}, INT, "a datetime"), "_hour", "hour(datetime) -> int"),
}


# -- run-time helpers ----------------------------------------------------------------------------------------
def _not_null(value: Any, path: str) -> Any:
    if value is None:
        raise RuleEvaluationFailed(f"{path} is null")
    return value


def _divide(left: Any, right: Any, where: str) -> Any:
    """number / number -> Decimal (never a float); money / number -> money; money / money -> Decimal."""
    if isinstance(left, Money):
        if isinstance(right, Money):
            if right.currency != left.currency:
                raise CurrencyMismatch(
                    f"cannot divide {left.currency} by {right.currency}",
                    field="currency",
                    value=right.currency,
                )
            if not right.amount:
                raise RuleEvaluationFailed(f"division by zero in {where}")
            return left.amount / right.amount
        if not right:
            raise RuleEvaluationFailed(f"division by zero in {where}")
        return Money.rounded(left.amount / right, left.currency)
    if not right:
        raise RuleEvaluationFailed(f"division by zero in {where}")
    return Decimal(left) / right


def _round_value(value: Any, places: int = 0) -> Any:
    if isinstance(value, Money):
        keep = min(places, minor_units(value.currency))
        return Money.rounded(value.amount.quantize(Decimal(1).scaleb(-keep), ROUND_HALF_UP), value.currency)
    return Decimal(value).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)


def _sum_money(values: Iterable[Money], where: str) -> Money:
    iterator = iter(values)
    try:
        total = next(iterator)
    except StopIteration:
        raise RuleEvaluationFailed(f"{where}: sum of money over an empty list has no currency") from None
    for value in iterator:
        total = total + value
    return total


def _extreme_of(pick: Callable[..., Any]) -> Callable[[Iterable[Any], str], Any]:
    def helper(values: Iterable[Any], where: str) -> Any:
        items = list(values)
        if not items:
            raise RuleEvaluationFailed(f"{where}: the list is empty")
        return pick(items)

    return helper


def _hours(n: int) -> timedelta:
    return timedelta(hours=n)


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def _hour(value: datetime) -> int:
    if not isinstance(value, datetime):
        raise TypeError(f"hour() needs a datetime, not {type(value).__name__}")
    return value.hour


HELPERS: dict[str, object] = {
    "_nn": _not_null,
    "_div": _divide,
    "_len": len,
    "_lower": str.lower,
    "_upper": str.upper,
    "_starts_with": str.startswith,
    "_ends_with": str.endswith,
    "_abs": abs,
    "_min": min,
    "_max": max,
    "_round": _round_value,
    "_days": _days,
    "_hours": _hours,
    "_date_of": datetime.date,
    "_weekday": date.isoweekday,
    "_hour": _hour,
    "_any": any,
    "_all": all,
    "_sum": sum,
    "_sum_money": _sum_money,
    "_max_of": _extreme_of(max),
    "_min_of": _extreme_of(min),
}
