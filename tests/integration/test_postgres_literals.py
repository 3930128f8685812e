"""The PostgreSQL store's own client-side binding: every value it binds itself reaches the server as the
very value psycopg's ``mogrify`` would have sent, and whatever it does not bind goes to ``mogrify``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordercore_adapters.postgres._literals import binder, literal
from tests.integration._postgres import admin_connection


@pytest.fixture(scope="module")
def conn() -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    connection = admin_connection()
    yield connection
    connection.close()


def round_trip(conn: psycopg.Connection[tuple[Any, ...]], value: Any, sql_type: str) -> tuple[Any, Any]:
    """What the server reads from our literal and from psycopg's, cast to ``sql_type``."""
    ours = binder(conn)("SELECT (%s)::" + sql_type, (value,))
    theirs = psycopg.ClientCursor(conn).mogrify("SELECT (%s)::" + sql_type, (value,))
    row_ours, row_theirs = conn.execute(ours).fetchone(), conn.execute(theirs).fetchone()
    assert row_ours is not None and row_theirs is not None
    return row_ours[0], row_theirs[0]


TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=60)
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(TEXT | st.sampled_from(["'", "''", "\\", "\\'", "'; DROP TABLE x; --", "\\x27", "é☃\U0001f600"]))
def test_any_string_reaches_the_server_unchanged(
    conn: psycopg.Connection[tuple[Any, ...]], text: str
) -> None:
    ours, theirs = round_trip(conn, text, "text")
    assert ours == theirs == text


@SETTINGS
@given(st.integers(-(2**63), 2**63 - 1))
def test_any_int8_reaches_the_server_unchanged(
    conn: psycopg.Connection[tuple[Any, ...]], number: int
) -> None:
    ours, theirs = round_trip(conn, number, "int8")
    assert ours == theirs == number
    assert "--" not in binder(conn)("SELECT 1-%s", (number,))  # a negative value never starts a comment


@SETTINGS
@given(st.datetimes(timezones=OFFSETS))
def test_an_aware_moment_reaches_the_server_as_the_same_instant(
    conn: psycopg.Connection[tuple[Any, ...]], moment: datetime
) -> None:
    ours, theirs = round_trip(conn, moment, "timestamptz")
    assert ours == theirs == moment


@SETTINGS
@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.decimals(allow_nan=False, allow_infinity=False)
)
def test_a_finite_decimal_reaches_the_server_unchanged(
    conn: psycopg.Connection[tuple[Any, ...]], number: Decimal
) -> None:
    ours, theirs = round_trip(conn, number, "numeric")
    assert ours == theirs == number


def test_dates_booleans_and_null(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    assert round_trip(conn, date(2024, 2, 29), "date") == (date(2024, 2, 29),) * 2
    assert round_trip(conn, True, "bool") == (True, True)
    assert round_trip(conn, False, "bool") == (False, False)
    assert round_trip(conn, None, "text") == (None, None)


@pytest.mark.parametrize(
    "value",
    [
        "nul \x00 inside",  # no PostgreSQL text holds NUL: psycopg refuses it
        datetime(2024, 6, 1, 9, 0),  # naive
        datetime(2024, 6, 1, 9, 0, tzinfo=timezone(timedelta(seconds=30))),  # an offset with seconds
        Decimal("NaN"),
        b"bytes",
        1.5,
    ],
)
def test_what_it_does_not_bind_itself_goes_to_mogrify(
    conn: psycopg.Connection[tuple[Any, ...]], value: Any
) -> None:
    assert literal(value) is None
    bind = binder(conn)
    try:
        expected: str | type[Exception] = psycopg.ClientCursor(conn).mogrify("SELECT %s, %s", ("a'b", value))
    except psycopg.Error as e:
        expected = type(e)
    if isinstance(expected, str):
        assert bind("SELECT %s, %s", ("a'b", value)) == expected
    else:
        with pytest.raises(expected):
            bind("SELECT %s, %s", ("a'b", value))


def test_a_placeholder_of_another_kind_goes_to_mogrify(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    bind = binder(conn)
    assert bind("SELECT %s || '%%'", ("a",)) == "SELECT 'a' || '%'"
    assert bind("SELECT %b", ("a",)) == psycopg.ClientCursor(conn).mogrify("SELECT %b", ("a",))


def test_a_connection_without_standard_conforming_strings_binds_with_mogrify() -> None:
    from tests.integration._postgres import SERVER_URL

    with psycopg.connect(SERVER_URL, autocommit=True, options="-c standard_conforming_strings=off") as legacy:
        bind = binder(legacy)
        text = "back\\slash 'quote'"
        assert bind("SELECT %s", (text,)) == psycopg.ClientCursor(legacy).mogrify("SELECT %s", (text,))
        row = legacy.execute(bind("SELECT %s", (text,))).fetchone()
        assert row is not None and row[0] == text


def test_utc_is_bound_as_psycopg_binds_it(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    moment = datetime(2024, 6, 1, 9, 0, 0, 123, tzinfo=UTC)
    assert binder(conn)("SELECT %s", (moment,)) == psycopg.ClientCursor(conn).mogrify("SELECT %s", (moment,))


def test_the_test_server_gets_our_own_literals(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    # the fast binder is the one in use here: "'" doubled, no E'' string even with a backslash
    assert binder(conn)("SELECT %s", ("a\\'b",)) == "SELECT 'a\\''b'"
