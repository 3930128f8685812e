"""What the SQL adapters share: checks of the names and ids they put into statements, and of what an
unversioned database already holds."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ordercore.errors import InvalidValue, StoreUnavailable

__all__ = ["OWN_TABLES", "PLAIN_NAME", "check_event_id", "check_table", "check_unversioned"]

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


#: every table a version of the schema creates (the same names in both SQL adapters)
OWN_TABLES = frozenset(
    {
        "idempotency_keys",
        "node_capacity",
        "node_states",
        "node_states_version",
        "order_backorders",
        "order_digests",
        "order_holds",
        "orders",
        "outbox",
        "stock",
        "stock_ledger",
        "stock_reservations",
    }
)
_NAMED = 5  # the tables a refusal names at most


def check_unversioned(where: str, names: Iterable[str], *, stamp: str) -> None:
    """Refuse (``StoreUnavailable``) a database that has no schema version but holds tables or views.

    Every version of the schema is created in one transaction with its version stamp (``stamp``: what holds
    the version), so a database without one that holds only ordercore's tables lost its stamp: which
    version its tables are at cannot be told, and migrating it from scratch would fail half-way or, worse,
    write rows in the wrong shape (tables of another application that happen to have these names look the
    same). One that holds other tables is another application's. Either is refused, naming a few of the
    tables; only an empty one is adopted."""
    found = sorted(names)
    if not found:
        return
    foreign = [name for name in found if name not in OWN_TABLES]
    shown_of = foreign or found
    shown = ", ".join(shown_of[:_NAMED]) + (
        f" and {len(shown_of) - _NAMED} more" if len(shown_of) > _NAMED else ""
    )
    if foreign:
        raise StoreUnavailable(
            f"{where} is not an ordercore database: it has no schema version and holds tables that are"
            f" not ordercore's ({shown})"
        )
    raise StoreUnavailable(
        f"{where} holds tables with ordercore's names ({shown}) but no schema version: its {stamp} was lost"
        " or reset, or they are another application's; the version they are at is not known, so it is"
        " left as it is (restore the version it had, or restore it from a backup)"
    )
