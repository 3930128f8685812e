"""Values PostgreSQL cannot store, and the InvalidValue a driver error over one becomes: text holding a NUL
character or an unpaired surrogate (neither ``text`` nor ``jsonb`` holds a NUL, and UTF-8 cannot write a
surrogate), and whole numbers beyond an ``INTEGER`` column's range."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, overload

import psycopg
from psycopg.types.json import Jsonb

from ordercore.errors import InvalidValue
from ordercore.storage import find_in_document
from ordercore.values import text_fault

__all__ = ["Statements", "refused"]

Statements = Iterable[tuple[str, Sequence[Any]]]

#: SQLSTATEs of text the server cannot hold: untranslatable_character (``jsonb`` refusing ``\u0000``) and
#: character_not_in_repertoire (``text`` refusing a NUL byte sent in binary)
_TEXT_STATES = ("22P05", "22021")
_OUT_OF_RANGE = "22003"  # numeric_value_out_of_range
_INTEGER = range(-(2**31), 2**31)
_NUL_REFUSED = "cannot contain NUL"  # psycopg's own refusal, before anything is sent (no SQLSTATE)

# which column a statement's n-th %s is: the column list of an INSERT (each row of its VALUES in turn), or
# the column compared with it (``version = %s``, ``node_id = ANY(%s)``)
_INSERT = re.compile(r"INSERT INTO \w+ \(([^)]*)\) VALUES \($")
_NEXT_VALUE = re.compile(r"(?:::\w+(?:\[\])?)?(?:, |\), \()")
_COMPARED = re.compile(r"(\w+)\s*(?:=|<=|>=|<|>)\s*(?:ANY\()?$")


@overload
def refused(
    error: UnicodeEncodeError, statements: Statements = (), *, writes: bool = False, field: str = "text"
) -> InvalidValue: ...
@overload
def refused(
    error: BaseException, statements: Statements = (), *, writes: bool = False, field: str = "text"
) -> InvalidValue | None: ...
def refused(
    error: BaseException, statements: Statements = (), *, writes: bool = False, field: str = "text"
) -> InvalidValue | None:
    """The InvalidValue ``error`` means when it says that a value cannot be stored: text PostgreSQL cannot
    hold (always), a number beyond its column (when ``writes``); None for any other error. The field is
    the first such value's among the ``statements`` run (a path inside a JSON body, such as
    ``holds[0].message``, or the column it goes to), else ``field`` (``quantity`` for a number)."""
    if _is_text_refusal(error):
        found = _first(statements, _unstorable_text, documents=True)
        if found is None:
            return InvalidValue(
                "holds a character PostgreSQL cannot store (a NUL or an unpaired surrogate)", field=field
            )
        path, text = found
        return InvalidValue(f"{_describe(str(text))}, which PostgreSQL cannot store", field=path, value=text)
    if writes and isinstance(error, psycopg.Error) and error.sqlstate == _OUT_OF_RANGE:
        found = _first(statements, _beyond_integer, documents=False)  # JSON holds any number
        path, number = found if found is not None else ("quantity", None)
        return InvalidValue(
            f"is beyond what PostgreSQL's INTEGER column holds ({_INTEGER.start} to {_INTEGER.stop - 1})",
            field=path,
            value=number,
        )
    return None


def _is_text_refusal(error: BaseException) -> bool:
    if isinstance(error, UnicodeEncodeError):
        return True
    if not isinstance(error, psycopg.DataError):
        return False
    return error.sqlstate in _TEXT_STATES or (error.sqlstate is None and _NUL_REFUSED in str(error))


def _describe(text: str) -> str:
    if "\x00" in text:
        return "holds a NUL character (U+0000)"
    lone = next((c for c in text if "\ud800" <= c <= "\udfff"), None)
    return "holds a character" if lone is None else f"holds an unpaired surrogate (U+{ord(lone):04X})"


def _unstorable_text(value: object) -> bool:
    return type(value) is str and text_fault(value) is not None


def _beyond_integer(value: object) -> bool:
    return type(value) is int and value not in _INTEGER


def _first(statements: Statements, bad: Any, *, documents: bool) -> tuple[str, object] | None:
    """The path and value of the first value ``bad`` says cannot be stored, in the order they were bound
    (with ``documents``, within JSON bodies too)."""
    for query, params in statements:
        for column, value in zip(_columns(query, len(params)), params, strict=True):
            found = _search(value, bad, documents=documents)
            if found is not None:
                return found[0] or column or "text", found[1]
    return None


def _search(value: object, bad: Any, *, documents: bool) -> tuple[str, object] | None:
    """``value``, or the first part of it that is ``bad``, with its path: a JSON body (text or Jsonb) is
    searched within (with ``documents``), an array's items in turn (as the column's)."""
    if isinstance(value, Jsonb):
        return find_in_document(value.obj, bad) if documents else None
    if documents and isinstance(value, str) and value[:1] in ("{", "["):
        try:
            document = json.loads(value)
        except (ValueError, RecursionError):
            document = None
        found = None if document is None else find_in_document(document, bad)
        if found is not None:
            return found
    if isinstance(value, list | tuple):
        return next((f for item in value if (f := find_in_document(item, bad)) is not None), None)
    return find_in_document(value, bad)


def _columns(query: str, n_params: int) -> list[str | None]:
    """The column each of the ``n_params`` placeholders (``%s``) of ``query`` goes to, where it tells."""
    pieces = query.split("%s")
    insert = _INSERT.search(pieces[0])
    names = [c.strip() for c in insert.group(1).split(",")] if insert else []
    columns: list[str | None] = []
    in_values = bool(names)
    for i in range(n_params):
        before = pieces[i] if i < len(pieces) else ""  # the text before the i-th placeholder
        in_values = in_values and (i == 0 or _NEXT_VALUE.fullmatch(before) is not None)
        if in_values:
            columns.append(names[i % len(names)])
        else:
            compared = _COMPARED.search(before)
            columns.append(compared.group(1) if compared else None)
    return columns
