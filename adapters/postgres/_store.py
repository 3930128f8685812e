"""Opening a PostgreSQL database from a ``postgresql://`` URL, and handing out its connections."""

from __future__ import annotations

import os
import re
import select
import threading
import weakref
from contextlib import suppress
from time import monotonic
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import cattrs
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import ConnStatus, TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ordercore.errors import InvalidValue, StoreUnavailable, UnknownStore
from ordercore.inventory import NodeStates, StockPosition
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ordercore.order import Order
from ordercore.serialization import make_converter
from ordercore.storage import StoredJson, VersionedCopies, node_states_copies
from ordercore.values import OrderId
from ordercore_adapters._sql import PLAIN_NAME
from ordercore_adapters._urls import masked
from ordercore_adapters.postgres._schema import DEFAULT_SCHEMA, Migration, ensure_schema
from ordercore_adapters.postgres._unit_of_work import PostgresUnitOfWork, PreparedStatements

__all__ = ["PostgresStore", "PostgresTarget", "migrate", "open_store", "parse_url"]

_SCHEMES = ("postgresql", "postgres")
_URL_FORMS = (
    "postgresql://user@host:port/dbname,"
    " optionally with ?schema=NAME&pool_size=N&prepare=false&lock_timeout=5s"
)
_CONNECT_TIMEOUT_S = 10
#: how long connect() waits for a pooled connection before asking the pool to connect now, and how long
#: the pool keeps retrying one failed connection attempt (with its own pauses) before giving it up
_WAIT_SLICE_S = 0.5
_RECONNECT_S = 1.0
#: how long a statement waits for a row or table lock another session holds before the server gives up
#: (and the transaction, rolled back, is retryable), unless the URL or the server's settings say otherwise:
#: as long as a SQLite store waits for the write lock
DEFAULT_LOCK_TIMEOUT_MS = 5_000
_MAX_LOCK_TIMEOUT_MS = 2_147_483_647  # the server's limit
_DURATION = re.compile(r"([0-9]{1,10})(ms|s|min)?")
_UNIT_MS = {"ms": 1, None: 1, "s": 1_000, "min": 60_000}
#: TCP settings for a connection whose peer vanished without closing it (a network cut, a host gone):
#: keepalive probes after 15 s of silence, every 5 s, 3 unanswered end it; data unacknowledged for 30 s
#: ends it too. Without them a unit of work would wait on such a connection for hours (the system's
#: keepalive default is two hours). Any of them given in the URL is kept.
_TCP_DEFAULTS = {
    "keepalives": "1",
    "keepalives_idle": "15",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
_TCP_USER_TIMEOUT_MS = "30000"  # libpq 12 and later
DEFAULT_POOL_SIZE = 8
_MAX_POOL_SIZE = 1000
_KEPT_ORDERS = 4_096  # decoded orders kept, by version, so that an unchanged row is not decoded again
_KEPT_POSITIONS = 20_000  # decoded stock positions kept likewise
_CHECK_IDLE_S = 2.0  # a pooled connection idle longer than this is checked with a round trip before use
#: the client encoding of every connection the store opens: its text and JSON travel as UTF-8, whatever
#: ``PGCLIENTENCODING`` or the server's default say (a URL naming another is refused)
_CLIENT_ENCODING = "UTF8"
_UTF8_NAMES = ("utf8", "unicode")  # as the server reads an encoding's name: letters and digits, any case
_WHOLE = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() takes '²', which int() refuses
_PASSWORD_IN_CONNINFO = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)")
_poll = getattr(select, "poll", None)  # not on every system (Windows has none)


class PostgresTarget(NamedTuple):
    """Where a ``postgresql://`` URL points: a libpq conninfo, the schema to use, how many connections
    the store may keep open at most (``?pool_size=``) and whether it uses prepared statements
    (``?prepare=false`` turns them off, for a pooler that hands each transaction another session)."""

    conninfo: str
    schema: str
    pool_size: int = DEFAULT_POOL_SIZE
    prepare: bool = True
    #: milliseconds a statement waits for a lock (``?lock_timeout=``, 0: no limit); None when the URL
    #: names none: then the server's setting for the session, or :data:`DEFAULT_LOCK_TIMEOUT_MS` where that
    #: sets no limit
    lock_timeout_ms: int | None = None


def _check_ports(netloc: str) -> None:
    """Raise ValueError unless every host of ``netloc`` (libpq takes several, ``h1:5432,h2:5433``, and
    tries them in turn) has no port or a port number."""
    for host in netloc.rpartition("@")[2].split(","):
        _, colon, port = host.rpartition("]")[2].rpartition(":")  # past an IPv6 address's brackets
        if colon and port and not (_WHOLE.fullmatch(port) and 0 < int(port) <= 65535):
            raise ValueError(f"port {port!r} of {host!r} is not a number from 1 to 65535")


def parse_url(url: str) -> PostgresTarget:
    """Split a ``postgresql://`` (or ``postgres://``, ``postgresql+driver://``) URL into a conninfo for
    psycopg and the schema named by ``?schema=`` (default ``ordercore``); other query options go to libpq."""
    if not isinstance(url, str) or "://" not in url:
        shown = masked(url) if isinstance(url, str) else url
        raise UnknownStore(f"store URL {shown!r} has no scheme (expected {_URL_FORMS})")
    scheme, rest = url.split("://", 1)
    if scheme.split("+", 1)[0].lower() not in _SCHEMES:
        raise UnknownStore(f"store URL {masked(url)!r} is not a postgresql URL (expected {_URL_FORMS})")
    try:
        parts = urlsplit("postgresql://" + rest)
        _check_ports(parts.netloc)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as e:
        raise InvalidValue(
            f"is malformed: {e} (expected {_URL_FORMS})", field="url", value=masked(url)
        ) from e
    if parts.fragment:
        raise InvalidValue(f"has a fragment (expected {_URL_FORMS})", field="url", value=masked(url))
    schemas = [value for key, value in query if key == "schema"]
    if len(schemas) > 1:
        raise InvalidValue(
            f"names more than one schema (expected {_URL_FORMS})", field="url", value=masked(url)
        )
    schema = schemas[0] if schemas else DEFAULT_SCHEMA
    if not PLAIN_NAME.fullmatch(schema):
        raise InvalidValue(
            f"schema must be a plain identifier: letters, digits, underscores, at most 63 (expected {_URL_FORMS})",
            field="url",
            value=masked(url),
        )
    sizes = [value for key, value in query if key == "pool_size"]
    pool_size = DEFAULT_POOL_SIZE
    if sizes:
        if len(sizes) > 1 or not _WHOLE.fullmatch(sizes[0]) or not 1 <= int(sizes[0]) <= _MAX_POOL_SIZE:
            raise InvalidValue(
                f"pool_size must be one whole number from 1 to {_MAX_POOL_SIZE} (expected {_URL_FORMS})",
                field="url",
                value=masked(url),
            )
        pool_size = int(sizes[0])
    prepares = [value for key, value in query if key == "prepare"]
    if len(prepares) > 1 or (prepares and prepares[0] not in ("true", "false")):
        raise InvalidValue(
            f"prepare must be true or false, once (expected {_URL_FORMS})", field="url", value=masked(url)
        )
    prepare = not prepares or prepares[0] == "true"
    timeouts = [value for key, value in query if key == "lock_timeout"]
    lock_timeout_ms = None
    if timeouts:
        found = _DURATION.fullmatch(timeouts[0].strip()) if len(timeouts) == 1 else None
        lock_timeout_ms = int(found.group(1)) * _UNIT_MS[found.group(2)] if found else None
        if lock_timeout_ms is None or lock_timeout_ms > _MAX_LOCK_TIMEOUT_MS:
            raise InvalidValue(
                f"lock_timeout must be one duration such as 5s, 500ms or 1min, 0 for no limit (expected {_URL_FORMS})",
                field="url",
                value=masked(url),
            )
    ours = ("schema", "pool_size", "prepare", "lock_timeout")
    options = [(key, value) for key, value in query if key not in ours]
    # percent-encoded as libpq decodes it: a space as %20, never as + (libpq would keep the +); put
    # together by hand, since urlunsplit drops the // of a URL without a host (postgresql:///db, the
    # local server's socket), which libpq then cannot read
    query_text = urlencode(options, quote_via=quote)
    conninfo = f"postgresql://{parts.netloc}{parts.path}" + (f"?{query_text}" if query_text else "")
    _conninfo_params(conninfo, field="url", shown=masked(url), hint=f" (expected {_URL_FORMS})")
    return PostgresTarget(conninfo, schema, pool_size, prepare, lock_timeout_ms)


class PostgresStore:
    """A PostgreSQL schema holding orders, stock positions with their ledger, and the outbox.

    Connections come from a pool (``psycopg_pool``) the store opens on first use: each unit of work takes
    one on first use and gives it back when the unit ends, so units never share a session. Every pooled
    connection is autocommit with the store's schema as its search path (set once, when it is opened). One
    idle for more than a couple of seconds, or one the server wrote to while it was idle (as it does when
    it closes a session), is checked with a round trip before it is handed out (a dead one is replaced);
    one in use moments ago is only checked locally, which saves a round trip per unit of work under load.
    A connection lost silently in between fails that unit with ``StoreUnavailable`` and is dropped, so the
    next unit gets a live one. One given back inside a transaction is rolled back, or dropped. A process forked from one using the store opens its own pool. :meth:`close`
    closes the pool and every connection still handed out.

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
        pool_size: int = DEFAULT_POOL_SIZE,
        prepare: bool = True,
        lock_timeout_ms: int | None = None,
    ) -> None:
        if not _whole_in(pool_size, 1, _MAX_POOL_SIZE):
            raise InvalidValue(
                f"must be a whole number of connections from 1 to {_MAX_POOL_SIZE}",
                field="pool_size",
                value=pool_size,
            )
        if lock_timeout_ms is not None and not _whole_in(lock_timeout_ms, 0, _MAX_LOCK_TIMEOUT_MS):
            raise InvalidValue(
                f"must be None or whole milliseconds from 0 (no limit) to {_MAX_LOCK_TIMEOUT_MS}",
                field="lock_timeout_ms",
                value=lock_timeout_ms,
            )
        if not isinstance(schema, str) or not PLAIN_NAME.fullmatch(schema):
            # the server would cut a longer name to 63 characters, while the advisory locks use it whole
            raise InvalidValue(
                "must be a plain identifier: letters, digits, underscores, not starting with a digit,"
                " at most 63",
                field="schema",
                value=schema,
            )
        if not isinstance(prepare, bool):
            raise InvalidValue("must be True or False", field="prepare", value=prepare)
        given = _conninfo_params(conninfo)
        self.conninfo = conninfo
        self.schema = schema
        self.lifecycle = lifecycle
        self.pool_size = pool_size
        self.converter: cattrs.Converter = make_converter(lifecycle)
        self.json = StoredJson(self.converter)
        self.orders_cache: VersionedCopies[OrderId, Order] = VersionedCopies(Order.clone, _KEPT_ORDERS)
        self.stock_cache: VersionedCopies[tuple[str, str], StockPosition] = VersionedCopies(
            StockPosition.clone, _KEPT_POSITIONS
        )
        self.node_states_cache: VersionedCopies[str, NodeStates] = node_states_copies()
        #: the statements commits run prepared, and which each pooled connection has prepared; None when
        #: the store prepares nothing (``prepare=False``: neither its commits nor psycopg's repeated reads)
        self.statements: PreparedStatements | None = PreparedStatements() if prepare else None
        self.closed = False
        self._display = _redact(conninfo, schema)
        self._lock = threading.Lock()
        self._pool: ConnectionPool[Any] | None = None
        self._pid = os.getpid()
        self._live: dict[psycopg.Connection[Any], ConnectionPool[Any]] = {}
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        kwargs: dict[str, Any] = {"autocommit": True, "client_encoding": _CLIENT_ENCODING}
        if not prepare:
            kwargs["prepare_threshold"] = None  # psycopg prepares no repeated query either
        if "connect_timeout" not in given:
            kwargs["connect_timeout"] = _CONNECT_TIMEOUT_S
        kwargs.update({k: v for k, v in _TCP_DEFAULTS.items() if k not in given})
        if "tcp_user_timeout" not in given and psycopg.pq.version() >= 120000:
            kwargs["tcp_user_timeout"] = _TCP_USER_TIMEOUT_MS
        self._connect_kwargs = kwargs
        self._set_path = sql.SQL("SET search_path TO {}").format(sql.Identifier(schema))
        # the URL's lock timeout, or the default where the session has no limit of its own (from the
        # server's, the database's or the role's settings, or the URL's libpq options)
        self._set_lock_timeout = (
            sql.SQL("SELECT set_config('lock_timeout', {}, false)").format(sql.Literal(str(lock_timeout_ms)))
            if lock_timeout_ms is not None
            else sql.SQL(
                "SELECT CASE WHEN current_setting('lock_timeout') = '0'"
                " THEN set_config('lock_timeout', {}, false) END"
            ).format(sql.Literal(str(DEFAULT_LOCK_TIMEOUT_MS)))
        )
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
            target.conninfo,
            schema=target.schema,
            lifecycle=lifecycle,
            migrate=migrate,
            dry_run=dry_run,
            pool_size=target.pool_size,
            prepare=target.prepare,
            lock_timeout_ms=target.lock_timeout_ms,
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
        """Refuse further work, close the pool and every connection still handed out; units still in use
        then fail with StoreUnavailable."""
        with self._lock:
            self.closed = True
            pool, self._pool = self._pool, None
            live, self._live = self._live, {}
            ours = self._pid == os.getpid()
        if not ours:
            return  # the pool and connections belong to the parent process: closing them here would break its sessions
        for conn in live:
            conn.close()
        if pool is not None:
            pool.close(timeout=1.0)

    def check_open(self) -> None:
        if self.closed:
            raise StoreUnavailable(f"the store {self.url} is closed")

    def connect(self) -> psycopg.Connection[Any]:
        """A pooled connection for one unit of work; give it back with :meth:`release`.

        It waits at most ``connect_timeout`` seconds, in slices: after each slice with no connection, the
        pool is asked to connect now (``ConnectionPool.check``, a no-op while it is trying). Left to
        itself, a pool whose server went away retries with growing pauses (1, 2, 4... seconds), so a
        server back after an outage would wait for the pool's next try; this way it is found within a
        slice or so."""
        pool = self._current_pool()
        deadline = monotonic() + float(self._connect_kwargs.get("connect_timeout", _CONNECT_TIMEOUT_S))
        while True:
            try:
                conn: psycopg.Connection[Any] = pool.getconn(
                    timeout=max(0.01, min(_WAIT_SLICE_S, deadline - monotonic()))
                )
                break
            except PoolTimeout as e:
                if monotonic() < deadline:
                    # none came: let the pool try to connect now (a check of one of its own connections
                    # that fails is the pool's to handle: it replaces that connection)
                    with suppress(psycopg.Error):
                        pool.check()
                    continue
                self.check_open()
                raise StoreUnavailable(f"cannot connect to {self.url}: {type(e).__name__}: {e}") from e
            except psycopg.Error as e:
                self.check_open()
                raise StoreUnavailable(f"cannot connect to {self.url}: {type(e).__name__}: {e}") from e
        with self._lock:
            if not self.closed and pool is self._pool:
                self._live[conn] = pool
                return conn
        self._give_back(pool, conn)
        raise StoreUnavailable(f"the store {self.url} is closed")

    def release(self, conn: psycopg.Connection[Any]) -> None:
        """Give back a connection from :meth:`connect`: to its pool, which rolls back any transaction
        left open (or drops the connection); closed, if the store or its pool is."""
        with self._lock:
            pool = self._live.pop(conn, None)
            ours = self._pid == os.getpid()
        if pool is not None:
            self._last_used[conn] = monotonic()
            self._give_back(pool, conn)
        elif ours:
            conn.close()

    @staticmethod
    def _give_back(pool: ConnectionPool[Any], conn: psycopg.Connection[Any]) -> None:
        # reset here, in the caller's thread: a pool given a reset function hands every returned
        # connection to a worker thread of its own to run it, and the next unit then waits for that thread
        # (three thread switches per order, and the lock they share, at every unit of work)
        try:
            _reset(conn)
        except psycopg.Error:  # a connection that cannot be reset is closed, and the pool replaces it
            conn.close()
        try:
            pool.putconn(conn)
        except Exception:  # a connection the pool will not take back is only closed
            conn.close()

    def _current_pool(self) -> ConnectionPool[Any]:
        """The pool of this process, opened on first use (and anew in a forked child, which must not
        share its parent's connections)."""
        with self._lock:
            if self.closed:
                raise StoreUnavailable(f"the store {self.url} is closed")
            pid = os.getpid()
            if self._pool is not None and self._pid == pid:
                return self._pool
            if self._pid != pid:
                # forked: the parent's pool and connections are the parent's; forget them without closing
                self._pool, self._live, self._pid = None, {}, pid
            pool: ConnectionPool[Any] = ConnectionPool(
                self.conninfo,
                kwargs=dict(self._connect_kwargs),
                min_size=1,
                max_size=self.pool_size,
                open=False,
                configure=self._configure,
                check=self._check,
                # a failed connection attempt is given up soon: connect() asks for a new one in its place
                # while a unit waits, rather than the pool pausing longer and longer between tries
                reconnect_timeout=_RECONNECT_S,
                name=f"ordercore-{self.schema}-{pid}",
            )
            pool.open(wait=False)
            self._pool = pool
            return pool

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Run by the pool before handing ``conn`` out: a round trip (``ConnectionPool.check_connection``)
        for a connection never used or idle for more than :data:`_CHECK_IDLE_S`, or one the server sent
        something to while it was idle; otherwise only its local state and a non-blocking look at its
        socket. Raising makes the pool replace the connection."""
        last = self._last_used.get(conn)
        if last is None or monotonic() - last > _CHECK_IDLE_S:
            ConnectionPool.check_connection(conn)
        elif conn.closed or conn.pgconn.status != ConnStatus.OK:
            raise psycopg.OperationalError("the connection is closed or broken")
        elif _input_waiting(conn):
            # an idle connection has nothing to say, unless the server is closing it (a shutdown, a
            # terminated backend): then the round trip tells
            ConnectionPool.check_connection(conn)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Make a new pooled connection use the store's schema and lock timeout (once, for the
        connection's life)."""
        conn.execute(self._set_path)
        conn.execute(self._set_lock_timeout, prepare=False)

    def _open(self) -> psycopg.Connection[Any]:
        """An autocommit connection whose search path is the store's schema: reads outside a transaction
        see the latest committed data, and a commit opens its own transaction."""
        try:
            conn = psycopg.connect(self.conninfo, **self._connect_kwargs)
        except psycopg.Error as e:
            raise StoreUnavailable(f"cannot connect to {self.url}: {e}") from e
        try:
            # not the lock timeout: opening a schema waits for another process opening or upgrading it
            conn.execute(self._set_path)
        except psycopg.Error as e:
            conn.close()
            raise StoreUnavailable(f"cannot prepare a connection to {self.url}: {e}") from e
        return conn


def _input_waiting(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server sent ``conn`` something (or hung up), by a look at its socket that does not wait:
    ``poll``, which takes any descriptor (``select`` refuses those from 1024 on, common in a busy server
    process), where the system has it. True when the look fails, for whatever reason: a round trip tells."""
    try:
        fd = conn.fileno()
        if _poll is None:
            return bool(select.select([fd], [], [], 0)[0])
        poller = _poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    except Exception:  # any failure to look means a round trip, never a refused connection
        return True


def _conninfo_params(
    conninfo: object, *, field: str = "conninfo", shown: str | None = None, hint: str = ""
) -> dict[str, Any]:
    """The parameters of a libpq connection string (``host=h dbname=d`` or a ``postgresql://`` URL), or
    InvalidValue naming ``field`` (the value ``shown``, by default the string with its password masked;
    ``hint`` ends the message): not a string, not one libpq reads, or asking for an encoding other than
    UTF-8."""
    if not isinstance(conninfo, str):
        raise InvalidValue(
            "must be a libpq connection string or a postgresql:// URL", field=field, value=conninfo
        )
    value = _masked_conninfo(conninfo) if shown is None else shown
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as e:
        raise InvalidValue(
            f"is not a valid connection string: {_masked_conninfo(str(e).strip())}{hint}",
            field=field,
            value=value,
        ) from e
    encoding = params.get("client_encoding")
    if encoding is not None and not _is_utf8(str(encoding)):
        raise InvalidValue(
            f"client_encoding must be {_CLIENT_ENCODING}: the store's text and JSON travel as UTF-8, and"
            f" another encoding cannot carry every character they hold{hint}",
            field=field,
            value=value,
        )
    return params


def _is_utf8(encoding: str) -> bool:
    """Whether the server reads ``encoding`` as UTF8 (``UTF8``, ``utf-8``, ``Unicode``...: it ignores case
    and all but letters and digits)."""
    return re.sub(r"[^0-9a-z]", "", encoding.lower()) in _UTF8_NAMES


def _masked_conninfo(text: str) -> str:
    """``text`` with its password, of a URL or of a ``password=...`` setting, shown as ``***``."""
    return masked(text) if "://" in text else _PASSWORD_IN_CONNINFO.sub(r"\1***", text)


def _whole_in(value: object, low: int, high: int) -> bool:
    """Whether ``value`` is an int (not a bool) from ``low`` to ``high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _reset(conn: psycopg.Connection[Any]) -> None:
    """Run on a connection given back to the pool: it must hold no transaction and stay autocommit. A
    closed or broken one is left as it is, for the pool to replace."""
    status = conn.info.transaction_status
    if status == TransactionStatus.UNKNOWN:
        return
    if status != TransactionStatus.IDLE:
        conn.rollback()
    if not conn.autocommit:
        conn.autocommit = True


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
