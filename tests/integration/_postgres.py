"""The PostgreSQL test server, shared by every integration test that needs one.

Without a server the tests skip with the reason; under ``CI=true`` a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

SERVER_URL = os.environ.get("ORDERCORE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    """A plain connection to the test server, or a skip (a failure on CI) when it cannot be reached."""
    try:
        return psycopg.connect(SERVER_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        reason = f"PostgreSQL test server {SERVER_URL} is unreachable ({e}); set ORDERCORE_TEST_POSTGRES_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def schema_url(schema: str) -> str:
    separator = "&" if "?" in SERVER_URL else "?"
    return f"{SERVER_URL}{separator}schema={schema}"


def fresh_schema_url() -> Iterator[str]:
    """The URL of a fresh schema on the test server, dropped afterwards (use with ``yield from``)."""
    admin = admin_connection()
    schema = f"t_{uuid.uuid4().hex}"
    try:
        yield schema_url(schema)
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        admin.close()
