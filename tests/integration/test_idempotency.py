"""Idempotency keys and the retry policy for conflicts, under real concurrency.

Twenty callers send one request with one idempotency key at the same moment: exactly one order is created
and every caller gets its id. Two callers edit one order at once: the bus runs the loser again, so both
edits are kept; with ``expected_version`` the loser is told instead. The in-memory store is raced by
threads; a SQLite file and PostgreSQL (a fresh schema of the server named by
``ORDERCORE_TEST_POSTGRES_URL``, skipped without a server except on CI) by processes, each with its own
application over the same URL, released together by a barrier.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ordercore import (
    HoldOrder,
    IdempotencyConflict,
    OrderCore,
    OrderCoreError,
    OrderId,
    bootstrap,
    open_store,
)
from ordercore_adapters.postgres import SCHEMA_VERSION as POSTGRES_VERSION
from ordercore_adapters.sqlite import SCHEMA_VERSION as SQLITE_VERSION
from tests.integration._postgres import SERVER_URL, fresh_schema_url
from tests.unit.factories import place_command

CALLERS = 20
#: every worker must have reported within this many seconds of the start
DEADLINE_S = 60.0

Outcome = tuple[str, str]  # ("ok", order id or version) or (error code, message)
Job = Callable[[OrderCore, int, Any], Outcome]


# -- the jobs each caller runs ------------------------------------------------------------------------------
def place_with_key(app: OrderCore, n: int, key: str) -> Outcome:
    try:
        return "ok", str(app.handle(place_command(idempotency_key=key, reason=f"caller {n}")).order_id)
    except OrderCoreError as e:
        return e.code, str(e)


def place_with_key_and_id(app: OrderCore, n: int, key: str) -> Outcome:
    """As :func:`place_with_key`, each caller naming the same order id of its own (a channel's)."""
    try:
        command = place_command(idempotency_key=key, order_id=OrderId("WEB-1001"), reason=f"caller {n}")
        return "ok", str(app.handle(command).order_id)
    except OrderCoreError as e:
        return e.code, str(e)


def hold(app: OrderCore, n: int, target: tuple[str, int | None]) -> Outcome:
    order_id, expected = target
    try:
        result = app.handle(HoldOrder(order_id=order_id, code=f"HOLD-{n}", expected_version=expected))
        return "ok", str(result.version)
    except OrderCoreError as e:
        return e.code, str(e)


def _in_process(
    url: str, job: Job, n: int, arg: Any, barrier: Any, results: multiprocessing.queues.Queue[Any]
) -> None:
    try:
        with bootstrap(url) as app:
            barrier.wait(timeout=DEADLINE_S)
            results.put((n, job(app, n, arg)))
    except BaseException as e:  # reported to the test rather than lost in the child
        results.put((n, ("crashed", repr(e))))


# -- racing callers ----------------------------------------------------------------------------------------
class Race:
    """Runs callers together against one store: threads sharing one application over ``memory://``,
    processes each opening the store's URL otherwise."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.shared = bootstrap(url) if url == "memory://" else None

    def app(self) -> OrderCore:
        """An application for setting up and checking, over the same store."""
        return self.shared if self.shared is not None else bootstrap(self.url)

    def run(self, job: Job, callers: int, arg: Any) -> list[Outcome]:
        if self.shared is not None:
            return self._threads(self.shared, job, callers, arg)
        return self._processes(job, callers, arg)

    @staticmethod
    def _threads(app: OrderCore, job: Job, callers: int, arg: Any) -> list[Outcome]:
        barrier = threading.Barrier(callers)
        outcomes: dict[int, Outcome] = {}

        def caller(n: int) -> None:
            barrier.wait(timeout=DEADLINE_S)
            outcomes[n] = job(app, n, arg)

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(DEADLINE_S)
        assert len(outcomes) == callers, "a caller never finished"
        return [outcomes[n] for n in range(callers)]

    def _processes(self, job: Job, callers: int, arg: Any) -> list[Outcome]:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        barrier = ctx.Barrier(callers)
        results: multiprocessing.queues.Queue[Any] = ctx.Queue()
        workers = [
            ctx.Process(target=_in_process, args=(self.url, job, n, arg, barrier, results))
            for n in range(callers)
        ]
        deadline = time.monotonic() + DEADLINE_S
        for p in workers:
            p.start()
        outcomes: dict[int, Outcome] = {}
        try:
            while len(outcomes) < callers:  # read before joining: a full pipe would block a worker's exit
                try:
                    n, outcome = results.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    break
                outcomes[n] = outcome
            for p in workers:
                p.join(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            for p in workers:
                if p.is_alive():
                    p.kill()
                    p.join(5)
            results.close()
            results.join_thread()
        assert len(outcomes) == callers, f"{callers - len(outcomes)} callers never reported"
        crashed = [o for o in outcomes.values() if o[0] == "crashed"]
        assert not crashed, crashed[:3]
        return [outcomes[n] for n in range(callers)]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def race(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Race]:
    if request.param == "memory":
        yield Race("memory://")
    elif request.param == "sqlite":
        yield Race(f"sqlite:///{tmp_path}/orders.db")
    else:
        yield from (Race(url) for url in fresh_schema_url())


def _with_app(race: Race, use: Callable[[OrderCore], Any]) -> Any:
    app = race.app()
    try:
        return use(app)
    finally:
        if app is not race.shared:
            app.close()


# -- the tests ---------------------------------------------------------------------------------------------
def test_twenty_callers_with_one_key_create_one_order_and_all_get_its_id(race: Race) -> None:
    outcomes = race.run(place_with_key, CALLERS, "REQ-1")
    assert {code for code, _ in outcomes} == {"ok"}, outcomes
    ids = {order_id for _, order_id in outcomes}
    assert len(ids) == 1
    assert _with_app(race, lambda app: app.list_orders(limit=100)) == [OrderId(ids.pop())]


def test_twenty_callers_with_one_key_and_one_order_id_of_their_own_all_get_that_order(race: Race) -> None:
    # every loser must see the key taken (and get the order), not the order id (a duplicate order)
    outcomes = race.run(place_with_key_and_id, CALLERS, "REQ-1")
    assert outcomes == [("ok", "WEB-1001")] * CALLERS
    assert _with_app(race, lambda app: app.list_orders(limit=100)) == [OrderId("WEB-1001")]


def test_another_payload_under_a_used_key_is_refused(race: Race) -> None:
    first = _with_app(race, lambda app: app.handle(place_command(idempotency_key="REQ-1")).order_id)

    def other(app: OrderCore) -> None:
        with pytest.raises(IdempotencyConflict) as info:
            app.handle(place_command(idempotency_key="REQ-1", service_level="express"))
        assert info.value.existing_order_id == first and info.value.code == "idempotency_conflict"
        assert app.list_orders() == [first]

    _with_app(race, other)


def test_two_concurrent_edits_of_one_order_are_both_kept(race: Race) -> None:
    order_id = _with_app(race, lambda app: str(app.handle(place_command()).order_id))
    outcomes = race.run(hold, 2, (order_id, None))
    assert sorted(outcomes) == [("ok", "3"), ("ok", "4")], outcomes  # one after the other
    order = _with_app(race, lambda app: app.get_order(order_id))
    assert sorted(h.code for h in order.holds) == ["HOLD-0", "HOLD-1"] and order.version == 4


def test_with_expected_version_one_of_two_concurrent_edits_gets_the_conflict(race: Race) -> None:
    order_id = _with_app(race, lambda app: str(app.handle(place_command()).order_id))
    outcomes = race.run(hold, 2, (order_id, 2))
    assert sorted(code for code, _ in outcomes) == ["concurrency_conflict", "ok"], outcomes
    order = _with_app(race, lambda app: app.get_order(order_id))
    assert len(order.holds) == 1 and order.version == 3


# -- upgrading a schema 3 store in place -------------------------------------------------------------------
def test_a_schema_3_sqlite_database_is_upgraded_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/orders.db"
    with bootstrap(url) as app:
        kept = app.handle(place_command()).order_id
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:  # back to what schema 3 had
        raw.execute("DROP TABLE idempotency_keys")
        raw.execute("PRAGMA user_version = 3")
        raw.commit()
    with bootstrap(open_store(url, migrate=True)) as app:
        assert app.get_order(kept).version == 2
        placed = app.handle(place_command(idempotency_key="REQ-1")).order_id
        assert app.handle(place_command(idempotency_key="REQ-1")).order_id == placed
    with closing(sqlite3.connect(tmp_path / "orders.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SQLITE_VERSION == 11
        assert raw.execute("SELECT key, order_id FROM idempotency_keys").fetchall() == [
            ("REQ-1", str(placed))
        ]


def test_a_schema_3_postgres_schema_is_upgraded_in_place() -> None:
    for url in fresh_schema_url():
        with bootstrap(url) as app:
            kept = app.handle(place_command()).order_id
        schema = sql.Identifier(url.rsplit("schema=", 1)[1])
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:  # back to what schema 3 had
            admin.execute(sql.SQL("DROP TABLE {}.idempotency_keys").format(schema))
            admin.execute(sql.SQL("UPDATE {}.schema_version SET version = 3").format(schema))
        with bootstrap(open_store(url, migrate=True)) as app:
            assert app.get_order(kept).version == 2
            placed = app.handle(place_command(idempotency_key="REQ-1")).order_id
            assert app.handle(place_command(idempotency_key="REQ-1")).order_id == placed
        with psycopg.connect(SERVER_URL, autocommit=True) as admin:
            version = admin.execute(sql.SQL("SELECT version FROM {}.schema_version").format(schema))
            assert version.fetchall() == [(POSTGRES_VERSION,)] and POSTGRES_VERSION == 12
            keys = admin.execute(sql.SQL("SELECT key, order_id FROM {}.idempotency_keys").format(schema))
            assert keys.fetchall() == [("REQ-1", str(placed))]
