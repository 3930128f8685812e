"""Crash injection: processes killed by SIGKILL at each point of the outbox's path lose no event, and the
consumer processes each one once.

A store (a SQLite file, or a fresh schema on PostgreSQL) relays its outbox to a stream of the test's own on
the NATS JetStream server of test_broker_nats.py. Worker processes (tests/integration/_crash_worker.py) die

(a) inside a unit of work, after the change and before the commit: nothing of that command is stored or
    published;
(b) after a commit, before any relay (no publisher): a restarted application relays the pending events;
(c) after the publisher returned, before the events were marked published: the restarted relay publishes
    them again, and the stream drops the copies by message id.

A consumer process (NatsJetStreamConsumer + ExactlyOnce over the shipped SqliteProcessedEvents, in a SQLite
ledger) is killed after processing an event and before acknowledging it; the restarted consumer gets the
message again and skips it. At the end
the consumer processed every committed event exactly once, and the stream holds each one once.

Without a NATS or PostgreSQL server the tests are skipped, except on CI (``CI=true``), where that is a
failure.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ordercore import bootstrap
from ordercore import open_store as open_any_store
from ordercore.events import OrderEvent
from tests.integration import _crash_worker as w
from tests.integration._postgres import fresh_schema_url
from tests.integration.test_broker_nats import SERVER_URL as NATS_URL
from tests.integration.test_broker_nats import Names, _require_server

#: how long one worker process may take before it counts as hung
PROCESS_TIMEOUT_S = 20.0
#: the consumer's ack_wait: how soon an unacknowledged message comes back
ACK_WAIT_S = 2.0


@pytest.fixture
def names() -> Iterator[Names]:
    _require_server()
    token = uuid.uuid4().hex[:12]
    n = Names(stream=f"ORDERCORE_CRASH_{token}", prefix=f"crash.{token}.events")
    yield n
    n.delete()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path, names: Names) -> Iterator[str]:
    """The URL of a fresh store that every process opens (after the NATS check, so both skip alike)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/crash.db"
    else:
        yield from fresh_schema_url()


def run(target: Any, *args: Any) -> int:
    """Run ``target(*args)`` in a process of its own; its exit code (-9 when SIGKILL ended it)."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    process = ctx.Process(target=target, args=args)
    process.start()
    process.join(PROCESS_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join(5)
        pytest.fail(f"{target.__name__}{args} still ran after {PROCESS_TIMEOUT_S:.0f} s")
    assert process.exitcode is not None
    return process.exitcode


KILLED = -signal.SIGKILL


def committed(url: str) -> list[OrderEvent]:
    """Every event the store holds, order by order (orders sorted by id, not by commit)."""
    with bootstrap(url) as app:
        return [e for order_id in app.list_orders() for e in app.history(order_id)]


def pending(url: str) -> list[str]:
    store = open_any_store(url)
    try:
        with store.unit_of_work() as uow:
            return [r.event.event_id for r in uow.outbox.pending(1000)]
    finally:
        store.close()


def lost_key_exists(url: str) -> bool:
    store = open_any_store(url)
    try:
        with store.unit_of_work() as uow:
            return uow.idempotency.get(w.LOST_KEY) is not None
    finally:
        store.close()


def in_stream(names: Names) -> list[str]:
    """The message ids of the stream, in stream order (each the id of an event)."""
    return [s.msg_id for s in names.stored()]


def restart(url: str, broker: w.Broker, tmp_path: Path) -> dict[str, int]:
    report = tmp_path / f"restart-{uuid.uuid4().hex}.json"
    assert run(w.restart, url, broker, str(report)) == 0
    outcome: dict[str, int] = json.loads(report.read_text(encoding="utf-8"))
    return outcome


def test_killed_processes_lose_no_event_and_the_consumer_processes_each_once(
    url: str, names: Names, tmp_path: Path
) -> None:
    broker = w.Broker(NATS_URL, names.stream, names.prefix)

    # (a) killed inside the unit of work, before the commit
    assert run(w.crash, url, broker, w.BEFORE_COMMIT) == KILLED
    first = [e.event_id for e in committed(url)]
    assert len(first) == 5  # the completed order: placed (2 events), held, released, accepted
    assert not lost_key_exists(url)  # neither the order nor its idempotency key was stored
    assert pending(url) == []
    assert in_stream(names) == first  # and nothing of it was published
    assert restart(url, broker, tmp_path) == {"relayed": 0, "duplicates": 0, "failures": 0}

    # (b) killed after the commit, before any relay
    assert run(w.crash, url, broker, w.AFTER_COMMIT) == KILLED
    second = [e.event_id for e in committed(url) if e.event_id not in first]
    assert len(second) == 5
    assert pending(url) == second
    assert in_stream(names) == first
    assert restart(url, broker, tmp_path) == {"relayed": 5, "duplicates": 0, "failures": 0}
    assert pending(url) == []
    assert in_stream(names) == first + second

    # (c) killed after the publisher returned, before the events were marked published
    assert run(w.crash, url, broker, w.AFTER_PUBLISH) == KILLED
    third = [e.event_id for e in committed(url) if e.event_id not in first + second]
    assert len(third) == 2  # the first command's events: published, then the process died
    assert pending(url) == third
    assert in_stream(names) == first + second + third
    # the restart publishes them again; the stream recognises every copy and stores none
    assert restart(url, broker, tmp_path) == {"relayed": 2, "duplicates": 2, "failures": 0}
    assert pending(url) == []
    everything = first + second + third  # in commit order
    assert sorted(e.event_id for e in committed(url)) == sorted(everything)
    assert in_stream(names) == first + second + third

    # the consumer dies after processing (and marking) its fourth event, before acknowledging it
    ledger_path = str(tmp_path / "consumer.db")
    assert run(w.consume_then_die, broker, ledger_path, "billing", 4, ACK_WAIT_S) == KILLED
    ledger = w.Ledger(ledger_path)
    assert ledger.effects() == everything[:4]

    # the restarted consumer gets the fourth again (after ack_wait) and skips it, then the rest
    delivered: list[str] = []
    once = w.ExactlyOnce(ledger.apply, ledger.events)

    def handler(event: OrderEvent) -> None:
        delivered.append(event.event_id)
        once(event)

    with broker.consumer(handler, "billing") as consumer:
        deadline = time.monotonic() + 5 * ACK_WAIT_S + 5
        acknowledged = 0
        while acknowledged < len(everything) - 3 and time.monotonic() < deadline:
            acknowledged += consumer.poll(max_messages=10, timeout=0.5)
        assert acknowledged == len(everything) - 3
        assert consumer.poll(timeout=0.3) == 0
    # the fourth came back first (max_ack_pending=1 keeps the order); a slow acknowledgement may bring a
    # message once more, which ExactlyOnce skips
    assert list(dict.fromkeys(delivered)) == everything[3:]

    effects = ledger.effects()
    assert effects == everything  # each committed event processed once, in commit order
    assert ledger.processed() == set(everything)
    assert len(set(effects)) == len(effects)
    ledger.db.close()


def test_workers_relaying_one_outbox_at_once_put_every_event_in_the_stream_once(
    url: str, names: Names, tmp_path: Path
) -> None:
    """Four worker processes on one store drive five orders each at once, every command relaying the
    outbox they share to the stream: relays race for the same events, and no command fails for it; the
    stream then holds every committed event once (a copy a losing relay published again is dropped by
    its message id) and the outbox is empty."""
    broker = w.Broker(NATS_URL, names.stream, names.prefix)
    bootstrap(url).close()  # the schema, created once before the workers open it
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    start = ctx.Barrier(4)
    reports = [tmp_path / f"worker-{n}.json" for n in range(4)]
    workers = [
        ctx.Process(target=w.relaying, args=(url, broker, f"W{n}", 5, start, str(reports[n])))
        for n in range(4)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(PROCESS_TIMEOUT_S * 2)
        if process.is_alive():
            process.kill()
            pytest.fail("a relaying worker hung")
        assert process.exitcode == 0
    outcomes = [json.loads(r.read_text(encoding="utf-8")) for r in reports]
    assert [o["failures"] for o in outcomes] == [[], [], [], []]
    events = sorted(e.event_id for e in committed(url))
    assert len(events) == 4 * 5 * 5  # each order: placed (2 events), held, released, accepted
    assert sorted(in_stream(names)) == events  # each once
    assert pending(url) == []
