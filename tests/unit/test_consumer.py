"""ExactlyOnce and the in-memory ProcessedEvents: each event id is handled once in effect."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from ordercore.consumer import (
    ExactlyOnce,
    InMemoryProcessedEvents,
    ProcessedEvents,
    TransactionalProcessedEvents,
    process_once,
)
from ordercore.errors import InvalidValue
from ordercore.events import OrderEvent
from tests.unit.factories import make_order


def history() -> list[OrderEvent]:
    return list(make_order().history)


def test_in_memory_processed_events_is_a_processed_events() -> None:
    processed = InMemoryProcessedEvents()
    assert isinstance(processed, ProcessedEvents)
    assert not processed.seen("O-1#1")
    processed.mark("O-1#1")
    processed.mark("O-1#1")  # idempotent
    assert processed.seen("O-1#1")
    assert "O-1#1" in processed
    assert len(processed) == 1


def test_each_event_is_handled_once_however_often_it_arrives() -> None:
    events = history()
    handled: list[str] = []
    once = ExactlyOnce(lambda e: handled.append(e.event_id), InMemoryProcessedEvents())
    first = [once(e) for e in events]
    again = [once(e) for e in [*events, *reversed(events)]]
    assert first == [True] * len(events)
    assert again == [False] * (2 * len(events))
    assert handled == [e.event_id for e in events]


def test_a_failing_handler_leaves_the_event_unmarked_so_a_redelivery_retries() -> None:
    event = history()[0]
    processed = InMemoryProcessedEvents()
    calls: list[str] = []

    def flaky(e: OrderEvent) -> None:
        calls.append(e.event_id)
        if len(calls) == 1:
            raise RuntimeError("downstream is down")

    once = ExactlyOnce(flaky, processed)
    with pytest.raises(RuntimeError, match="downstream is down"):
        once(event)
    assert not processed.seen(event.event_id)
    assert once(event) is True
    assert once(event) is False
    assert calls == [event.event_id, event.event_id]


def test_a_shared_store_skips_events_another_consumer_processed() -> None:
    events = history()
    processed = InMemoryProcessedEvents()
    first: list[str] = []
    second: list[str] = []
    ExactlyOnce(lambda e: first.append(e.event_id), processed)(events[0])
    restarted = ExactlyOnce(lambda e: second.append(e.event_id), processed)
    for e in events:
        restarted(e)
    assert first == [events[0].event_id]
    assert second == [e.event_id for e in events[1:]]


def test_concurrent_deliveries_of_one_event_run_the_handler_once() -> None:
    event = history()[0]
    handled: list[str] = []
    gate = threading.Barrier(8)

    def slow(e: OrderEvent) -> None:
        handled.append(e.event_id)

    once = ExactlyOnce(slow, InMemoryProcessedEvents())

    def deliver() -> None:
        gate.wait()
        once(event)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handled == [event.event_id]


def test_process_once_runs_an_action_for_any_id() -> None:
    processed = InMemoryProcessedEvents()
    runs: list[int] = []
    assert process_once(processed, "webhook-17", lambda: runs.append(1)) is True
    assert process_once(processed, "webhook-17", lambda: runs.append(2)) is False
    assert runs == [1]


class RecordingProcessed:
    """A ProcessedEvents of the integrator's own: order of calls is what we check."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.ids: set[str] = set()

    def seen(self, event_id: str) -> bool:
        self.calls.append(f"seen {event_id}")
        return event_id in self.ids

    def mark(self, event_id: str) -> None:
        self.calls.append(f"mark {event_id}")
        self.ids.add(event_id)


def test_the_id_is_marked_only_after_the_handler_returned() -> None:
    event = history()[0]
    processed = RecordingProcessed()
    assert isinstance(processed, ProcessedEvents)
    ExactlyOnce(lambda e: processed.calls.append(f"handle {e.event_id}"), processed)(event)
    ExactlyOnce(lambda e: processed.calls.append(f"handle {e.event_id}"), processed)(event)
    assert processed.calls == ["seen O-1#1", "handle O-1#1", "mark O-1#1", "seen O-1#1"]


class Transaction:
    """A TransactionalProcessedEvents over a dict standing for a database: writes wait in ``open``."""

    def __init__(self, fail_mark: bool = False, fail_rollback: bool = False) -> None:
        self.committed: dict[str, list[str]] = {"processed": [], "effects": []}
        self.open: list[tuple[str, str]] = []
        self.calls: list[str] = []
        self.fail_mark = fail_mark
        self.fail_rollback = fail_rollback

    def write(self, table: str, value: str) -> None:
        self.open.append((table, value))

    def seen(self, event_id: str) -> bool:
        self.calls.append("seen")
        return event_id in self.committed["processed"]

    def mark(self, event_id: str) -> None:
        self.calls.append("mark")
        if self.fail_mark:
            raise ConnectionError("the database went away")
        self.write("processed", event_id)
        for table, value in self.open:
            self.committed[table].append(value)
        self.open.clear()

    def rollback(self) -> None:
        self.calls.append("rollback")
        if self.fail_rollback:
            raise ConnectionError("the database went away")
        self.open.clear()


def test_a_failed_handler_s_writes_are_rolled_back_not_committed_by_the_next_mark() -> None:
    first, second = history()[:2]
    db = Transaction()
    assert isinstance(db, TransactionalProcessedEvents)

    def invoice(event: OrderEvent) -> None:
        db.write("effects", event.event_id)
        if event is first:
            raise RuntimeError("the invoice printer jammed")

    once = ExactlyOnce(invoice, db)
    with pytest.raises(RuntimeError):
        once(first)
    assert db.calls == ["seen", "rollback"] and db.open == []
    assert once(second)
    assert db.committed == {"processed": [second.event_id], "effects": [second.event_id]}  # not the first's
    db.calls.clear()
    assert not once(second)  # a duplicate ends the transaction seen opened
    assert db.calls == ["seen", "rollback"]


def test_a_mark_that_fails_rolls_the_effects_back_and_the_error_propagates() -> None:
    db = Transaction(fail_mark=True)
    once = ExactlyOnce(lambda event: db.write("effects", event.event_id), db)
    with pytest.raises(ConnectionError):
        once(history()[0])
    assert db.calls == ["seen", "mark", "rollback"] and db.open == [] and db.committed["effects"] == []


def test_a_rollback_failing_after_a_duplicate_propagates_once() -> None:
    db = Transaction(fail_rollback=True)
    db.committed["processed"].append("O-1#1")
    with pytest.raises(ConnectionError):
        process_once(db, "O-1#1", lambda: db.write("effects", "O-1#1"))
    assert db.calls == ["seen", "rollback"]  # not rolled back a second time for its own failure


def test_a_rollback_failing_after_a_failed_handler_leaves_the_handler_s_error_to_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Transaction(fail_rollback=True)
    with pytest.raises(RuntimeError, match="jammed"):
        process_once(db, "O-1#1", lambda: (_ for _ in ()).throw(RuntimeError("jammed")))
    assert db.calls == ["seen", "rollback"]
    assert "rollback after a failure on O-1#1 failed too" in caplog.text


def test_a_plain_processed_events_is_not_asked_to_roll_back() -> None:
    processed = InMemoryProcessedEvents()
    assert not isinstance(processed, TransactionalProcessedEvents)
    with pytest.raises(RuntimeError):
        process_once(processed, "O-1#1", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not processed.seen("O-1#1")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ExactlyOnce("print", InMemoryProcessedEvents()), "handler"),
        (lambda: ExactlyOnce(lambda event: None, set()), "processed"),
        (lambda: ExactlyOnce(lambda event: None, InMemoryProcessedEvents())({"event_id": "O-1#1"}), "event"),
        (lambda: process_once(InMemoryProcessedEvents(), "", lambda: None), "event_id"),
        (lambda: process_once(InMemoryProcessedEvents(), 7, lambda: None), "event_id"),
        (lambda: process_once(InMemoryProcessedEvents(), "O-1#1", "run"), "action"),
        (lambda: process_once(object(), "O-1#1", lambda: None), "processed"),
    ],
)
def test_a_malformed_argument_is_refused_naming_it_before_anything_runs(
    make: Callable[[], object], field: str
) -> None:
    with pytest.raises(InvalidValue) as err:
        make()
    assert err.value.field == field


def test_process_once_from_many_threads_on_one_in_memory_store_runs_the_action_once() -> None:
    # without a wrapper of its own: the store itself makes the callers take turns
    processed = InMemoryProcessedEvents()
    runs: list[int] = []
    gate = threading.Barrier(8)

    def act() -> None:
        runs.append(1)
        threading.Event().wait(0.01)  # the others arrive while this one runs

    def deliver() -> None:
        gate.wait()
        process_once(processed, "webhook-17", act)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runs == [1] and "webhook-17" in processed


def test_two_wrappers_over_one_in_memory_store_handle_an_event_once() -> None:
    event = history()[0]
    processed, handled = InMemoryProcessedEvents(), []
    gate = threading.Barrier(2)

    def slow(e: OrderEvent) -> None:
        handled.append(e.event_id)
        threading.Event().wait(0.01)

    wrappers = [ExactlyOnce(slow, processed), ExactlyOnce(slow, processed)]

    def deliver(once: ExactlyOnce) -> None:
        gate.wait()
        once(event)

    threads = [threading.Thread(target=deliver, args=(w,)) for w in wrappers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert handled == [event.event_id]


def test_an_action_may_process_another_event_on_the_same_in_memory_store() -> None:
    processed, runs = InMemoryProcessedEvents(), []
    assert process_once(processed, "outer", lambda: process_once(processed, "inner", lambda: runs.append(1)))
    assert runs == [1] and "inner" in processed and "outer" in processed
