"""What the SQL adapters share: checks of the names and ids they put into statements."""

from __future__ import annotations

import re

from ordercore.errors import InvalidValue

__all__ = ["PLAIN_NAME", "check_event_id", "check_table"]

#: a name used as it is in SQL (a schema, a table): ASCII letters, digits and underscores, not starting with
#: a digit, at most 63 (PostgreSQL's limit)
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_table(table: object) -> str:
    """``table`` if it is a :data:`PLAIN_NAME`, else InvalidValue naming the field ``table``."""
    if not isinstance(table, str) or PLAIN_NAME.fullmatch(table) is None:
        raise InvalidValue(
            "must be a plain identifier: letters, digits, underscores, at most 63", field="table", value=table
        )
    return table


def check_event_id(event_id: object) -> str:
    """``event_id`` if it is a non-empty string, else InvalidValue naming the field ``event_id``."""
    if not isinstance(event_id, str) or not event_id:
        raise InvalidValue("must be a non-empty string", field="event_id", value=event_id)
    return event_id
