"""The in-memory store under threads: concurrent changes are detected, never lost."""

import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from ordercore import (
    ConcurrencyConflict,
    HoldOrder,
    ManualClock,
    OrderId,
    OrderStatus,
    SequentialIds,
    bootstrap,
)
from tests.unit.factories import place_command

THREADS = 8
HOLDS_PER_THREAD = 25


def run_together(worker: Callable[[int], None]) -> None:
    """Run ``worker(n)`` in THREADS threads, switching between them as often as the interpreter can."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)


def test_concurrent_commands_on_one_order_lose_no_update() -> None:
    # the bus's own conflict retries are off, so that the callers see (and count) every conflict
    app = bootstrap(
        clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC)), ids=SequentialIds(), conflict_retries=0
    )
    order_id = app.handle(place_command()).order_id
    barrier = threading.Barrier(THREADS)
    conflicts = [0] * THREADS

    def worker(n: int) -> None:
        barrier.wait()
        for k in range(HOLDS_PER_THREAD):
            while True:  # a caller retries on conflict, as a real service would
                try:
                    app.handle(HoldOrder(order_id=order_id, code=f"T{n}-{k}"))
                    break
                except ConcurrencyConflict:
                    conflicts[n] += 1

    run_together(worker)
    assert sum(conflicts) > 0, "the threads never overlapped: the test proved nothing"
    order = app.get_order(order_id)
    assert order.status == OrderStatus.ON_HOLD
    assert len(order.holds) == THREADS * HOLDS_PER_THREAD  # every hold is there, none overwritten
    assert order.version == 2 + THREADS * HOLDS_PER_THREAD
    assert [e.sequence for e in order.history] == list(range(1, order.version + 1))


def test_concurrent_placements_create_distinct_orders() -> None:
    app = bootstrap(ids=SequentialIds())
    barrier = threading.Barrier(THREADS)
    ids: list[OrderId] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        barrier.wait()
        for k in range(10):
            oid = app.handle(place_command(external_ref=f"EXT-{n}-{k}")).order_id
            with lock:
                ids.append(oid)

    run_together(worker)
    assert len(set(ids)) == THREADS * 10
    assert sorted(app.list_orders(limit=1000), key=str) == sorted(ids, key=str)
