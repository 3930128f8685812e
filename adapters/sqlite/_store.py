"""Opening a SQLite database from a ``sqlite://`` URL, and handing out its connections."""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import suppress
from urllib.parse import quote, unquote_to_bytes

import cattrs

from ordercore.errors import InvalidValue, StoreUnavailable, UnknownStore
from ordercore.inventory import NodeStates, StockPosition
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ordercore.order import Order
from ordercore.serialization import make_converter
from ordercore.storage import StoredJson, VersionedCopies, node_states_copies
from ordercore.values import OrderId
from ordercore_adapters.sqlite._schema import Migration, ensure_schema
from ordercore_adapters.sqlite._unit_of_work import SqliteUnitOfWork

__all__ = ["Connection", "SqliteStore", "file_url", "migrate", "open_store", "parse_url"]

_BUSY_TIMEOUT_MS = 5000
_MAX_IDLE = 8  # idle file connections kept open for reuse; more are closed when given back
_KEPT_ORDERS = 4_096  # decoded orders kept, by version, so that an unchanged row is not decoded again
_KEPT_POSITIONS = 20_000  # decoded stock positions kept likewise
_URL_FORMS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite://:memory:"


class Connection:
    """A sqlite3 connection and the lock that serialises its use across threads."""

    def __init__(self, raw: sqlite3.Connection, *, shared: bool) -> None:
        self.raw = raw
        self.shared = shared
        self.lock = threading.RLock()
        self.pid = os.getpid()  # a forked process must not use its parent's connection


def parse_url(url: str) -> str | None:
    """The database file a ``sqlite://`` URL names, made absolute; None for an in-memory database."""
    if not isinstance(url, str) or "://" not in url:
        raise UnknownStore(f"store URL {url!r} has no scheme (expected {_URL_FORMS})")
    scheme, rest = url.split("://", 1)
    if scheme.split("+", 1)[0].lower() != "sqlite":
        raise UnknownStore(f"store URL {url!r} is not a sqlite URL (expected {_URL_FORMS})")
    if "?" in rest:
        raise InvalidValue(
            f"query parameters are not supported (expected {_URL_FORMS})", field="url", value=url
        )
    if "#" in rest:
        raise InvalidValue(f"has a fragment (expected {_URL_FORMS})", field="url", value=url)
    # a URL's path is percent-encoded bytes of the OS path (see file_url): ``my%20orders.db`` is the file
    # ``my orders.db``, and on POSIX ``caf%E9.db`` the file whose name holds the byte 0xE9 (not UTF-8)
    named = unquote_to_bytes(_os_bytes(rest, "url", url))
    if b"\x00" in named:
        raise InvalidValue("names a path with a NUL character", field="url", value=url)
    try:
        rest = os.fsdecode(named)
    except UnicodeDecodeError:  # where file names are text (Windows), the bytes must be UTF-8
        raise InvalidValue(
            "has a percent-encoded byte sequence that is not a file name on this system (not UTF-8)",
            field="url",
            value=url,
        ) from None
    if rest in ("", ":memory:", "/:memory:"):
        return None
    if not rest.startswith("/"):
        raise InvalidValue(f"has a host or no path (expected {_URL_FORMS})", field="url", value=url)
    path = rest[1:]
    if not path or path.endswith("/"):
        raise InvalidValue(f"names no database file (expected {_URL_FORMS})", field="url", value=url)
    return os.path.abspath(path)


def file_url(path: str | os.PathLike[str]) -> str:
    """The ``sqlite://`` URL of the database file at ``path`` (made absolute): the bytes of the OS path,
    percent-encoded, so that :func:`parse_url` gives the very path back whatever it holds (``%``, ``?``,
    ``#``, spaces, and a name that is not UTF-8, which ``os.listdir`` gives with surrogate escapes)."""
    return "sqlite:///" + _quoted(os.path.abspath(os.fspath(path)))


def _quoted(path: str) -> str:
    """``path`` as a URL path: its OS bytes (``os.fsencode``), percent-encoded but for the slashes."""
    return quote(os.fsencode(path), safe="/")


def _check_path(path: object) -> None:
    """Refuse (InvalidValue naming ``path``) what cannot be the path of a database file, before any file
    is created."""
    if not isinstance(path, str) or not path.strip():
        raise InvalidValue(
            "must be the path of a database file, or None for memory", field="path", value=path
        )
    if b"\x00" in _os_bytes(path, "path", path):
        raise InvalidValue("holds a NUL character", field="path", value=path)


def _os_bytes(text: str, field: str, value: object) -> bytes:
    """``text`` as the bytes of a file name on this system (``os.fsencode``); InvalidValue naming
    ``field`` when no file name can hold it."""
    try:
        return os.fsencode(text)
    except UnicodeEncodeError:
        raise InvalidValue(
            "holds a character that no file name on this system can hold", field=field, value=value
        ) from None


class SqliteStore:
    """A SQLite database holding orders, stock positions with their ledger, and the outbox.

    A file database gives each unit of work its own connection, taken from a pool of open ones (opened
    with their PRAGMAs once, given back when the unit ends, all closed by :meth:`close`); an in-memory
    database exists only inside its one connection, so every unit shares it, one statement (or one commit)
    at a time.

    A new database is created at the current schema version; one at an older version is refused
    (``StoreUnavailable``) unless ``migrate`` is true, which applies the pending steps in one transaction
    (:attr:`migration` says what was found and done). With ``dry_run`` (and ``migrate``) the steps are only
    worked out and the store is closed: nothing is changed.
    """

    def __init__(
        self,
        path: str | None,
        *,
        lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
        migrate: bool = False,
        dry_run: bool = False,
    ) -> None:
        if path is not None:
            _check_path(path)
        self.path = path
        #: the file's absolute path (later connections open it there, whatever the working directory
        #: becomes), and its device and inode once opened: a file removed or replaced meanwhile is refused
        self._file = None if path is None else os.path.abspath(path)
        self._identity: tuple[int, int] | None = None
        self.lifecycle = lifecycle
        self.converter: cattrs.Converter = make_converter(lifecycle)
        self.json = StoredJson(self.converter)
        self.orders_cache: VersionedCopies[OrderId, Order] = VersionedCopies(Order.clone, _KEPT_ORDERS)
        self.stock_cache: VersionedCopies[tuple[str, str], StockPosition] = VersionedCopies(
            StockPosition.clone, _KEPT_POSITIONS
        )
        self.node_states_cache: VersionedCopies[str, NodeStates] = node_states_copies()
        self.closed = False
        self._shared: Connection | None = None
        self._idle: list[Connection] = []
        self._pool_lock = threading.Lock()
        self._pool_pid = os.getpid()
        self.migration: Migration
        if path is None:
            self._shared = Connection(self._open(), shared=True)
            with self._shared.lock:
                self.migration = self._init_schema(self._shared.raw, migrate, dry_run)
        else:
            # a dry run neither creates a missing file nor changes an existing one (not even its journal
            # mode); a file refused (newer, not ordercore's, a failed upgrade) is left in its journal mode
            checking = dry_run and migrate
            raw = self._open(write_ahead=False, create=not checking)
            try:
                self.migration = self._init_schema(raw, migrate, dry_run)
                if not checking:
                    self._write_ahead(raw)
                self._identity = self._identity_now()
            except BaseException:
                raw.close()
                raise
            self.release(Connection(raw, shared=False))
        if dry_run:
            self.close()

    @property
    def url(self) -> str:
        return "sqlite://:memory:" if self.path is None else file_url(self.path)

    def __repr__(self) -> str:
        return f"SqliteStore({self.url!r})"

    def unit_of_work(self) -> SqliteUnitOfWork:
        self.check_open()
        return SqliteUnitOfWork(self)

    def close(self) -> None:
        """Close the shared connection, if any, and the idle pooled ones (those in use are closed when
        their unit ends); units of work still in use fail with StoreUnavailable."""
        self.closed = True
        if self._shared is not None:
            with self._shared.lock:
                self._shared.raw.close()
        with self._pool_lock:
            idle, self._idle = self._idle, []
            mine = self._pool_pid == os.getpid()
        if mine:  # a forked child leaves its parent's connections alone
            for conn in idle:
                with suppress(sqlite3.Error):
                    conn.raw.close()

    def check_open(self) -> None:
        if self.closed:
            raise StoreUnavailable(f"the store {self.url} is closed")

    def _identity_now(self) -> tuple[int, int] | None:
        """The device and inode of the file at the store's path now (None: no file there)."""
        assert self._file is not None
        try:
            found = os.stat(self._file)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def check_file(self) -> None:
        """Refuse (StoreUnavailable, not retryable) to go on when the database file was removed, moved or
        replaced since the store opened it: connections still open would write to a file no path leads to
        any more (lost when they close), and new ones would find another file, or none."""
        if self._identity is None or self._identity_now() == self._identity:
            return
        raise StoreUnavailable(
            f"the database file of {self.url} was removed, moved or replaced since the store opened it;"
            " nothing was written. Open the store again (on the file as it is now, or restored)"
        )

    def connect(self) -> Connection:
        """A connection for one unit of work: the shared one in memory; on a file, an idle pooled one of
        this process, or a new one."""
        self.check_open()
        if self._shared is not None:
            return self._shared
        self.check_file()
        pid = os.getpid()
        with self._pool_lock:
            if self._pool_pid != pid:  # forked: the parent's connections are not ours to use or close
                self._idle, self._pool_pid = [], pid
            if self._idle:
                return self._idle.pop()
        return Connection(self._open(create=False), shared=False)  # the file exists: never a new one

    def release(self, conn: Connection) -> None:
        """Take back a file connection a unit of work is done with: kept open for the next unit, unless
        the store is closed, the pool is full or it is unusable. The shared in-memory connection stays
        open, but never carries a transaction a unit left (interrupted, say) into the next unit."""
        if conn.shared:
            with conn.lock, suppress(sqlite3.Error):  # a closed store's connection has none
                if conn.raw.in_transaction:
                    conn.raw.execute("ROLLBACK")
            return
        if conn.pid != os.getpid():
            return  # a parent's connection inherited by a fork: neither reused nor closed here
        raw = conn.raw
        try:
            if raw.in_transaction:  # never carry a transaction into the next unit
                raw.execute("ROLLBACK")
        except sqlite3.Error:
            with suppress(sqlite3.Error):
                raw.close()
            return
        with self._pool_lock:
            if not self.closed and self._pool_pid == conn.pid and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        with suppress(sqlite3.Error):
            raw.close()

    def _open(self, *, write_ahead: bool = True, create: bool = True) -> sqlite3.Connection:
        """A new connection with its PRAGMAs; on a file, in WAL mode unless not ``write_ahead`` (the first
        connection, until the schema check passed), and failing (StoreUnavailable) on a missing file
        unless ``create``."""
        target, uri = self._file or ":memory:", False
        if self._file is not None and not create:  # the file must exist: open it through a URI, mode=rw
            absolute = self._file.replace(os.sep, "/")
            target = (
                "file://" + _quoted(absolute if absolute.startswith("/") else "/" + absolute) + "?mode=rw"
            )
            uri = True
        try:
            raw = sqlite3.connect(
                target,
                isolation_level=None,
                check_same_thread=False,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                uri=uri,
            )
        except sqlite3.Error as e:
            if not create and self._file is not None and not os.path.exists(self._file):
                if self._identity is not None:  # opened before: the file went since
                    raise StoreUnavailable(
                        f"the database file of {self.url} was removed or moved since the store opened it"
                    ) from e
                raise StoreUnavailable(f"no database at {self.url} (a dry run creates none)") from e
            raise StoreUnavailable(f"cannot open {self.url}: {e}") from e
        try:
            raw.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            raw.execute("PRAGMA foreign_keys = ON")
            if self.path is not None:
                if write_ahead:
                    raw.execute("PRAGMA journal_mode = WAL")
                # a commit reported is on the disk, whatever the build's default for WAL (some make it
                # NORMAL, which may lose the last commits at a power cut): the outbox relies on it
                raw.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as e:
            raw.close()
            raise StoreUnavailable(f"cannot open {self.url}: {e}") from e
        return raw

    def _write_ahead(self, raw: sqlite3.Connection) -> None:
        """Switch the file to WAL mode (with ``synchronous = FULL``, as every connection), once its schema
        is known to be ours and current."""
        try:
            raw.execute("PRAGMA journal_mode = WAL")
            raw.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open {self.url}: {e}") from e

    def _init_schema(self, raw: sqlite3.Connection, migrate: bool, dry_run: bool) -> Migration:
        try:
            try:
                return ensure_schema(
                    raw, self.url, self.converter, migrate=migrate, dry_run=dry_run and migrate
                )
            except sqlite3.Error as e:
                raise StoreUnavailable(f"cannot prepare {self.url}: {e}") from e
        except BaseException:
            if self._shared is not None:
                raw.close()
            raise


def open_store(url: str, *, lifecycle: Lifecycle = DEFAULT_LIFECYCLE, migrate: bool = False) -> SqliteStore:
    """Entry point for ``sqlite://`` URLs: opens (creating if needed) the database the URL names; an older
    database only with ``migrate``, which upgrades it."""
    return SqliteStore(parse_url(url), lifecycle=lifecycle, migrate=migrate)


def migrate(url: str, *, dry_run: bool = False, lifecycle: Lifecycle = DEFAULT_LIFECYCLE) -> Migration:
    """Bring the database ``url`` names to the current schema version (with ``dry_run``, only work out the
    steps) and say what was found and done."""
    store = SqliteStore(parse_url(url), lifecycle=lifecycle, migrate=True, dry_run=dry_run)
    store.close()
    return store.migration
