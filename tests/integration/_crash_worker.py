"""The processes of tests/integration/test_crash_recovery.py: an application (or a consumer) that is killed
at a chosen point, and the restart that recovers after it.

Each entry point runs in a process of its own and dies by SIGKILL where the test injects the crash, so no
``finally``, no ``atexit`` and no rollback of ours runs: whatever the store and the broker hold afterwards is
what a real crash leaves. The module is importable so that any multiprocessing start method finds it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ordercore import AcceptOrder, HoldOrder, PlaceOrder, ReleaseHold, bootstrap
from ordercore.consumer import ExactlyOnce
from ordercore.events import OrderEvent
from ordercore.ports import UnitOfWork
from ordercore.service.handlers import COMMAND_HANDLERS, CommandResult, Services
from ordercore_adapters.broker import NatsJetStreamConsumer, NatsJetStreamPublisher
from ordercore_adapters.sqlite import SqliteProcessedEvents
from tests.unit.factories import place_command

# where the crash is injected
BEFORE_COMMIT = "before_commit"
AFTER_COMMIT = "after_commit"
AFTER_PUBLISH = "after_publish"
#: the idempotency key of the command that dies before its commit: it must not exist afterwards
LOST_KEY = "crash-before-commit"


def die() -> None:
    """End this process at once, as a power cut or the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # pragma: no cover - where there is no SIGKILL


class Broker:
    """Where the events go: a NATS server and a stream of the test's own."""

    def __init__(self, url: str, stream: str, prefix: str) -> None:
        self.url, self.stream, self.prefix = url, stream, prefix

    def publisher(self) -> NatsJetStreamPublisher:
        return NatsJetStreamPublisher(self.url, stream=self.stream, subject_prefix=self.prefix)

    def consumer(self, handler: Any, durable: str, **kwargs: Any) -> NatsJetStreamConsumer:
        return NatsJetStreamConsumer(
            handler, durable=durable, url=self.url, stream=self.stream, subject_prefix=self.prefix, **kwargs
        )


class _DiesOnCommit:
    """A unit of work whose commit kills the process: the handler's changes are made, never committed."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uow, name)

    def commit(self) -> None:
        die()


def _place_then_die(cmd: PlaceOrder, uow: UnitOfWork, svc: Services) -> CommandResult:
    return COMMAND_HANDLERS[PlaceOrder](cmd, _DiesOnCommit(uow), svc)  # type: ignore[arg-type]


class _DiesAfterPublish:
    """Publishes for real, then dies before the bus marks the events published."""

    def __init__(self, publisher: NatsJetStreamPublisher) -> None:
        self.publisher = publisher

    def publish(self, events: Sequence[OrderEvent]) -> None:
        self.publisher.publish(events)
        die()


def _drive(app: Any, ref: str) -> None:
    """A few commands on one order: several transactions, several events."""
    order_id = app.handle(place_command(external_ref=ref)).order_id
    app.handle(HoldOrder(order_id=order_id, code="fraud-check"))
    app.handle(ReleaseHold(order_id=order_id, code="fraud-check"))
    app.handle(AcceptOrder(order_id=order_id))


def crash(url: str, broker: Broker, point: str) -> None:
    """Do some work that completes, then die at ``point``."""
    if point == BEFORE_COMMIT:
        with broker.publisher() as publisher:
            app = bootstrap(url, publisher=publisher)
            _drive(app, f"{point}-done")  # committed and relayed
            dying = bootstrap(url, publisher=publisher, command_handlers={PlaceOrder: _place_then_die})
            dying.handle(place_command(external_ref=f"{point}-lost", idempotency_key=LOST_KEY))
    elif point == AFTER_COMMIT:
        app = bootstrap(url)  # no publisher: the events wait in the outbox
        _drive(app, f"{point}-done")
        die()
    elif point == AFTER_PUBLISH:
        publisher = broker.publisher()
        app = bootstrap(url, publisher=_DiesAfterPublish(publisher))
        _drive(app, f"{point}-done")  # the first relay publishes, then the process dies
    raise AssertionError(f"{point}: the process should have died")


def relaying(url: str, broker: Broker, ref: str, orders: int, start: Any, report: str) -> None:
    """One of several workers on one store, each relaying the outbox after its commands: drive ``orders``
    orders once every worker is ready (``start``, a barrier); write its failures to ``report``."""
    with broker.publisher() as publisher, bootstrap(url, publisher=publisher) as app:
        start.wait()
        for i in range(orders):
            _drive(app, f"{ref}-{i}")
        outcome = {"failures": [f.error for f in app.failures], "duplicates": publisher.duplicates}
    Path(report).write_text(json.dumps(outcome), encoding="utf-8")


def restart(url: str, broker: Broker, report: str) -> None:
    """The restarted application: relay what the outbox holds; write what happened to ``report``."""
    with broker.publisher() as publisher, bootstrap(url, publisher=publisher) as app:
        relayed = app.relay_outbox()
        outcome = {"relayed": relayed, "duplicates": publisher.duplicates, "failures": len(app.failures)}
    Path(report).write_text(json.dumps(outcome), encoding="utf-8")


class Ledger:
    """The consumer's effects and the ids it processed, in one SQLite file: the shipped
    SqliteProcessedEvents (``events``) commits both in ``mark``."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, pid INTEGER NOT NULL)")
        self.db.commit()
        self.events = SqliteProcessedEvents(self.db, table="processed")

    def apply(self, event: OrderEvent) -> None:
        self.db.execute("INSERT INTO effects VALUES (?, ?)", (event.event_id, os.getpid()))

    def effects(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT event_id FROM effects ORDER BY rowid")]

    def processed(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT event_id FROM processed")}


def consume_then_die(broker: Broker, ledger_path: str, durable: str, after: int, ack_wait: float) -> None:
    """Consume exactly once in effect; die once ``after`` events were processed and marked, before the
    acknowledgement of the last one."""
    ledger = Ledger(ledger_path)
    once = ExactlyOnce(ledger.apply, ledger.events)
    count = 0

    def handler(event: OrderEvent) -> None:
        nonlocal count
        if once(event):  # a redelivery (slow acknowledgement) is skipped and not counted
            count += 1
            if count == after:
                die()

    consumer = broker.consumer(handler, durable, ack_wait=ack_wait, max_ack_pending=1)
    while True:
        consumer.poll(max_messages=10, timeout=1.0)
