"""Contract suite for transactional processed-event stores (requires pytest).

A :class:`~ordercore.consumer.TransactionalProcessedEvents` is what makes a consumer's effects happen
exactly once in effect: its ``seen`` opens a transaction of the consumer's own database, the handler
writes its effects in it, ``mark`` commits them with the event id, ``rollback`` drops them. Subclass
:class:`ProcessedEventsContract` in a test module and provide a ``consumer_db`` fixture yielding a
:class:`ConsumerDatabase` over a fresh, empty database; pytest then runs every contract test against it::

    class TestMyProcessedEvents(ProcessedEventsContract):
        @pytest.fixture
        def consumer_db(self, tmp_path):
            db = MyConsumerDatabase(tmp_path / "consumer.db")
            yield db
            db.drop()

The shipped ``SqliteProcessedEvents`` and ``PostgresProcessedEvents`` pass it.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Iterator
from typing import Protocol

import pytest

from ordercore.consumer import TransactionalProcessedEvents, process_once

__all__ = ["ConsumerDatabase", "ProcessedEventsContract"]


class ConsumerDatabase(Protocol):
    """One consumer database, as the contract drives it.

    ``open`` returns a new processed-event store over a connection of its own (the contract opens
    several at once, from different threads, to play consumers in different processes); ``write_effect``
    writes one effect row for ``event_id`` through that store's connection, in its open transaction;
    ``committed_effects`` is the event ids of the effects committed, one per row (duplicates included),
    as a fresh connection sees them; ``close`` closes a store's connection."""

    def open(self) -> TransactionalProcessedEvents: ...

    def write_effect(self, processed: TransactionalProcessedEvents, event_id: str) -> None: ...

    def committed_effects(self) -> list[str]: ...

    def close(self, processed: TransactionalProcessedEvents) -> None: ...


@contextlib.contextmanager
def _opened(db: ConsumerDatabase) -> Iterator[TransactionalProcessedEvents]:
    """A store over a new connection, closed afterwards."""
    processed = db.open()
    try:
        yield processed
    finally:
        db.close(processed)


def _ids(n: int) -> list[str]:
    return [f"O-{i:04d}#1" for i in range(1, n + 1)]


class ProcessedEventsContract:
    """The behaviour every transactional processed-event store must have. Provide ``consumer_db``."""

    @pytest.fixture
    def consumer_db(self) -> ConsumerDatabase:
        raise NotImplementedError("provide a consumer_db fixture yielding a ConsumerDatabase")

    # -- the protocol, step by step ------------------------------------------------------------------------
    def test_a_new_id_is_not_seen_and_a_marked_one_is_from_any_connection(
        self, consumer_db: ConsumerDatabase
    ) -> None:
        with _opened(consumer_db) as first, _opened(consumer_db) as other:
            assert isinstance(first, TransactionalProcessedEvents)
            assert not first.seen("O-1#1")
            first.mark("O-1#1")
            assert other.seen("O-1#1")
            assert not other.seen("O-1#2")
            other.rollback()
        with _opened(consumer_db) as later:  # a connection opened afterwards: the mark is in the database
            assert later.seen("O-1#1")
            later.rollback()

    def test_mark_commits_the_effects_written_since_seen(self, consumer_db: ConsumerDatabase) -> None:
        with _opened(consumer_db) as processed:
            assert not processed.seen("O-1#1")
            consumer_db.write_effect(processed, "O-1#1")
            assert consumer_db.committed_effects() == []  # not before mark
            processed.mark("O-1#1")
            assert consumer_db.committed_effects() == ["O-1#1"]

    def test_rollback_drops_the_effects_and_leaves_the_id_unmarked(
        self, consumer_db: ConsumerDatabase
    ) -> None:
        with _opened(consumer_db) as processed:
            assert not processed.seen("O-1#1")
            consumer_db.write_effect(processed, "O-1#1")
            processed.rollback()
            assert consumer_db.committed_effects() == []
            assert not processed.seen("O-1#1")
            assert not processed.seen("O-1#2")
            processed.mark("O-1#2")  # the next transaction commits its own writes only
            assert consumer_db.committed_effects() == []

    def test_marking_a_marked_id_changes_nothing(self, consumer_db: ConsumerDatabase) -> None:
        with _opened(consumer_db) as processed:
            assert not processed.seen("O-1#1")
            processed.mark("O-1#1")
            assert processed.seen("O-1#1")
            processed.mark("O-1#1")
            assert processed.seen("O-1#1")
            processed.rollback()

    # -- through process_once, which ExactlyOnce calls for each event ----------------------------------
    def test_a_failed_action_leaves_nothing_and_its_redelivery_goes_through(
        self, consumer_db: ConsumerDatabase
    ) -> None:
        with _opened(consumer_db) as processed:

            def failing() -> None:
                consumer_db.write_effect(processed, "O-1#1")
                raise RuntimeError("the ERP is down")

            with pytest.raises(RuntimeError):
                process_once(processed, "O-1#1", failing)
            assert process_once(processed, "O-1#2", lambda: consumer_db.write_effect(processed, "O-1#2"))
            assert consumer_db.committed_effects() == ["O-1#2"]  # not the failed one's write
            assert process_once(processed, "O-1#1", lambda: consumer_db.write_effect(processed, "O-1#1"))
            assert sorted(consumer_db.committed_effects()) == ["O-1#1", "O-1#2"]

    def test_a_duplicate_is_skipped_and_what_its_action_would_write_is_not_written(
        self, consumer_db: ConsumerDatabase
    ) -> None:
        with _opened(consumer_db) as processed:
            assert process_once(processed, "O-1#1", lambda: consumer_db.write_effect(processed, "O-1#1"))
            ran: list[str] = []
            assert not process_once(processed, "O-1#1", lambda: ran.append("again"))
            assert ran == []
            assert consumer_db.committed_effects() == ["O-1#1"]

    def test_redeliveries_with_failures_leave_each_effect_exactly_once(
        self, consumer_db: ConsumerDatabase
    ) -> None:
        """A broker's at-least-once delivery, played out: every event arrives one to three times, in a
        shuffled order, and one delivery in four fails after writing its effect; then every event is
        delivered once more, without failures. Each event's effect is committed once."""
        rng = random.Random(7)
        ids = _ids(30)
        deliveries = [i for i in ids for _ in range(rng.randint(1, 3))]
        rng.shuffle(deliveries)
        with _opened(consumer_db) as processed:
            for event_id, fails in [
                *((i, rng.random() < 0.25) for i in deliveries),
                *((i, False) for i in ids),
            ]:

                def handle(event_id: str = event_id, fails: bool = fails) -> None:
                    consumer_db.write_effect(processed, event_id)
                    if fails:
                        raise RuntimeError("lost the connection to the ERP")

                with contextlib.suppress(RuntimeError):
                    process_once(processed, event_id, handle)
        assert sorted(consumer_db.committed_effects()) == sorted(ids)

    # -- consumers in several processes --------------------------------------------------------------------
    def test_two_consumers_given_one_event_at_once_apply_it_once(self, consumer_db: ConsumerDatabase) -> None:
        """Two consumers, each on its own connection, get the same events at the same moments (as two
        processes would after a redelivery): each event's effect is committed once, and each event ran
        its handler once."""
        ids = _ids(5)
        start = threading.Barrier(2)
        ran: dict[str, int] = {}
        errors: list[BaseException] = []
        lock = threading.Lock()

        def consume() -> None:
            try:
                with _opened(consumer_db) as processed:

                    def handle(event_id: str) -> None:
                        consumer_db.write_effect(processed, event_id)
                        with lock:
                            ran[event_id] = ran.get(event_id, 0) + 1
                        time.sleep(0.02)  # still in the transaction when the other one arrives

                    for event_id in ids:
                        start.wait(timeout=30)
                        process_once(processed, event_id, functools.partial(handle, event_id))
            except BaseException as e:
                start.abort()
                errors.append(e)

        threads = [threading.Thread(target=consume) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert ran == {event_id: 1 for event_id in ids}
        assert sorted(consumer_db.committed_effects()) == ids
