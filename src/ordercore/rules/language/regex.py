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


def regex_fault(pattern: str) -> str | None:
    """Why ``pattern`` could backtrack without bound (or cannot be parsed), or None when it cannot."""
    try:
        parsed = _sre.parse(pattern)
    except (re.error, OverflowError, RecursionError) as e:
        return f"invalid regular expression: {e}"
    flags = parsed.state.flags
    fold = bool(flags & _IGNORECASE)
    dotall = bool(flags & _DOTALL)
    return _walk(parsed, repeated=False, fold=fold, dotall=dotall) or _adjacent(parsed, fold, dotall)


# -- unbounded repeats that can take the same characters in turn -------------------------------------------------
# ``a*a*b``, ``.*x.*y``, ``\w+\w+!``: on a string that almost matches, each way of sharing a run of characters
# between two (or more) such repeats is tried, n**k ways for k of them. A required character that the
# repeat before it cannot take (the ``@`` of ``\w+@\w+``) ends the sharing. Which characters an item takes
# is worked out on samples: every code point below 256 and a few others (letters, digits and spaces of
# other scripts, a symbol outside the BMP).
_SAMPLES = [chr(c) for c in range(256)] + list("ŁłĲ東京٣३\u2003\u3000€😀")
_DOTALL = re.DOTALL.value
_UNBOUNDED = 100  # a repeat of more than this many is as good as unbounded


def _adjacent(sub: Any, fold: bool, dotall: bool) -> str | None:
    live: list[frozenset[str]] = []  # what the unbounded repeats since the last separator take
    for op, av in _flat(sub.data):
        if op is _sre.BRANCH:
            for branch in av[1]:
                fault = _adjacent(branch, fold, dotall)
                if fault is not None:
                    return fault
        if op in _REPEATS:
            low, high, body = av
            fault = _adjacent(body, fold, dotall)
            if fault is not None:
                return fault
            if high > _UNBOUNDED:
                takes = _takes(body, fold, dotall)
                if any(takes & other for other in live):
                    return (
                        "two unbounded repeats that can take the same characters, with nothing between them"
                        " that only one can (like a*a*b or .*x.*y), backtrack polynomially; drop one (matches()"
                        " searches anywhere, so a leading or trailing .* is not needed) or put a character"
                        " between them that the first cannot take"
                    )
                live.append(takes)
                continue
            if low == 0:
                continue  # may take nothing: separates nothing
        width = _width(op, av)
        if width is None or width[0] == 0:
            continue  # an anchor, a lookaround, an optional part: separates nothing
        takes = _takes_item(op, av, fold, dotall)
        live = [other for other in live if other & takes]  # a repeat that cannot take it stops here
    return None


def _flat(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The items of a sequence, with its plain groups ((...), (?:...)) opened in place."""
    out: list[tuple[Any, Any]] = []
    for op, av in items:
        if op is _sre.SUBPATTERN:
            out.extend(_flat(av[3].data))
        else:
            out.append((op, av))
    return out


def _width(op: Any, av: Any) -> tuple[int, int] | None:
    sub = _sre.SubPattern(_sre.State(), [(op, av)])
    try:
        return tuple(sub.getwidth())
    except Exception:  # a construct getwidth does not know: treat it as separating nothing
        return None


def _takes(sub: Any, fold: bool, dotall: bool) -> frozenset[str]:
    """The sample characters any item of ``sub`` may take."""
    found: set[str] = set()
    for op, av in sub.data:
        found |= _takes_item(op, av, fold, dotall)
    return frozenset(found)


def _takes_item(op: Any, av: Any, fold: bool, dotall: bool) -> frozenset[str]:
    if op is _sre.LITERAL:
        return frozenset(c for c in _SAMPLES if _same(c, chr(av), fold))
    if op is _sre.NOT_LITERAL:
        return frozenset(c for c in _SAMPLES if not _same(c, chr(av), fold))
    if op is _sre.ANY:
        return frozenset(c for c in _SAMPLES if dotall or c != "\n")
    if op is _sre.IN:
        return frozenset(c for c in _SAMPLES if _in_set(c, av, fold))
    if op in _REPEATS:
        return _takes(av[2], fold, dotall)
    if op is _sre.SUBPATTERN:
        return _takes(av[3], fold or bool(av[1] & _IGNORECASE), dotall)
    if op is _sre.BRANCH:
        return frozenset().union(*(_takes(b, fold, dotall) for b in av[1]))
    if op is _sre.ATOMIC_GROUP:
        return _takes(av, fold, dotall)
    return frozenset()  # anchors and lookarounds take no character


def _same(c: str, literal: str, fold: bool) -> bool:
    return c == literal or (fold and c.casefold() == literal.casefold())


def _in_set(c: str, items: list[tuple[Any, Any]], fold: bool) -> bool:
    negate = bool(items) and items[0][0] is _sre.NEGATE
    hit = False
    for op, av in items:
        if op is _sre.LITERAL:
            hit = _same(c, chr(av), fold)
        elif op is _sre.RANGE:
            hit = av[0] <= ord(c) <= av[1] or (
                fold and any(av[0] <= ord(v) <= av[1] for v in {c.lower(), c.upper()} if len(v) == 1)
            )
        elif op is _sre.CATEGORY:
            hit = _category(c, av)
        if hit:
            break
    return hit != negate


def _category(c: str, code: Any) -> bool:
    name = str(code)
    if "DIGIT" in name:
        found = c.isdecimal()
    elif "SPACE" in name:
        found = c.isspace()
    elif "WORD" in name:
        found = c.isalnum() or c == "_"
    else:
        return True  # a category this does not know: assume it takes anything
    return found != ("NOT" in name)


def _walk(sub: Any, *, repeated: bool, fold: bool, dotall: bool) -> str | None:
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
                fault = _walk(body, repeated=True, fold=fold, dotall=dotall)
            else:
                fault = _walk(body, repeated=repeated, fold=fold, dotall=dotall)
        elif op is _sre.SUBPATTERN:
            flags = av[1]
            fault = _walk(av[3], repeated=repeated, fold=fold or bool(flags & _IGNORECASE), dotall=dotall)
        elif op is _sre.ATOMIC_GROUP:
            fault = _walk(av, repeated=repeated, fold=fold, dotall=dotall)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            fault = _walk(av[1], repeated=repeated, fold=fold, dotall=dotall)
        elif op is _sre.BRANCH:
            branches = av[1]
            if repeated and not _disjoint([_starts(b, fold, dotall) for b in branches]):
                return (
                    "the alternatives of a repeated group must start with different characters"
                    " (overlapping ones backtrack exponentially)"
                )
            for branch in branches:
                fault = fault or _walk(branch, repeated=repeated, fold=fold, dotall=dotall)
        if fault is not None:
            return fault
    return None


def _starts(sub: Any, fold: bool, dotall: bool) -> frozenset[str]:
    """The sample characters a match of ``sub`` may start with: what its leading items take, up to and
    including the first that must take one."""
    found: set[str] = set()
    for op, av in _flat(sub.data):
        found |= _takes_item(op, av, fold, dotall)
        width = _width(op, av)
        if width is not None and width[0] > 0:
            break
    return frozenset(found)


def _disjoint(starts: list[frozenset[str]]) -> bool:
    seen: set[str] = set()
    for chars in starts:
        if not chars or chars & seen:  # an alternative that may start with nothing overlaps any other
            return False
        seen |= chars
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
