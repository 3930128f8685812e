"""Statements with their values bound client-side, for the one text a commit sends (see ``_Commit``).

psycopg's ``ClientCursor.mogrify`` binds any value psycopg can adapt, but it pays for that generality on
every call: a commit binds some fourteen statements, most of their values plain strings (ids, JSON
bodies) and ints (versions), and binding them with it took twice as long as the literals written here
(191 against 89 microseconds per order, on the statements of 200 orders of the storage benchmark).
:func:`binder` binds the values a store writes (``str``, ``int``, ``bool``, ``None``, aware ``datetime``
with a whole-minute offset, ``date`` and finite ``Decimal``) itself, as SQL literals that PostgreSQL
reads back as the very values psycopg's would, and hands any statement holding another value to
``mogrify`` whole.

A string literal is ``'...'`` with each ``'`` doubled, which is exact only where backslashes are plain
characters (``standard_conforming_strings``, on by default since PostgreSQL 9.1) and the client encoding
is UTF-8 (no multi-byte character can end in a quote byte): the fast binder is used only on a connection
that reports both, else every statement goes to ``mogrify``. A string holding NUL, which no PostgreSQL
text can hold, goes to ``mogrify`` too, which refuses it with psycopg's own error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import psycopg

Binder = Callable[[str, Sequence[Any]], str]


def binder(conn: psycopg.Connection[Any]) -> Binder:
    """How statements are bound on ``conn``: the fast binder where its settings allow, else
    ``mogrify``."""
    info = conn.info
    if info.encoding != "utf-8" or info.parameter_status("standard_conforming_strings") != "on":
        return psycopg.ClientCursor(conn).mogrify

    def mogrify(query: str, params: Sequence[Any]) -> str:
        return psycopg.ClientCursor(conn).mogrify(query, params)

    def bind(query: str, params: Sequence[Any]) -> str:
        literals = []
        for value in params:
            text = literal(value)
            if text is None:
                return mogrify(query, params)
            literals.append(text)
        if "%" in query.replace("%s", "").replace("%%", ""):  # a placeholder of another kind
            return mogrify(query, params)
        return query % tuple(literals)

    return bind


def literal(value: Any) -> str | None:
    """``value`` as an SQL literal (on a connection with standard conforming strings, in UTF-8), or None
    when it is not one of the types bound here."""
    kind = type(value)
    if kind is str:
        text: str = value
        if "\x00" in text:
            return None
        return "'" + text.replace("'", "''") + "'"
    if kind is int:
        return str(value) if value >= 0 else " " + str(value)  # a space: never "--", a comment
    if value is None:
        return "NULL"
    if kind is bool:
        return "true" if value else "false"
    if kind is datetime:
        offset = value.utcoffset()
        if offset is None or offset.seconds % 60 or offset.microseconds:
            return None  # naive, or an offset not every PostgreSQL reads: psycopg's own binding
        moment: datetime = value
        return "'" + moment.isoformat(sep=" ") + "'::timestamptz"
    if kind is date:
        day: date = value
        return "'" + day.isoformat() + "'::date"
    if kind is Decimal and value.is_finite():
        text = str(value)
        return text if text[0] != "-" else " " + text
    return None
