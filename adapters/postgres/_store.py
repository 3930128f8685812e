"""Opening a PostgreSQL database from a ``postgresql://`` URL, and handing out its connections."""

from __future__ import annotations

import re
import threading
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cattrs
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ordercore.errors import InvalidValue, StoreUnavailable, UnknownStore
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ordercore.serialization import make_converter
from ordercore_adapters.postgres._schema import DEFAULT_SCHEMA, Migration, ensure_schema
from ordercore_adapters.postgres._unit_of_work import PostgresUnitOfWork

__all__ = ["PostgresStore", "PostgresTarget", "migrate", "open_store", "parse_url"]

_SCHEMES = ("postgresql", "postgres")
_URL_FORMS = "postgresql://user@host:port/dbname, optionally with ?schema=NAME"
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_CONNECT_TIMEOUT_S = 10


class PostgresTarget(NamedTuple):
    """Where a ``postgresql://`` URL points: a libpq conninfo and the schema to use."""

    conninfo: str
    schema: str


def parse_url(url: str) -> PostgresTarget:
    """Split a ``postgresql://`` (or ``postgres://``, ``postgresql+driver://``) URL into a conninfo for
    psycopg and the schema named by ``?schema=`` (default ``ordercore``); other query options go to libpq."""
    if not isinstance(url, str) or "://" not in url:
        raise UnknownStore(f"store URL {url!r} has no scheme (expected {_URL_FORMS})")
    scheme, rest = url.split("://", 1)
    if scheme.split("+", 1)[0].lower() not in _SCHEMES:
        raise UnknownStore(f"store URL {url!r} is not a postgresql URL (expected {_URL_FORMS})")
    try:
        parts = urlsplit("postgresql://" + rest)
        parts.port  # noqa: B018  # raises ValueError on a port that is not a number
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as e:
        raise InvalidValue(f"is malformed: {e} (expected {_URL_FORMS})", field="url", value=url) from e
    if parts.fragment:
        raise InvalidValue(f"has a fragment (expected {_URL_FORMS})", field="url", value=url)
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise InvalidValue(f"names more than one schema (expected {_URL_FORMS})", field="url", value=url)
    schema = schemas[0] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise InvalidValue(
            f"schema must be a plain identifier: letters, digits, underscores, at most 63 (expected {_URL_FORMS})",
            field="url",
            value=url,
        )
    options = [(key, value) for key, value in query if key != "schema"]
    conninfo = urlunsplit(parts._replace(query=urlencode(options)))
    try:
        conninfo_to_dict(conninfo)
    except psycopg.Error as e:
        raise InvalidValue(
            f"is not a valid connection string: {e} (expected {_URL_FORMS})", field="url"
        ) from e
    return PostgresTarget(conninfo, schema)


class PostgresStore:
    """A PostgreSQL schema holding orders, stock positions with their ledger, and the outbox.

    Each unit of work opens its own connection on first use and closes it when the unit ends, so units never
    share a session; the store remembers the connections it handed out and closes them in :meth:`close`.

    A new schema is created at the current schema version; one at an older version is refused
    (``StoreUnavailable``) unless ``migrate`` is true, which applies the pending steps in one transaction
    (:attr:`migration` says what was found and done). With ``dry_run`` (and ``migrate``) the steps are only
    worked out and the store is closed: nothing is changed.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
        migrate: bool = False,
        dry_run: bool = False,
    ) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.lifecycle = lifecycle
        self.converter: cattrs.Converter = make_converter(lifecycle)
        self.closed = False
        self._display = _redact(conninfo, schema)
        self._lock = threading.Lock()
        self._live: set[psycopg.Connection[Any]] = set()
        conn = self._open()
        try:
            self.migration: Migration = ensure_schema(
                conn, schema, self.url, self.converter, migrate=migrate, dry_run=dry_run and migrate
            )
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot prepare {self.url}: {type(e).__name__}: {e}") from e
        finally:
            conn.close()
        if dry_run:
            self.close()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
        migrate: bool = False,
        dry_run: bool = False,
    ) -> PostgresStore:
        target = parse_url(url)
        return cls(
            target.conninfo, schema=target.schema, lifecycle=lifecycle, migrate=migrate, dry_run=dry_run
        )

    @property
    def url(self) -> str:
        """The store's URL with any password masked, for messages."""
        return self._display

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    def unit_of_work(self) -> PostgresUnitOfWork:
        self.check_open()
        return PostgresUnitOfWork(self)

    def close(self) -> None:
        """Refuse further work and close every connection still held; units still in use then fail with
        StoreUnavailable."""
        with self._lock:
            self.closed = True
            live, self._live = self._live, set()
        for conn in live:
            conn.close()

    def check_open(self) -> None:
        if self.closed:
            raise StoreUnavailable(f"the store {self.url} is closed")

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection for one unit of work; give it back with :meth:`release`."""
        self.check_open()
        conn = self._open()
        with self._lock:
            if not self.closed:
                self._live.add(conn)
                return conn
        conn.close()
        raise StoreUnavailable(f"the store {self.url} is closed")

    def release(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            self._live.discard(conn)
        conn.close()

    def _open(self) -> psycopg.Connection[Any]:
        """An autocommit connection whose search path is the store's schema: reads outside a transaction
        see the latest committed data, and a commit opens its own transaction."""
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in conninfo_to_dict(self.conninfo):
            kwargs["connect_timeout"] = _CONNECT_TIMEOUT_S
        try:
            conn = psycopg.connect(self.conninfo, **kwargs)
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to {self.url}: {e}") from e
        try:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        except psycopg.Error as e:
            conn.close()
            raise StoreUnavailable(f"cannot prepare a connection to {self.url}: {e}") from e
        return conn


def _redact(conninfo: str, schema: str) -> str:
    """A URL naming the server, user, database and schema of ``conninfo``, never its password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        params = {}
    user = f"{params['user']}@" if params.get("user") else ""
    host = str(params.get("host") or "")
    port = f":{params['port']}" if params.get("port") else ""
    dbname = str(params.get("dbname") or "")
    return f"postgresql://{user}{host}{port}/{dbname}?schema={schema}"


def open_store(url: str, *, lifecycle: Lifecycle = DEFAULT_LIFECYCLE, migrate: bool = False) -> PostgresStore:
    """Entry point for ``postgresql://`` URLs: connects, and creates the schema and tables if missing; an
    older schema is opened only with ``migrate``, which upgrades it."""
    return PostgresStore.from_url(url, lifecycle=lifecycle, migrate=migrate)


def migrate(url: str, *, dry_run: bool = False, lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> Migration:
    """Bring the schema ``url`` names to the current schema version (with ``dry_run``, only work out the
    steps) and say what was found and done."""
    store = PostgresStore.from_url(url, lifecycle=lifecycle, migrate=True, dry_run=dry_run)
    store.close()
    return store.migration
