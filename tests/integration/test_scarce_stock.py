"""Many processes race for the same scarce SKU on a shared store: stock is never oversold, and nobody hangs.

50 worker processes, each with its own application on the same store, are released together by a barrier
and source one order of 2 units each against 7 units at one node, with backorders refused. Exactly
floor(7 / 2) = 3 orders get stock; the others fail to source (SourcingFailed: out of stock). Commits on the
same stock position collide (ConcurrencyConflict), and the workers handle the command again, as a real
client would. Afterwards the stock ledger balances with what the sourced orders hold.

Runs on a SQLite file and on PostgreSQL (a fresh schema of the server named by
``ORDERCORE_TEST_POSTGRES_URL``, as in test_postgres_store.py: skipped without a server, failed on CI).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import queue
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ordercore import (
    AcceptOrder,
    Money,
    NewLine,
    OrderStatus,
    SequentialIds,
    Sku,
    StockPosition,
    bootstrap,
)
from ordercore.inventory import EntryKind
from ordercore.service.commands import ReceiveStock
from tests.integration import _scarce_worker as w
from tests.integration._postgres import fresh_schema_url
from tests.unit.factories import place_command

WORKERS = 50
STOCK = 7
QTY = 2
#: every worker must have reported and exited within this many seconds of the first start
DEADLINE_S = 120.0


def _sqlite_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path}/scarce.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh store that every worker process opens."""
    yield from _sqlite_url(tmp_path) if request.param == "sqlite" else fresh_schema_url()


def prepare(url: str) -> list[str]:
    """Receive the scarce stock and place and accept one order of QTY units per worker; their ids."""
    with bootstrap(url, ids=SequentialIds(), network=w.network()) as app:
        app.handle(ReceiveStock(node_id=w.NODE, sku=w.SKU, quantity=STOCK, reason="opening stock"))
        order_ids = []
        for _ in range(WORKERS):
            lines = [NewLine(Sku(w.SKU), QTY, Money.of(Decimal("5.00"), "EUR"))]
            order_id = app.handle(place_command(lines=lines, shipping_address=w.CUSTOMER)).order_id
            app.handle(AcceptOrder(order_id=order_id))
            order_ids.append(str(order_id))
    return order_ids


def race(url: str, order_ids: list[str]) -> tuple[dict[str, w.Report], float]:
    """Start one worker per order, released together by a barrier; their reports by order id, and how long
    the whole race took. Fails if a worker does not report or exit in time (a deadlock, say)."""
    # fork where there is one: the workers inherit the imported modules, a cheap start
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier = ctx.Barrier(len(order_ids))
    results: multiprocessing.queues.Queue[w.Report] = ctx.Queue()
    workers = [
        ctx.Process(target=w.source_when_released, args=(url, oid, barrier, results), name=f"source-{oid}")
        for oid in order_ids
    ]
    started = time.monotonic()
    deadline = started + DEADLINE_S
    for p in workers:
        p.start()
    reports: dict[str, w.Report] = {}
    try:
        while len(reports) < len(workers):  # read before joining: a full pipe would block a worker's exit
            try:
                report = results.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            reports[report.order_id] = report
            if time.monotonic() > deadline:
                break
        for p in workers:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
        hung = [p.name for p in workers if p.is_alive()]
        silent = sorted(set(order_ids) - set(reports))
    finally:
        for p in workers:
            if p.is_alive():
                p.kill()
                p.join(5)
        results.close()
        results.join_thread()
    elapsed = time.monotonic() - started
    assert not hung, f"{len(hung)} workers still running after {DEADLINE_S:.0f} s (deadlock?): {hung[:5]}"
    assert not silent, f"{len(silent)} workers never reported: {silent[:5]}"
    crashed = [p.name for p in workers if p.exitcode != 0]
    assert not crashed, f"workers exited abnormally: {crashed[:5]}"
    return reports, elapsed


def test_fifty_processes_racing_for_scarce_stock_oversell_nothing(url: str) -> None:
    order_ids = prepare(url)
    reports, elapsed = race(url, order_ids)

    outcomes = Counter(r.outcome for r in reports.values())
    unexpected = [r for r in reports.values() if r.outcome not in (w.SOURCED, w.OUT_OF_STOCK)]
    assert not unexpected, f"workers ended with {dict(outcomes)}; for example {unexpected[0]}"
    winners = sorted(r.order_id for r in reports.values() if r.outcome == w.SOURCED)
    conflicts = [r.conflicts for r in reports.values()]
    released = min(r.released_at for r in reports.values())
    first_win = min(reports[oid].done_at for oid in winners) if winners else float("inf")
    racing = sum(1 for r in reports.values() if r.released_at < first_win)
    print(
        f"\n{url.split(':')[0]}: {len(winners)} sourced, {outcomes[w.OUT_OF_STOCK]} out of stock,"
        f" {sum(conflicts)} ConcurrencyConflict retried by the workers (at most {max(conflicts)} by one),"
        f" {sum(r.bus_retries for r in reports.values())} retried by the message bus,"
        f" {racing} workers released before the first order was sourced,"
        f" last outcome {max(r.done_at for r in reports.values()) - released:.2f} s after the barrier,"
        f" {elapsed:.1f} s from the first start to the last exit"
    )
    assert len(winners) == STOCK // QTY
    assert outcomes[w.OUT_OF_STOCK] == WORKERS - STOCK // QTY
    losers = [r for r in reports.values() if r.outcome == w.OUT_OF_STOCK]
    assert all(f"units of {w.SKU} cannot ship now" in r.detail for r in losers), losers[0].detail
    assert racing > 1, "the workers never raced: the test proved nothing"

    with bootstrap(url, network=w.network()) as app:
        orders = {oid: app.get_order(oid) for oid in order_ids}
        for oid, order in orders.items():
            if oid in winners:
                assert order.status == OrderStatus.ALLOCATED
                assert [(a.node_id, a.quantity) for a in order.allocations] == [(w.NODE, QTY)]
            else:  # refused sourcing changed nothing on the order
                assert order.status == OrderStatus.ACCEPTED
                assert order.allocations == ()
        keys = {a.key: (oid, a.quantity) for oid in winners for a in orders[oid].allocations}

        with app.store.unit_of_work() as uow:
            position = uow.inventory.get(w.NODE, Sku(w.SKU))
            ledger = uow.inventory.ledger(w.NODE, Sku(w.SKU))
            assert uow.inventory.get(w.OTHER_NODE, Sku(w.SKU)) is None
        assert position is not None
        now = app.clock.now()

    assert position.on_hand == STOCK
    assert position.reserved(now) == QTY * len(winners) == sum(q for _, q in keys.values())
    assert position.available(now) == STOCK - QTY * len(winners)
    # every reservation belongs to a sourced order, under the key that order holds
    assert {k: (r.reference, r.quantity) for k, r in position.reservations.items()} == keys
    # the ledger balances: replaying it gives the stored position, and it holds one RESERVED per winner
    assert StockPosition.replay(ledger) == position
    assert [e.sequence for e in ledger] == list(range(1, position.version + 1))
    assert Counter(e.kind for e in ledger)[EntryKind.RESERVED] == len(winners)
    assert sorted(e.key for e in ledger if e.kind is EntryKind.RESERVED) == sorted(keys)
