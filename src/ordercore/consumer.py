"""Consuming events exactly once in effect: skip the ones already processed, remember the ones handled.

A broker delivers at least once: a consumer that crashes after its effects but before acknowledging a
message gets it again, and an outbox relay that crashes after publishing but before marking the events sent
publishes them again. :class:`ExactlyOnce` turns that into "exactly once in effect" by event id: it runs
the handler only for ids its :class:`ProcessedEvents` has not seen, and marks the id once the handler
returned. The guarantee is as strong as the store behind ``mark``: when ``mark`` commits in the same
transaction as the handler's effects, a crash anywhere leaves both or neither; when it does not, a crash
between the effects and ``mark`` runs the handler again, so the handler should be idempotent too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Protocol, runtime_checkable

from ordercore.errors import InvalidValue
from ordercore.events import OrderEvent

log = logging.getLogger("ordercore.consumer")

__all__ = [
    "ExactlyOnce",
    "InMemoryProcessedEvents",
    "ProcessedEvents",
    "TransactionalProcessedEvents",
    "process_once",
]


@runtime_checkable
class ProcessedEvents(Protocol):
    """The ids of the events a consumer has processed.

    ``mark`` must be idempotent (marking a marked id changes nothing). Where the consumer's effects live in
    a transactional store, ``mark`` should write the id in the same transaction as the effects and commit
    them together, so that effects and mark are atomic. A store with no transaction to make a second
    caller wait may offer ``turn``, a (re-entrant) lock that :func:`process_once` holds from the look-up
    to the mark, as :class:`InMemoryProcessedEvents` does.
    """

    def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was marked."""
        ...

    def mark(self, event_id: str) -> None:
        """Remember ``event_id`` as processed."""
        ...


@runtime_checkable
class TransactionalProcessedEvents(ProcessedEvents, Protocol):
    """A :class:`ProcessedEvents` whose ``seen`` and ``mark`` bracket one transaction of the consumer's own
    store: ``seen`` opens it (and may wait there while another consumer handles the same id), the handler
    writes its effects in it, and ``mark`` adds the id and commits effects and mark together.
    :func:`process_once` calls ``rollback`` to end that transaction when there is nothing to commit: the
    id was seen already, or the handler (or ``mark``) raised, so that what a failed handler wrote is
    dropped rather than committed by the next event's ``mark``. ``ordercore_adapters.sqlite`` and
    ``ordercore_adapters.postgres`` ship one each."""

    def rollback(self) -> None:
        """Drop what the transaction opened by ``seen`` holds, and end it."""
        ...


class InMemoryProcessedEvents:
    """Processed event ids in a set: for tests and single-process consumers whose effects are in memory too
    (it forgets everything when the process ends).

    :func:`process_once` and every :class:`ExactlyOnce` over one of these take turns on it, whatever thread
    calls them: looking an id up, running the action and marking the id happen under one lock of the
    set's, so two threads given the same event run its action once (and no two actions run at once)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        #: held by process_once from the look-up to the mark (re-entrant: an action may process others)
        self.turn = threading.RLock()

    def seen(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._ids

    def mark(self, event_id: str) -> None:
        with self._lock:
            self._ids.add(event_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        with self._lock:
            return event_id in self._ids


def process_once(processed: ProcessedEvents, event_id: str, action: Callable[[], object]) -> bool:
    """Run ``action`` unless ``event_id`` was processed, then mark it; True when ``action`` ran.

    If ``action`` raises, the id is not marked and the error propagates, so a redelivery tries again. With a
    :class:`TransactionalProcessedEvents`, the transaction ``seen`` opened is rolled back whenever nothing
    is to be committed: after a duplicate, and when ``action`` or ``mark`` raised.
    """
    if not isinstance(processed, ProcessedEvents):
        raise InvalidValue("must be a ProcessedEvents (seen and mark)", field="processed", value=processed)
    if not isinstance(event_id, str) or not event_id.strip():
        raise InvalidValue("must be a non-empty event id", field="event_id", value=event_id)
    if not callable(action):
        raise InvalidValue("must be callable", field="action", value=action)
    return _process_once(processed, _rollback_of(processed), event_id, action)


def _rollback_of(processed: ProcessedEvents) -> Callable[[], None] | None:
    return processed.rollback if isinstance(processed, TransactionalProcessedEvents) else None


def _process_once(
    processed: ProcessedEvents,
    rollback: Callable[[], None] | None,
    event_id: str,
    action: Callable[[], object],
) -> bool:
    """:func:`process_once` on arguments already checked, ``rollback`` that of ``processed`` if any."""
    with getattr(processed, "turn", None) or nullcontext():  # callers take turns where nothing else waits
        try:
            duplicate = processed.seen(event_id)
            if not duplicate:
                action()
                processed.mark(event_id)
        except BaseException:
            if rollback is not None:
                try:
                    rollback()
                except Exception:  # the first failure is the one to report; the store will say it again
                    log.warning("rollback after a failure on %s failed too", event_id, exc_info=True)
            raise
        if duplicate and rollback is not None:
            rollback()  # outside the try: a failure here is reported as it is, and not rolled back twice
        return not duplicate


class ExactlyOnce:
    """Wraps an event handler so that each event id is handled once in effect, however often it arrives.

    Calling the wrapper with an event returns True when the handler ran and False when the event was a
    duplicate and skipped. Calls are serialized, so two threads delivering the same event to one wrapper
    do not both run the handler. Consumers in other processes need a shared ``processed`` store that either
    makes the second one wait in ``seen`` until the first committed (as the shipped SQLite and PostgreSQL
    stores do) or makes its ``mark`` fail, rolling back its effects (a primary key on the event id, with no
    ``ON CONFLICT`` clause); a ``mark`` that silently ignores a second writer lets both effects stand.
    """

    def __init__(self, handler: Callable[[OrderEvent], object], processed: ProcessedEvents) -> None:
        if not callable(handler):
            raise InvalidValue("must be callable with an event", field="handler", value=handler)
        if not isinstance(processed, ProcessedEvents):
            raise InvalidValue(
                "must be a ProcessedEvents (seen and mark)", field="processed", value=processed
            )
        self.handler = handler
        self._processed = processed
        # worked out once: a runtime protocol check costs microseconds, and this runs per event
        self._rollback = _rollback_of(processed)
        self._lock = threading.Lock()

    @property
    def processed(self) -> ProcessedEvents:
        """The store of processed ids (fixed for the wrapper's life)."""
        return self._processed

    def __call__(self, event: OrderEvent) -> bool:
        if not isinstance(event, OrderEvent):
            raise InvalidValue("must be an OrderEvent", field="event", value=event)
        with self._lock:
            return _process_once(self._processed, self._rollback, event.event_id, lambda: self.handler(event))
