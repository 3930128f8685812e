"""Patterns of ``matches()``: refused at load when they could backtrack without bound, and run only on
strings of a bounded length, so no pattern and no order can stall intake.

Python's ``re`` backtracks: a repeated group whose body can itself match in several ways (``(a+)+``,
``(a|aa)+``, ``(\\w+\\s?)*``) takes time exponential in the length of a string that almost matches, and
a backreference has no bound either. :func:`regex_fault` reads the parsed pattern and names the first such
construct; everything else (anchors, classes, single quantifiers, alternations, bounded repeats of
fixed-length bodies) is accepted.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from ordercore.errors import RuleEvaluationFailed

__all__ = ["MAX_SUBJECT", "bounded_search", "regex_fault"]

#: ``matches()`` looks at strings of at most this many characters; a longer one is an evaluation error.
MAX_SUBJECT = 10_000

# the parser behind re.compile: private, but stable since Python 3.11 (sre_parse, its old name, warns)
_sre: Any = importlib.import_module("re._parser")
_REPEATS = (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT)
_BACKREFS = tuple(
    getattr(_sre, name)
    for name in (
        "GROUPREF",
        "GROUPREF_EXISTS",
        "GROUPREF_IGNORE",
        "GROUPREF_LOC_IGNORE",
        "GROUPREF_UNI_IGNORE",
    )
)
_IGNORECASE = re.IGNORECASE.value

Ranges = list[tuple[int, int]]


def regex_fault(pattern: str) -> str | None:
    """Why ``pattern`` could backtrack without bound (or cannot be parsed), or None when it cannot."""
    try:
        parsed = _sre.parse(pattern)
    except (re.error, OverflowError, RecursionError) as e:
        return f"invalid regular expression: {e}"
    return _walk(parsed, repeated=False, fold=bool(parsed.state.flags & _IGNORECASE))


def _walk(sub: Any, *, repeated: bool, fold: bool) -> str | None:
    for op, av in sub.data:
        fault: str | None = None
        if op in _BACKREFS:
            return "backreferences (\\1, (?P=name), (?(1)...)) are not allowed"
        if op in _REPEATS:
            _, high, body = av
            if high > 1:
                width = body.getwidth()
                if width[0] != width[1]:
                    return (
                        "a repeated part must match a fixed length: nested quantifiers like (a+)+ or (a|aa)+"
                        " backtrack exponentially"
                    )
                fault = _walk(body, repeated=True, fold=fold)
            else:
                fault = _walk(body, repeated=repeated, fold=fold)
        elif op is _sre.SUBPATTERN:
            flags = av[1]
            fault = _walk(av[3], repeated=repeated, fold=fold or bool(flags & _IGNORECASE))
        elif op is _sre.ATOMIC_GROUP:
            fault = _walk(av, repeated=repeated, fold=fold)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            fault = _walk(av[1], repeated=repeated, fold=fold)
        elif op is _sre.BRANCH:
            branches = av[1]
            if repeated and not _disjoint([_first(b, fold) for b in branches]):
                return (
                    "the alternatives of a repeated group must start with different characters"
                    " (overlapping ones backtrack exponentially)"
                )
            for branch in branches:
                fault = fault or _walk(branch, repeated=repeated, fold=fold)
        if fault is not None:
            return fault
    return None


def _first(sub: Any, fold: bool) -> Ranges | None:
    """The code points the first character of ``sub`` may be, as ranges; None when not simply known."""
    if not sub.data:
        return None
    op, av = sub.data[0]
    if op is _sre.SUBPATTERN:
        return _first(av[3], fold or bool(av[1] & _IGNORECASE))
    if op is _sre.LITERAL:
        return _folded(av, fold)
    if op is _sre.IN:
        ranges: Ranges = []
        for item_op, item in av:
            if item_op is _sre.LITERAL:
                found = _folded(item, fold)
            elif item_op is _sre.RANGE and not fold:
                found = [item]
            else:
                return None  # a negated set, a category (\w, \d) or a range under IGNORECASE
            ranges.extend(found)
        return ranges
    return None


def _folded(code: int, fold: bool) -> Ranges:
    if not fold:
        return [(code, code)]
    char = chr(code)
    return [(ord(c), ord(c)) for c in {char, char.lower(), char.upper(), char.casefold()} if len(c) == 1]


def _disjoint(firsts: list[Ranges | None]) -> bool:
    seen: Ranges = []
    for ranges in firsts:
        if ranges is None:
            return False
        for lo, hi in ranges:
            if any(lo <= other_hi and other_lo <= hi for other_lo, other_hi in seen):
                return False
        seen.extend(ranges)
    return True


def bounded_search(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    """``matches()`` for a compiled pattern: whether it is found in the string, which may be at most
    :data:`MAX_SUBJECT` characters long (RuleEvaluationFailed beyond)."""
    search = pattern.search

    def matches(subject: str) -> bool:
        if len(subject) > MAX_SUBJECT:
            raise RuleEvaluationFailed(
                f"matches() looks at strings of at most {MAX_SUBJECT:,} characters, this one has"
                f" {len(subject):,}"
            )
        return search(subject) is not None

    return matches
