"""What the PostgreSQL store is given, and what it cannot hold: the arguments of its constructor and the
options of its URL are checked before it connects; text PostgreSQL cannot store and numbers beyond its
columns are InvalidValue naming the field, with nothing written and the connection still in use; every
connection speaks UTF-8; and a process holding more than 1024 descriptors is served like any other.

Values the domain now refuses are slipped past it here (set on a frozen value after its checks ran), so
that these tests show the adapter's own safety net.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from ordercore import InvalidValue, ManualClock, OrderId, OrderStatus, SequentialIds, StockPosition, bootstrap
from ordercore.inventory import LedgerEntry
from ordercore.service.commands import HoldOrder
from ordercore.values import Address, Sku
from ordercore_adapters.postgres import PostgresProcessedEvents, PostgresStore, open_store, parse_url
from ordercore_adapters.postgres import _store as postgres_store_module
from ordercore_adapters.postgres._unit_of_work import PostgresUnitOfWork
from tests.integration._postgres import SERVER_URL, schema_url
from tests.integration.test_postgres_store import add, admin, keeps_an_order, load, schema_of, url
from tests.unit.factories import ACTOR, AT, make_order, place_command

__all__ = ["admin", "url"]  # fixtures from the PostgreSQL tests

SKU = Sku("MUG")
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens: a store that connects fails


@pytest.fixture
def store(url: str) -> Iterator[PostgresStore]:
    s = open_store(url + "&pool_size=1")  # one connection: every unit of work gets the same session
    yield s
    s.close()


def session(store: PostgresStore) -> psycopg.Connection[Any]:
    """The pooled connection ``store`` hands out next (given back at once)."""
    conn = store.connect()
    store.release(conn)
    return conn


def slip(value: object, **attributes: object) -> None:
    """Set attributes of a frozen value, past the checks its class runs."""
    for name, given in attributes.items():
        object.__setattr__(value, name, given)


# -- the constructor and the URL ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"schema": 123}, "schema"),
        ({"schema": None}, "schema"),
        ({"schema": ""}, "schema"),
        ({"schema": "a-b"}, "schema"),
        ({"schema": "s" * 64}, "schema"),  # the server would cut it to 63, the advisory locks not
        ({"conninfo": None}, "conninfo"),
        ({"conninfo": b"host=127.0.0.1"}, "conninfo"),
        ({"conninfo": "host=127.0.0.1 port=1 bogus=1"}, "conninfo"),
        ({"conninfo": "host=127.0.0.1 port=1 client_encoding=LATIN1"}, "conninfo"),
        ({"prepare": "no"}, "prepare"),
    ],
)
def test_bad_arguments_given_to_the_store_are_refused_before_connecting(
    given: dict[str, object], field: str
) -> None:
    arguments: dict[str, Any] = {"conninfo": NOWHERE, **given}
    with pytest.raises(InvalidValue) as info:
        PostgresStore(**arguments)
    assert info.value.field == field


def test_a_bad_connection_string_is_refused_without_showing_its_password() -> None:
    with pytest.raises(InvalidValue) as info:
        PostgresStore("host=127.0.0.1 password=s3cret bogus=1")
    shown = json.dumps(info.value.to_dict()) + str(info.value) + repr(info.value)
    assert info.value.field == "conninfo" and "bogus" in str(info.value)
    assert "s3cret" not in shown and "***" in shown


def test_a_schema_of_63_characters_is_taken(admin: psycopg.Connection[tuple[object, ...]]) -> None:
    schema = f"t_{uuid.uuid4().hex}".ljust(63, "x")
    try:
        keeps_an_order(schema_url(schema))
    finally:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.parametrize(
    "option",
    [
        "pool_size=%C2%B2",  # '²': str.isdigit() says yes, int() refuses it
        "pool_size=%D9%A1",  # an Arabic-Indic one, which int() reads as 1
        "lock_timeout=%D9%A1s",
    ],
)
def test_a_number_in_the_url_must_be_written_in_ascii_digits(option: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_url(f"postgresql://h/db?{option}")
    assert info.value.field == "url"


@pytest.mark.parametrize("port", ["%C2%B2", "\u00b2", "\u0661", "5432\u0661"])
def test_a_port_must_be_written_in_ascii_digits(port: str) -> None:
    with pytest.raises(InvalidValue, match="port") as info:
        parse_url(f"postgresql://h1:5432,h2:{port}/db")
    assert info.value.field == "url"


@pytest.mark.parametrize("encoding", ["LATIN1", "latin1", "SQL_ASCII", "WIN1252", "EUC_JP", "auto", ""])
def test_a_url_asking_for_another_client_encoding_is_refused(encoding: str) -> None:
    with pytest.raises(InvalidValue, match="client_encoding must be UTF8") as info:
        parse_url(f"postgresql://u:s3cret@h/db?client_encoding={encoding}")
    assert info.value.field == "url" and "s3cret" not in str(info.value)


@pytest.mark.parametrize("encoding", ["UTF8", "utf8", "UTF-8", "utf_8", "Unicode"])
def test_a_url_asking_for_utf8_in_any_spelling_is_taken(encoding: str) -> None:
    assert parse_url(f"postgresql://h/db?client_encoding={encoding}").conninfo.endswith(encoding)


@pytest.mark.parametrize("where", ["PGCLIENTENCODING", "options"])
def test_every_connection_speaks_utf8_whatever_the_environment_or_the_session_options_say(
    url: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "PGCLIENTENCODING":
        monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
        opened = open_store(url)
    else:
        opened = open_store(url + "&options=-c%20client_encoding%3DLATIN1")
    try:
        app = bootstrap(opened, clock=ManualClock(AT), ids=SequentialIds())
        lodz = Address(country="PL", postal_code="90-001", city="\u0141\u00f3d\u017a", line1="Piotrkowska 1")
        order_id = app.handle(place_command(shipping_address=lodz)).order_id
        app.handle(HoldOrder(order_id=order_id, code="CHECK", message="\u0141\u00f3d\u017a \u2713"))
        order = app.get_order(order_id)
        assert order.shipping_address is not None and order.shipping_address.city == lodz.city
        assert [h.message for h in order.holds] == ["\u0141\u00f3d\u017a \u2713"]
        assert session(opened).info.encoding == "utf-8"
    finally:
        opened.close()


# -- more than 1024 descriptors: the pool's look at a socket --------------------------------------------------
_HELD = 1100


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """More than 1024 descriptors held open, so that the sockets opened next are numbered beyond what
    ``select()`` takes (the soft limit raised within the hard one if need be)."""
    resource = pytest.importorskip("resource")
    needed = _HELD + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the hard limit of open files ({hard}) is below {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(_HELD)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def failed_checks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "failed check" in r.getMessage()]


def test_a_process_holding_more_than_1024_descriptors_is_served_on_its_pooled_connection(
    many_descriptors: None,
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # every connection counts as used moments ago: the pool only looks at its socket before handing it out
    monkeypatch.setattr(postgres_store_module, "_CHECK_IDLE_S", float("inf"))
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    store = open_store(f"{url}&pool_size=1")
    try:
        conn = session(store)
        assert conn.fileno() >= 1024  # beyond select()'s reach
        add(store, make_order(order_id="O-1"))
        for _ in range(5):
            assert load(store, "O-1").id == OrderId("O-1")
        assert session(store) is conn  # kept throughout: never refused by its check and replaced
    finally:
        store.close()
    assert failed_checks(caplog) == []


def test_a_look_at_the_socket_that_fails_is_a_round_trip_not_a_refused_connection(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable_poll() -> Any:
        raise OSError("poll is not available")

    checked: list[psycopg.Connection[Any]] = []
    check = ConnectionPool.check_connection

    def counting(conn: psycopg.Connection[Any]) -> None:
        checked.append(conn)
        check(conn)

    monkeypatch.setattr(postgres_store_module, "_poll", unavailable_poll)
    monkeypatch.setattr(postgres_store_module, "_CHECK_IDLE_S", float("inf"))
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counting))
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    store = open_store(f"{url}&pool_size=1")
    try:
        conn = session(store)
        add(store, make_order(order_id="O-1"))
        checked.clear()
        for _ in range(3):
            assert load(store, "O-1").id == OrderId("O-1")
        assert checked == [conn] * 3  # a round trip each time instead, on the one connection kept
    finally:
        store.close()
    assert failed_checks(caplog) == []


# -- text PostgreSQL cannot store -----------------------------------------------------------------------------
def unit(store: PostgresStore) -> PostgresUnitOfWork:
    uow = store.unit_of_work()
    assert isinstance(uow, PostgresUnitOfWork)
    return uow


def still_served(store: PostgresStore, conn: psycopg.Connection[Any]) -> None:
    """The next unit gets the same connection, idle, and its commit goes through."""
    assert session(store) is conn and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    add(store, make_order(order_id="O-2"))
    assert load(store, "O-2").id == OrderId("O-2")


@pytest.mark.parametrize(("text", "shown"), [("see\x00note", "NUL"), ("see\ud800note", "surrogate")])
def test_a_hold_message_postgresql_cannot_store_is_invalid_and_nothing_is_written(
    store: PostgresStore, text: str, shown: str
) -> None:
    add(store, make_order(order_id="O-1"))
    conn = session(store)
    with unit(store) as uow:
        order = uow.orders.get(OrderId("O-1"))
        order.hold("FRAUD", actor=ACTOR, at=AT, message="see note")
        slip(order.holds[0], message=text)
        uow.orders.save(order)
        with pytest.raises(InvalidValue) as info:
            uow.commit()
    assert info.value.field == "holds[0].message" and info.value.value == text
    assert shown in info.value.reason and "PostgreSQL cannot store" in info.value.reason
    stored = load(store, "O-1")
    assert stored.holds == () and stored.status is OrderStatus.PLACED
    with unit(store) as uow:
        assert uow.orders.held_orders() == []
    still_served(store, conn)


@pytest.mark.parametrize("text", ["open\x00ing", "open\udfffing"])
def test_a_stock_reason_postgresql_cannot_store_is_invalid_and_nothing_is_written(
    store: PostgresStore, text: str
) -> None:
    conn = session(store)
    position = StockPosition.open("WH-1", SKU, at=AT, on_hand=5, reason="opening")
    slip(position.new_entries()[0], reason=text)
    with unit(store) as uow:
        uow.inventory.save(position)
        with pytest.raises(InvalidValue, match="PostgreSQL cannot store") as info:
            uow.commit()
    assert info.value.field == "reason" and info.value.value == text
    with unit(store) as uow:
        assert uow.inventory.get("WH-1", SKU) is None
    still_served(store, conn)


@pytest.mark.parametrize("code", ["FR\x00UD", "FR\ud800UD"])
def test_a_read_given_text_postgresql_cannot_store_is_invalid_and_the_unit_goes_on(
    store: PostgresStore, code: str
) -> None:
    add(store, make_order(order_id="O-1"))
    with unit(store) as uow:
        with pytest.raises(InvalidValue) as info:
            uow.orders._held_orders(code, 10)  # the adapter's query, past any check of the code
        assert info.value.field == "text"
        assert uow.orders.get(OrderId("O-1")).id == OrderId("O-1")  # the same unit, the same session


@pytest.mark.parametrize("event_id", ["E\x00-1", "E\ud800-1"])
def test_an_event_id_postgresql_cannot_store_is_invalid_and_the_transaction_goes_on(
    url: str, admin: psycopg.Connection[tuple[object, ...]], event_id: str
) -> None:
    schema = schema_of(url)
    admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    with psycopg.connect(SERVER_URL, options=f"-c search_path={schema}") as conn:
        processed = PostgresProcessedEvents(conn)
        with pytest.raises(InvalidValue) as info:
            processed.seen(event_id)
        assert info.value.field == "event_id"
        assert not processed.seen("E-2")
        processed.mark("E-2")
        assert processed.seen("E-2")


# -- numbers beyond PostgreSQL's columns ---------------------------------------------------------------------
def test_a_quantity_beyond_an_integer_column_is_invalid_and_nothing_is_written(store: PostgresStore) -> None:
    conn = session(store)
    position = StockPosition.open("WH-1", SKU, at=AT, on_hand=5, reason="opening")
    entry: LedgerEntry = position.new_entries()[0]
    slip(entry, quantity=3_000_000_000)
    with unit(store) as uow:
        uow.inventory.save(position)
        with pytest.raises(InvalidValue) as info:
            uow.commit()
    assert info.value.field == "quantity" and info.value.value == 3_000_000_000
    with unit(store) as uow:
        assert uow.inventory.get("WH-1", SKU) is None
    still_served(store, conn)
