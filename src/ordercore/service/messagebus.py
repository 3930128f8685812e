"""The message bus: runs a command in a unit of work, then hands the committed events to subscribers.

Failure policy (documented in docs/concepts.md):

* A command either commits entirely or not at all; its error reaches the caller unchanged.
* Event handlers run only after the command committed, in subscription order. One failing handler does not
  stop the others and does not undo the command: the failure is logged and kept as a
  :class:`HandlerFailure` (``bus.failures``, and the ``on_failure`` callback). With ``strict=True`` the bus
  raises :class:`EventHandlerFailed` once every handler ran (tests use this).
* A handler may return follow-up commands (one or a list); the bus runs them after the current event's
  handlers, each in its own unit of work. A follow-up that fails is recorded like a failing handler, and
  so is a handler that returns anything else than None, a command or a sequence of commands.
* Events stay in the outbox until a publisher has taken them (:meth:`MessageBus.relay_outbox`), so an
  outage of the publisher delays publication but loses nothing. The relay that follows a command runs
  after it committed: a relay that fails (the publisher, or the store while marking) is recorded like a
  failing handler, and the command's result still reaches the caller, who must not run it again.
* Several workers relay from one outbox: two may take the same events. The first to mark them published
  wins; the other's mark is refused, it marks nothing of its batch and reads the outbox again, so what
  the winner left there is published again (a publisher must be idempotent by event id, as the NATS
  JetStream one is) and nothing is lost.

Retry policy for conflicts:

* A command (or follow-up) whose unit of work fails with :class:`ConcurrencyConflict` (another writer
  committed first) runs again from the start in a fresh unit of work, up to ``conflict_retries`` times
  (3 by default, 0 turns retries off), after a short random pause (2 ms, growing to at most 20 ms) so that
  the racing writers spread out. The last conflict reaches the caller. Handlers load, change and commit, so
  running one again applies the command to what the winner stored: nothing is lost.
* A command that carries ``expected_version`` is never retried: its caller asked to be told when the order
  moved on, so the conflict reaches it at once.
* A :class:`~ordercore.service.commands.PlaceOrder` that lost a race on its idempotency key (or external
  reference: the store refusing the reference at commit counts as a conflict) finds the winner's record
  when it runs again, and returns the winner's order without events (DuplicateOrder if its content differs).

Retry policy for an unavailable store:

* A command whose unit of work fails with a *retryable* :class:`~ordercore.errors.StoreUnavailable` (the
  store wrote nothing, and says another attempt may succeed: a pooled connection found broken when first
  used, a transaction the database rolled back, a write lock not granted in time) runs again the same
  way, up to ``unavailable_retries`` times (2 by default, 0 turns them off), ``expected_version`` or not.
* Any other StoreUnavailable reaches the caller at once, and so does one whose ``outcome_unknown`` says
  the connection broke while the commit was on its way: running the command again could apply it twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar, cast

import attrs

from ordercore.errors import (
    ConcurrencyConflict,
    EventHandlerFailed,
    InvalidValue,
    OrderCoreError,
    PublishRefused,
    StoreUnavailable,
)
from ordercore.events import OrderEvent
from ordercore.ports import EventPublisher, UnitOfWork
from ordercore.service.commands import Command
from ordercore.service.handlers import COMMAND_HANDLERS, CommandResult, Handler, Services

__all__ = ["EventHandler", "HandlerFailure", "MessageBus"]

log = logging.getLogger("ordercore.bus")

#: the pause before a retry after a conflict: from the first bound, growing up to the second (seconds)
_BACKOFF_S = (0.002, 0.020)

#: An event handler; it may return nothing, a follow-up command, or a sequence of them.
EventHandler = Callable[[OrderEvent], "Command | Sequence[Command] | None"]
#: an event type a handler subscribes to
E = TypeVar("E", bound=OrderEvent)


@attrs.frozen
class HandlerFailure:
    """An event handler (or a follow-up command) that raised."""

    event_id: str
    event_type: str
    handler: str
    error: str
    exception: BaseException = attrs.field(eq=False, repr=False)


def _stored_before(error: Exception, events: Sequence[OrderEvent]) -> int:
    """How many of ``events`` a publisher that raised ``error`` stored: those before the event a
    :class:`~ordercore.errors.PublishRefused` names; none for any other error."""
    if isinstance(error, PublishRefused) and error.event_id is not None:
        for i, event in enumerate(events):
            if event.event_id == error.event_id:
                return i
    return 0


class MessageBus:
    """Dispatches commands to handlers and committed events to subscribers."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        services: Services,
        *,
        command_handlers: Mapping[type[Command], Handler] | None = None,
        event_handlers: Mapping[type[OrderEvent], Iterable[EventHandler]] | None = None,
        publisher: EventPublisher | None = None,
        strict: bool = False,
        on_failure: Callable[[HandlerFailure], None] | None = None,
        max_failures_kept: int = 1000,
        conflict_retries: int = 3,
        unavailable_retries: int = 2,
    ) -> None:
        for name, value in (
            ("conflict_retries", conflict_retries),
            ("unavailable_retries", unavailable_retries),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidValue("must be a whole number, 0 or more", field=name, value=value)
        self.conflict_retries = conflict_retries
        self.unavailable_retries = unavailable_retries
        self._jitter = random.Random()
        self.uow_factory = uow_factory
        self.services = services
        self.command_handlers: dict[type[Command], Handler] = dict(command_handlers or COMMAND_HANDLERS)
        self.subscriptions: list[tuple[type[OrderEvent], EventHandler]] = [
            (event_type, h) for event_type, hs in check_event_handlers(event_handlers) for h in hs
        ]
        self.publisher = publisher
        self.strict = strict
        self.on_failure = on_failure
        self.failures: deque[HandlerFailure] = deque(maxlen=max_failures_kept)

    def subscribe(
        self, event_type: type[E], handler: Callable[[E], Command | Sequence[Command] | None]
    ) -> None:
        """Call ``handler`` for every committed event that is an instance of ``event_type``. Handlers run
        in the order they subscribed, whatever type they subscribed to. A type that is not an OrderEvent
        class, or a handler that cannot be called, is refused here (InvalidValue), not at the next event."""
        _check_subscription(event_type, handler, "event_type", "handler")
        # only instances of event_type reach it (see _dispatch)
        self.subscriptions.append((event_type, cast(EventHandler, handler)))

    def handle(self, command: Command) -> CommandResult:
        """Run ``command``; then its events' handlers, their follow-ups, and the outbox relay."""
        result = self._run(command)
        failures: list[HandlerFailure] = []
        queue: deque[OrderEvent] = deque(result.events)
        while queue:
            event = queue.popleft()
            for follow_up in self._dispatch(event, failures):
                try:
                    queue.extend(self._run(follow_up).events)
                except Exception as e:
                    self._failed(event, f"follow-up {type(follow_up).__name__}", e, failures)
        if self.publisher is not None and result.events:
            try:
                self.relay_outbox()
            except Exception as e:  # recorded: the command committed, and its events wait in the outbox
                self._failed(result.events[0], "outbox relay", e, [])
        if failures and self.strict:
            raise EventHandlerFailed(failures)
        return result

    def relay_outbox(self, batch_size: int = 500) -> int:
        """Publish pending outbox events in commit order, in batches of ``batch_size``; returns how many
        this call published and marked published. A publisher error leaves them pending (and is recorded
        as a failure), except for the events a :class:`~ordercore.errors.PublishRefused` says were stored
        before the one refused: those are marked, and the relay stops at the refused one. When another
        relay marked some of a batch first (another worker relaying from the same outbox), this one's mark
        is refused: it marks nothing of that batch and reads the outbox again, at most ``_LOST_RACES``
        times in a row; then it stops, leaving what is left to the relays racing it (or to the next one).
        A store error is raised."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidValue("must be a whole number of at least 1", field="batch_size", value=batch_size)
        if self.publisher is None:
            return 0
        published = lost = 0
        while True:
            with self.uow_factory() as uow:
                records = uow.outbox.pending(batch_size)
                if not records:
                    return published
                events = [r.event for r in records]
                refused = False
                try:
                    self.publisher.publish(events)
                except Exception as e:
                    stored = _stored_before(e, events)
                    self._failed(events[stored], f"publisher {type(self.publisher).__name__}", e, [])
                    if not stored:
                        return published
                    # the events before the refused one are stored: marked, they are not sent again
                    # on every later relay (nor stored again once the duplicate window has passed)
                    events, refused = events[:stored], True
                uow.outbox.mark_published([ev.event_id for ev in events])
                try:
                    uow.commit()
                except InvalidValue as e:
                    if e.field != "event_id":
                        raise
                    if refused or lost >= _LOST_RACES:
                        log.info(
                            "another relay marked %s first, %d times in a row; stopping", e.value, lost + 1
                        )
                        return published
                    lost += 1
                    log.debug("another relay marked %s first; reading the outbox again", e.value)
                    continue
                lost = 0
                published += len(events)
                if refused:
                    return published

    # -- internals ----------------------------------------------------------------------------------------
    def _run(self, command: Command) -> CommandResult:
        handler = self.command_handlers.get(type(command))
        if handler is None:
            raise OrderCoreError(f"no handler for command {type(command).__name__}")
        retries = 0 if getattr(command, "expected_version", None) is not None else self.conflict_retries
        attempt = unavailable = 0
        while True:
            try:
                with self.uow_factory() as uow:
                    return handler(command, uow, self.services)
            except ConcurrencyConflict as e:
                if attempt >= retries:
                    raise
                attempt += 1
                self._pause(command, e, "conflicted", attempt, retries)
            except StoreUnavailable as e:
                # nothing was written (or the store would not say retryable): the same command again, on a
                # fresh unit of work and connection; an expected_version is checked again as well
                if not e.retryable or unavailable >= self.unavailable_retries:
                    raise
                unavailable += 1
                self._pause(command, e, "found the store unavailable", unavailable, self.unavailable_retries)

    def _pause(self, command: Command, error: Exception, what: str, attempt: int, retries: int) -> None:
        pause = self._jitter.uniform(_BACKOFF_S[0], min(_BACKOFF_S[1], _BACKOFF_S[0] * 2**attempt))
        log.debug(
            "%s %s (%s); retry %d of %d in %.1f ms",
            type(command).__name__,
            what,
            error,
            attempt,
            retries,
            pause * 1000,
        )
        time.sleep(pause)

    def _dispatch(self, event: OrderEvent, failures: list[HandlerFailure]) -> list[Command]:
        follow_ups: list[Command] = []
        for event_type, handler in list(self.subscriptions):
            if not isinstance(event, event_type):
                continue
            try:
                follow_ups.extend(_follow_ups(handler(event)))
            except Exception as e:  # recorded: see the module's failure policy
                self._failed(event, _name(handler), e, failures)
        return follow_ups

    def _failed(
        self, event: OrderEvent, handler: str, error: Exception, failures: list[HandlerFailure]
    ) -> None:
        self.record_failure(event.event_id, event.type, handler, error, failures)

    def record_failure(
        self,
        event_id: str,
        event_type: str,
        handler: str,
        error: Exception,
        failures: list[HandlerFailure] | None = None,
    ) -> HandlerFailure:
        """Keep ``error`` of ``handler`` (run for ``event_id`` of ``event_type``, after a command
        committed) as a :class:`HandlerFailure`: logged, in ``failures``, and passed to ``on_failure``."""
        failure = HandlerFailure(event_id, event_type, handler, f"{type(error).__name__}: {error}", error)
        log.error("event handler %s failed on %s: %s", handler, event_id, failure.error, exc_info=error)
        self.failures.append(failure)
        if failures is not None:
            failures.append(failure)
        if self.on_failure is not None:
            try:
                self.on_failure(failure)
            except Exception:
                log.exception("on_failure callback failed")
        return failure


#: how many times in a row a relay reads the outbox again after another relay marked its batch first
_LOST_RACES = 5


def _follow_ups(out: object) -> list[Command]:
    """The commands a handler returned: None, a Command, or a sequence (or an iterator) of Commands; an
    InvalidValue saying what else it was."""
    if out is None:
        return []
    if isinstance(out, Command):
        return [out]
    if isinstance(out, str | bytes | bytearray | Mapping) or not isinstance(out, Sequence | Iterator):
        raise InvalidValue(
            f"an event handler must return None, a Command or a sequence of Commands, not {type(out).__name__}",
            field="return value",
            value=out,
        )
    commands = list(out)
    for i, command in enumerate(commands):
        if not isinstance(command, Command):
            raise InvalidValue(
                f"must be a Command, not {type(command).__name__}", field=f"return value[{i}]", value=command
            )
    return commands


def _check_subscription(event_type: object, handler: object, type_field: str, handler_field: str) -> None:
    if not isinstance(event_type, type) or not issubclass(event_type, OrderEvent):
        raise InvalidValue(
            "must be an OrderEvent class (or a subclass of one)", field=type_field, value=event_type
        )
    if not callable(handler):
        raise InvalidValue("must be callable", field=handler_field, value=handler)


def check_event_handlers(
    event_handlers: Mapping[type[OrderEvent], Iterable[EventHandler]] | None,
) -> list[tuple[type[OrderEvent], list[EventHandler]]]:
    """``event_handlers`` checked (InvalidValue naming the entry): each key an OrderEvent class, each value
    an iterable of callables (a list, not a single function)."""
    if event_handlers is None:
        return []
    if not isinstance(event_handlers, Mapping):
        raise InvalidValue(
            "must map event types to lists of handlers", field="event_handlers", value=event_handlers
        )
    checked: list[tuple[type[OrderEvent], list[EventHandler]]] = []
    for event_type, handlers in event_handlers.items():
        where = f"event_handlers[{_name(event_type)}]"
        if callable(handlers) or isinstance(handlers, str | bytes) or not isinstance(handlers, Iterable):
            raise InvalidValue("must be a list of handlers", field=where, value=handlers)
        listed = list(handlers)
        for i, h in enumerate(listed):
            _check_subscription(event_type, h, "event_handlers", f"{where}[{i}]")
        checked.append((event_type, listed))
    return checked


def _name(handler: object) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)
