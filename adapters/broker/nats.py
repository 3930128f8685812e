"""NATS JetStream: the outbox relay's publisher, and a pull consumer for the events it published.

Why JetStream (rather than, say, RabbitMQ): the stream de-duplicates on the server by message id. Each event
is published with the header ``Nats-Msg-Id`` set to its ``event_id``, so when the relay publishes events and
crashes before marking them published, publishing them again within the stream's duplicate window stores
nothing new; and every publish is acknowledged by the stream once stored, so an event is marked published
only after the broker holds it. RabbitMQ's publisher confirms give the acknowledgement but no server-side
de-duplication. The consumer side acknowledges each message after processing it, so a consumer that crashes
before acknowledging gets the message again, and :class:`ordercore.consumer.ExactlyOnce` skips what it
already processed.

nats-py is asyncio-only; each publisher and consumer runs a private event loop in a background thread and
keeps its public API synchronous. A dropped connection is re-established with bounded retries and backoff;
after the last attempt :class:`BrokerUnavailable` (a :class:`~ordercore.errors.StoreUnavailable`) is raised,
so the outbox keeps the events. What the server refuses in a way no retry gets past (an event larger than it
or the stream takes, a consumer setting it rejects) is :class:`BrokerRefused` at once, without retries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header, StreamConfig, StreamInfo

from ordercore.errors import InvalidValue, Problem, PublishRefused, StoreUnavailable, ValidationFailed
from ordercore.events import OrderEvent
from ordercore.lifecycle import DEFAULT_LIFECYCLE, Lifecycle
from ordercore.serialization import from_json, make_converter, to_json
from ordercore_adapters._urls import masked

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT_PREFIX",
    "DEFAULT_URL",
    "MAX_POLL_MESSAGES",
    "BrokerRefused",
    "BrokerUnavailable",
    "NatsJetStreamConsumer",
    "NatsJetStreamPublisher",
]

log = logging.getLogger("ordercore.broker.nats")

T = TypeVar("T")

DEFAULT_URL = "nats://127.0.0.1:4222"
DEFAULT_STREAM = "ORDERCORE"
DEFAULT_SUBJECT_PREFIX = "ordercore.events"
MSG_ID_HEADER = "Nats-Msg-Id"
#: the most messages one :meth:`NatsJetStreamConsumer.poll` fetches (a batch is held in memory at once)
MAX_POLL_MESSAGES = 10_000

#: server refusals another attempt cannot get past: raised at once as BrokerRefused (they are nats-py
#: Errors too, so they are caught before _TRANSIENT)
_REFUSED: tuple[type[BaseException], ...] = (nats.js.errors.BadRequestError, nats.errors.MaxPayloadError)
#: errors after which the connection is dropped and the operation retried (a NotFoundError among them: a
#: stream deleted meanwhile is created again on the next connection, with ensure_stream)
_TRANSIENT: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, asyncio.TimeoutError)

_HEADER_LINE = b"NATS/1.0\r\n"
_HEADER_VALUE_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


def _headers_size(headers: Mapping[str, str]) -> int:
    """The bytes of ``headers`` as nats-py sends them (``NATS/1.0``, a ``Key: value`` line each, an empty
    line): the server counts them with the payload against its max_payload and a stream's max_msg_size."""
    lines = sum(
        len(k.strip().encode()) + len(v.strip().translate(_HEADER_VALUE_NEWLINES).encode()) + 4
        for k, v in headers.items()
    )
    return len(_HEADER_LINE) + lines + 2


#: a stream or durable consumer name JetStream takes: no spaces, dots, wildcards or path separators
_NAME = re.compile(r"[^\s.*>/\\]{1,255}")
#: a subject: dot-separated tokens without spaces; ``wildcards``: ``*`` for a token and ``>`` last
_TOKEN = re.compile(r"[^\s.*>]+")


def _problems_of_name(field: str, value: object) -> list[Problem]:
    if isinstance(value, str) and _NAME.fullmatch(value):
        return []
    why = "must be 1 to 255 characters without spaces, dots, *, >, / or \\"
    return [Problem(field, InvalidValue.code, why, value)]


def _problems_of_subject(field: str, value: object, *, wildcards: bool) -> list[Problem]:
    tokens = value.split(".") if isinstance(value, str) else []
    ok = bool(tokens) and all(
        _TOKEN.fullmatch(t) or (wildcards and (t == "*" or (t == ">" and i == len(tokens) - 1)))
        for i, t in enumerate(tokens)
    )
    if ok:
        return []
    why = "must be dot-separated tokens without spaces" + (
        " (* for a token, > for the rest)" if wildcards else ", without wildcards"
    )
    return [Problem(field, InvalidValue.code, why, value)]


def _problems_of_number(
    field: str, value: object, *, least: float, whole: bool, above: bool, most: float | None = None
) -> list[Problem]:
    kinds = (int,) if whole else (int, float)
    if (
        isinstance(value, kinds)
        and not isinstance(value, bool)
        and (value > least if above else value >= least)
        and (most is None or value <= most)
    ):
        return []
    what = "a whole number" if whole else "a number of seconds"
    bound = f"above {least:g}" if above else f"at least {least:g}"
    if most is not None:
        bound += f" and at most {most:,g}"
    return [Problem(field, InvalidValue.code, f"must be {what} {bound}", value)]


def _problems_of_events(events: object) -> list[Problem]:
    if isinstance(events, str | bytes | bytearray) or not isinstance(events, Sequence):
        why = f"must be a sequence of OrderEvent, not {type(events).__name__}"
        return [Problem("events", InvalidValue.code, why, events)]
    for i, event in enumerate(events):
        if not isinstance(event, OrderEvent):
            why = f"must be a sequence of OrderEvent; item {i} is {type(event).__name__}"
            return [Problem("events", InvalidValue.code, why, event)]
    return []


class BrokerUnavailable(StoreUnavailable):
    """The broker could not be reached, or did not store or deliver messages, after the last retry."""

    code: ClassVar[str] = "broker_unavailable"


class BrokerRefused(BrokerUnavailable, PublishRefused):
    """The broker refused a message or a request in a way no retry gets past (an event larger than the server
    or the stream takes, a setting the server rejects): raised at once, not retryable; an operator must act.
    ``event_id`` names the event refused, when the refusal was about one: every event given before it was
    stored (a :class:`~ordercore.errors.PublishRefused`, which the outbox relay marks up to it)."""

    code: ClassVar[str] = "broker_refused"


class _LoopThread:
    """An asyncio event loop running in a daemon thread; coroutines are submitted from other threads."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; its future is cancelled if :meth:`stop` comes first."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (its own timeouts bound the wait)."""
        return self.wait(self.submit(coro))

    @staticmethod
    def wait(future: concurrent.futures.Future[T]) -> T:
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        if self._loop.is_closed():
            return

        async def cancel_rest() -> None:
            # cancelled again until none is left: a task may swallow a cancellation and go on to start
            # others (Python 3.11's asyncio.wait_for does when what it waits for completes at that moment)
            current = asyncio.current_task()
            while tasks := [t for t in asyncio.all_tasks() if t is not current]:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks, timeout=0.5)
            await self._loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), self._loop).result(timeout=5)
        except (concurrent.futures.TimeoutError, RuntimeError):  # pragma: no cover - defensive
            log.warning("tasks of the NATS event loop did not finish in time")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


class _Connection:
    """One NATS connection with JetStream, (re)opened on demand, and the stream the events go to."""

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        subject_prefix: str,
        duplicate_window: float,
        ensure_stream: bool,
        connect_timeout: float,
        attempts: int,
        backoff: float,
        also: Sequence[Problem] = (),
        subject: str = "NATS settings",
    ) -> None:
        """Refuses its settings and the client's own problems (``also``) at once, before any connection:
        one as InvalidValue, several as ValidationFailed about ``subject``."""
        problems: list[Problem] = []
        if not isinstance(url, str) or not url.strip():
            problems.append(Problem("url", InvalidValue.code, "must be a NATS server URL", url))
        problems += _problems_of_name("stream", stream)
        problems += _problems_of_subject("subject_prefix", subject_prefix, wildcards=False)
        problems += _problems_of_number(
            "duplicate_window", duplicate_window, least=0, whole=False, above=True
        )
        if not isinstance(ensure_stream, bool):
            problems.append(
                Problem("ensure_stream", InvalidValue.code, "must be true or false", ensure_stream)
            )
        problems += _problems_of_number("connect_timeout", connect_timeout, least=0, whole=False, above=True)
        problems += _problems_of_number("attempts", attempts, least=1, whole=True, above=False)
        problems += _problems_of_number("backoff", backoff, least=0, whole=False, above=False)
        ValidationFailed.raise_for([*problems, *also], subject=subject)
        self.url = url
        #: the URL as messages and logs show it: without its password
        self.shown = masked(url)
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.duplicate_window = duplicate_window
        self.ensure_stream = ensure_stream
        self.connect_timeout = connect_timeout
        self.attempts = attempts
        self.backoff = backoff
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        #: the stream's max_msg_size as the last connection read it (None: not read)
        self._max_msg_size: int | None = None
        #: False once reading the stream's settings failed on this connection, with ensure_stream=False (no
        #: permission for the JetStream API, a slow reply): not read again before the next connection
        self._limit_readable = True
        #: whether that failure was logged (once per publisher, not on every connection)
        self._warned_limit = False
        #: the stream's shorter duplicate window last warned about, so that reconnecting does not repeat it
        self._warned_window: float | None = None

    async def jetstream(self) -> JetStreamContext:
        if self._js is not None and self._nc is not None and self._nc.is_connected:
            return self._js
        await self.drop()

        async def on_error(e: Exception) -> None:
            log.debug("NATS %s: %s", self.shown, e)

        options: dict[str, Any] = {
            "servers": [self.url],
            "connect_timeout": self.connect_timeout,  # seconds, a float too (nats-py's hint says int)
            "allow_reconnect": False,  # a dropped connection is re-opened by retry(), with our bounds
            "max_reconnect_attempts": 1,
            "reconnect_time_wait": 0,
            "error_cb": on_error,
        }
        nc = Client()
        try:
            await asyncio.wait_for(nc.connect(**options), timeout=2 * self.connect_timeout + 1)
        except BaseException:  # timed out, refused, or cancelled by close(): close the socket it opened
            await self._close(nc)
            raise
        self._nc, self._js = nc, nc.jetstream(timeout=max(self.connect_timeout, 1.0))
        if self.ensure_stream:
            await self._ensure_stream(self._js)
        else:
            self._limit_readable = True  # a new connection: try again
            await self._read_stream_limit_if_allowed(self._js)
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            config = StreamConfig(
                name=self.stream,
                subjects=[f"{self.subject_prefix}.>"],
                duplicate_window=self.duplicate_window,
            )
            try:
                info = await js.add_stream(config)
            except nats.js.errors.BadRequestError as refused:
                try:  # created meanwhile by someone else: fine if it exists now
                    info = await js.stream_info(self.stream)
                except nats.js.errors.NotFoundError:
                    raise refused from None  # refused for another reason (subjects of another stream)
        self._max_msg_size = info.config.max_msg_size
        self._check_duplicate_window(info)

    async def _read_stream_limit_if_allowed(self, js: JetStreamContext) -> None:
        """Read the stream's max_msg_size, for a stream someone else manages (``ensure_stream=False``), so
        that an event it would refuse is not sent with later ones in flight behind it. A stream that does
        not exist (yet) leaves it unknown until the next connection; any other failure (no permission for
        the JetStream API, a reply too slow) keeps what was read before (nothing, on a new connection): it is
        logged once per publisher, and not tried again before the next connection."""
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            self._max_msg_size = None
            return
        except (TimeoutError, nats.errors.Error) as e:
            self._limit_readable = False
            if not self._warned_limit:
                self._warned_limit = True
                log.warning(
                    "NATS %s: cannot read the settings of stream %s (%s: %s); until they can be read, an "
                    "event larger than its max_msg_size is refused by the stream only after later events "
                    "were sent with it (tried again on each new connection)",
                    self.shown,
                    self.stream,
                    type(e).__name__,
                    e,
                )
            return
        self._max_msg_size = info.config.max_msg_size

    @property
    def limit_known(self) -> bool:
        """Whether the stream's max_msg_size can be read on this connection (always with ensure_stream;
        without it, unless reading it failed on this connection)."""
        return self.ensure_stream or self._limit_readable

    async def read_stream_limit(self, js: JetStreamContext) -> None:
        """Read the stream's max_msg_size again."""
        if self.ensure_stream:
            self._max_msg_size = (await js.stream_info(self.stream)).config.max_msg_size
        else:
            await self._read_stream_limit_if_allowed(js)

    def _check_duplicate_window(self, info: StreamInfo) -> None:
        """Warn (once per window seen) when the stream exists with a shorter duplicate window than asked for:
        the existing stream is left as it is."""
        window = info.config.duplicate_window
        if window is None or window <= 0 or window >= self.duplicate_window or window == self._warned_window:
            return
        self._warned_window = window
        log.warning(
            "NATS %s: stream %s exists with a duplicate window of %gs, shorter than the duplicate_window=%gs "
            "asked for; the stream is not changed, so an event re-published more than %gs after it was "
            "stored is stored again and reaches consumers again, which must skip it by its id",
            self.shown,
            self.stream,
            window,
            self.duplicate_window,
            window,
        )

    def message_limit(self) -> tuple[int, str]:
        """The largest message (headers and payload) the connected server and the stream take, and what
        sets that limit."""
        assert self._nc is not None, "message_limit() needs a connection"
        limit, source = self._nc.max_payload, "the server's max_payload"
        if self._max_msg_size is not None and 0 < self._max_msg_size < limit:
            limit, source = self._max_msg_size, f"the max_msg_size of stream {self.stream}"
        return limit, source

    async def retry(self, what: str, operation: Callable[[JetStreamContext], Awaitable[T]]) -> T:
        """Run ``operation`` on a connected JetStream context; on a transient failure drop the connection,
        wait (exponential backoff) and try again, at most ``attempts`` times in all."""
        for attempt in range(1, self.attempts + 1):
            try:
                return await operation(await self.jetstream())
            except _REFUSED as e:  # the server said no: asking again gets the same answer
                raise BrokerRefused(
                    f"NATS JetStream at {self.shown} refused to {what}: {type(e).__name__}: {e or 'no detail'}"
                ) from e
            except _TRANSIENT as e:
                await self.drop()
                if attempt == self.attempts:
                    raise BrokerUnavailable(
                        f"NATS JetStream at {self.shown}: could not {what} after {attempt} attempt(s): "
                        f"{type(e).__name__}: {e or 'no detail'}"
                    ) from e
                log.warning("NATS %s: %s failed (%s), retrying", self.shown, what, type(e).__name__)
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    async def flush(self) -> None:
        """Wait until the server has what was sent on the connection so far (one round trip)."""
        if self._nc is not None and self._nc.is_connected:
            await self._nc.flush(timeout=max(int(self.connect_timeout), 1))

    async def drop(self) -> None:
        nc, self._nc, self._js, self._max_msg_size = self._nc, None, None, None
        if nc is not None:
            await self._close(nc)

    async def _close(self, nc: Client) -> None:
        if not nc.is_closed:
            try:
                await nc.close()
            except Exception as e:  # closing a broken connection: nothing more to do
                log.debug("NATS %s: closing failed: %s", self.shown, e)


class _Client:
    """What the publisher and the consumer share: the loop thread, the connection, closing."""

    def __init__(self, name: str, connection: _Connection) -> None:
        self._connection = connection
        self._loop = _LoopThread(name)
        self._closed = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The server's URL, without its password (``***`` in its place)."""
        return self._connection.shown

    @property
    def stream(self) -> str:
        return self._connection.stream

    @property
    def subject_prefix(self) -> str:
        return self._connection.subject_prefix

    def _run(self, coro: Coroutine[Any, Any, T], what: str = "working") -> T:
        """Run ``coro`` on the loop and wait for it; ``what`` (``"publishing"``) names it if close() from
        another thread cancels it."""
        with self._lock:  # scheduled before close() sets _closed, so close() cancels it, or refused here
            if self._closed:
                coro.close()
                raise BrokerUnavailable(f"the NATS client for {self.url} is closed")
            future = self._loop.submit(coro)
        try:
            return self._loop.wait(future)
        except concurrent.futures.CancelledError as e:
            raise BrokerUnavailable(f"the NATS client for {self.url} was closed while {what}") from e

    def close(self) -> None:
        """Close the connection and stop the background event loop. Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._loop.run(self._connection.drop())
        finally:
            self._loop.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class NatsJetStreamPublisher(_Client):
    """An :class:`~ordercore.ports.EventPublisher` that stores events in a JetStream stream.

    Each event goes, as JSON (:func:`ordercore.serialization.to_json`), to the subject
    ``<subject_prefix>.<EventType>`` with ``Nats-Msg-Id`` set to its event id, in the given order, and
    :meth:`publish` returns only once the stream acknowledged every one of them. Up to ``window`` events
    are in flight at once (their acknowledgements awaited together). The stream (``stream``,
    subjects ``<subject_prefix>.>``) is created on first connection unless it exists. A re-publish within
    ``duplicate_window`` seconds is dropped by the server; after that window a consumer sees the event again
    and must skip it by its id (:class:`ordercore.consumer.ExactlyOnce`). A stream that exists keeps its own
    duplicate window: a shorter one than ``duplicate_window`` is logged as a warning, not changed.

    An event larger than the server (its ``max_payload``) or the stream (its ``max_msg_size``, read on
    connecting) takes, with its headers, is never sent: the events before it are published,
    then :class:`BrokerRefused` names it (``event_id``), its size and the limit, and the relay stops at it
    on every attempt until an operator acts (raises the limit, or delivers the event another way and marks
    it published). With ``ensure_stream=False`` the stream's settings are read too; where they cannot be
    (no permission for the JetStream API, a reply too slow), a warning says so once, only the server's
    limit is checked, and each new connection tries again.
    When the server refuses an event it was sent (for another reason, or over a stream limit it could not
    read), that is BrokerRefused too, at once; the later events of its window, in flight with it, may
    have been stored.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        duplicate_window: float = 120.0,
        ensure_stream: bool = True,
        connect_timeout: float = 2.0,
        ack_timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.2,
        window: int = 256,
    ) -> None:
        connection = _Connection(
            url,
            stream=stream,
            subject_prefix=subject_prefix,
            duplicate_window=duplicate_window,
            ensure_stream=ensure_stream,
            connect_timeout=connect_timeout,
            attempts=attempts,
            backoff=backoff,
            also=_problems_of_number("ack_timeout", ack_timeout, least=0, whole=False, above=True)
            + _problems_of_number("window", window, least=1, whole=True, above=False),
            subject="NATS publisher settings",
        )
        super().__init__("ordercore-nats-publisher", connection)
        self.ack_timeout = ack_timeout
        self.window = window
        self.duplicates = 0  # re-published events the stream recognised and dropped, since creation

    def subject_for(self, event: OrderEvent) -> str:
        return f"{self.subject_prefix}.{event.type}"

    def publish(self, events: Sequence[OrderEvent]) -> None:
        """Store ``events`` in the stream, in order; BrokerUnavailable if that failed (some may be stored:
        publishing them again is harmless), BrokerRefused for an event the broker does not take (those
        before it are stored). Anything but a sequence of OrderEvent is InvalidValue, before connecting."""
        ValidationFailed.raise_for(_problems_of_events(events), subject="publish")
        if events:
            self._run(self._publish(list(events)), "publishing")

    async def _publish(self, events: list[OrderEvent]) -> None:
        # Publish a window of events at once and wait for all their acknowledgements: one round trip per
        # window instead of one per event. The publishes go out on the one connection in the given order,
        # so the stream stores them in that order. A window that fails is sent again whole (the stream
        # drops the copies it already holds by their message ids), after dropping the connection.
        for start in range(0, len(events), self.window):
            window = events[start : start + self.window]
            encoded = [(self.subject_for(e), to_json(e).encode("utf-8"), e.event_id) for e in window]

            async def send(
                js: JetStreamContext, encoded: list[tuple[str, bytes, str]] = encoded, before: int = start
            ) -> tuple[int, BrokerRefused | None]:
                sent, refused = self._fitting(encoded, before=before)
                if refused is not None and self._connection.limit_known:
                    # an operator may have raised the stream's limit since this connection read it
                    await self._connection.read_stream_limit(js)
                    sent, refused = self._fitting(encoded, before=before)
                acks = await asyncio.gather(
                    *(
                        js.publish(
                            subject,
                            body,
                            timeout=self.ack_timeout,
                            stream=self.stream,
                            headers={MSG_ID_HEADER: event_id},
                        )
                        for subject, body, event_id in sent
                    ),
                    return_exceptions=True,
                )
                duplicates = sum(1 for a in acks if not isinstance(a, BaseException) and a.duplicate)
                for (_, _, event_id), ack in zip(sent, acks, strict=True):
                    if isinstance(ack, _REFUSED):  # the first failure of the window is a refusal: stop
                        return duplicates, BrokerRefused(
                            f"NATS JetStream at {self.url} refused event {event_id}: "
                            f"{type(ack).__name__}: {ack}; the events before it are stored, later ones "
                            "of its window may be",
                            event_id=event_id,
                        )
                    if isinstance(ack, BaseException):  # anything else: the window is sent again
                        raise ack
                return duplicates, refused

            first, last = window[0].event_id, window[-1].event_id
            duplicates, refused = await self._connection.retry(f"publish {first}..{last}", send)
            self.duplicates += duplicates
            if refused is not None:
                raise refused

    def _fitting(
        self, encoded: list[tuple[str, bytes, str]], *, before: int
    ) -> tuple[list[tuple[str, bytes, str]], BrokerRefused | None]:
        """The messages before the first one too large for the server or the stream (headers and payload,
        as the server counts them), and the refusal of that one (None when all fit). ``before``: how many
        events of this publish came before ``encoded``."""
        limit, source = self._connection.message_limit()
        for i, (_, body, event_id) in enumerate(encoded):
            headers = {MSG_ID_HEADER: event_id, Header.EXPECTED_STREAM: self.stream}
            size = len(body) + _headers_size(headers)
            if size > limit:
                return encoded[:i], BrokerRefused(
                    f"NATS JetStream at {self.url}: event {event_id} is {size:,} bytes as a message (JSON "
                    f"and headers), more than {source} of {limit:,} bytes; not published, nor any event "
                    f"after it ({before + i} event(s) before it were)",
                    event_id=event_id,
                )
        return encoded, None


class NatsJetStreamConsumer(_Client):
    """Pulls events from a durable JetStream consumer and hands each to ``handler``, acknowledging it after.

    ``handler`` is typically an :class:`ordercore.consumer.ExactlyOnce`, so a message delivered again (the
    consumer crashed before acknowledging, or the relay re-published after the duplicate window) is
    skipped. Events are decoded with ``lifecycle``: give the one the publishing application's store
    uses, when it extends the default (a status of its own states is not an event of the default one). A
    message that is not an event (whatever its decoding raised) is logged and terminated (never
    delivered again); if terminating it fails, that is logged, the message comes back after ``ack_wait``
    (and is terminated then) and the batch goes on. When the handler raises, that message and the rest of
    the batch are negatively acknowledged (delivered again) and the error propagates. When acknowledging a
    handled event fails (the broker went away), the rest of the batch is negatively acknowledged as far as
    the broker still takes it and :class:`BrokerUnavailable` names the event; it comes back and
    ExactlyOnce skips it. Unacknowledged messages come back after ``ack_wait`` seconds, possibly after
    later messages; ``max_ack_pending=1`` keeps the stream's order at the cost of one message in flight.
    The consumer's settings (``ack_wait``, ``max_ack_pending``, ``filter_subject``) apply when the durable
    consumer is created; an existing one keeps its own, and one the server refuses (a ``filter_subject``
    outside the stream) is :class:`BrokerRefused` at the first poll.
    """

    def __init__(
        self,
        handler: Callable[[OrderEvent], object],
        *,
        durable: str,
        url: str = DEFAULT_URL,
        stream: str = DEFAULT_STREAM,
        subject_prefix: str = DEFAULT_SUBJECT_PREFIX,
        filter_subject: str | None = None,
        ack_wait: float = 30.0,
        max_ack_pending: int | None = None,
        duplicate_window: float = 120.0,
        ensure_stream: bool = True,
        connect_timeout: float = 2.0,
        attempts: int = 3,
        backoff: float = 0.2,
        lifecycle: Lifecycle = DEFAULT_LIFECYCLE,
    ) -> None:
        problems: list[Problem] = []
        if not isinstance(lifecycle, Lifecycle):
            problems.append(Problem("lifecycle", InvalidValue.code, "must be a Lifecycle", lifecycle))
        if not callable(handler):
            problems.append(Problem("handler", InvalidValue.code, "must be callable with an event", handler))
        problems += _problems_of_name("durable", durable)
        if filter_subject is not None:
            problems += _problems_of_subject("filter_subject", filter_subject, wildcards=True)
        problems += _problems_of_number("ack_wait", ack_wait, least=0, whole=False, above=True)
        if max_ack_pending is not None:
            problems += _problems_of_number(
                "max_ack_pending", max_ack_pending, least=1, whole=True, above=False
            )
        connection = _Connection(
            url,
            stream=stream,
            subject_prefix=subject_prefix,
            duplicate_window=duplicate_window,
            ensure_stream=ensure_stream,
            connect_timeout=connect_timeout,
            attempts=attempts,
            backoff=backoff,
            also=problems,
            subject="NATS consumer settings",
        )
        super().__init__(f"ordercore-nats-consumer-{durable}", connection)
        self.handler = handler
        self.durable = durable
        self.filter_subject = filter_subject or f"{subject_prefix}.>"
        self.ack_wait = ack_wait
        self.max_ack_pending = max_ack_pending
        self.lifecycle = lifecycle
        self._converter = make_converter(lifecycle)
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._subscribed_on: JetStreamContext | None = None

    def poll(self, max_messages: int = 100, timeout: float = 1.0) -> int:
        """Fetch up to ``max_messages`` (1 to :data:`MAX_POLL_MESSAGES`, waiting at most ``timeout`` seconds
        for the first), process them in order and return how many were acknowledged (0 when none was
        waiting, or none of them was an event)."""
        return self._poll(max_messages, timeout)[1]

    def drain(self, max_messages: int = 100, timeout: float = 1.0) -> int:
        """Poll until a poll fetches nothing; returns how many messages were acknowledged in all."""
        total = 0
        while True:
            fetched, acknowledged = self._poll(max_messages, timeout)
            total += acknowledged
            if not fetched:
                return total

    def _poll(self, max_messages: int, timeout: float) -> tuple[int, int]:
        """One batch, as :meth:`poll`: how many messages were fetched, and how many acknowledged."""
        ValidationFailed.raise_for(
            _problems_of_number(
                "max_messages", max_messages, least=1, whole=True, above=False, most=MAX_POLL_MESSAGES
            )
            + _problems_of_number("timeout", timeout, least=0, whole=False, above=True),
            subject="poll",
        )
        messages = self._run(
            self._connection.retry("fetch messages", self._fetcher(max_messages, timeout)),
            "fetching messages",
        )
        done = 0
        for i, msg in enumerate(messages):
            try:
                event = from_json(msg.data, OrderEvent, converter=self._converter)
            except Exception as e:  # whatever the decoder raised, this is no event of ours
                log.error(
                    "NATS %s: message on %s is not an event, terminated: %s: %s",
                    self.url,
                    msg.subject,
                    type(e).__name__,
                    e,
                )
                self._settle(msg.term(), "terminate a message that is not an event (it comes back)")
                continue
            try:
                self.handler(event)
            except Exception:
                self._give_back(messages[i:])
                raise
            try:
                self._run(msg.ack_sync(timeout=max(self._connection.connect_timeout, 1.0)), "acknowledging")
            except Exception as e:
                # this one too: a nak of a message whose acknowledgement did arrive is ignored
                self._give_back(messages[i:])
                raise BrokerUnavailable(
                    f"NATS JetStream at {self.url}: could not acknowledge event {event.event_id} after "
                    f"handling it (it comes back; ExactlyOnce skips it): {type(e).__name__}: "
                    f"{e or 'no detail'}"
                ) from e
            done += 1
        return len(messages), done

    def _fetcher(self, batch: int, timeout: float) -> Callable[[JetStreamContext], Awaitable[list[Msg]]]:
        async def fetch(js: JetStreamContext) -> list[Msg]:
            if self._subscription is None or self._subscribed_on is not js:
                config = ConsumerConfig(
                    durable_name=self.durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=self.ack_wait,
                    filter_subject=self.filter_subject,
                    max_ack_pending=self.max_ack_pending,
                )
                self._subscription = await js.pull_subscribe(
                    self.filter_subject, durable=self.durable, stream=self.stream, config=config
                )
                self._subscribed_on = js
            try:
                return await self._subscription.fetch(batch, timeout=timeout)
            except nats.errors.TimeoutError:
                return []

        return fetch

    def _give_back(self, messages: Sequence[Msg]) -> None:
        """Negatively acknowledge ``messages`` (best effort), so that they are delivered again soon."""
        if self._closed:  # nothing can be sent; they come back after ack_wait
            return
        for i, msg in enumerate(messages):
            try:
                self._run(msg.nak(), "giving messages back")
            except Exception as e:  # the broker is gone: the rest would fail alike
                log.warning(
                    "NATS %s: could not nak %d message(s), they come back after ack_wait: %s: %s",
                    self.url,
                    len(messages) - i,
                    type(e).__name__,
                    e,
                )
                return
        # the server has the naks before this returns: the next poll is given those messages again, not
        # only the ones whose nak happened to arrive before its fetch
        self._settle(self._connection.flush(), "flush the naks")

    def _settle(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        try:
            self._run(coro)
        except Exception as e:  # the message comes back after ack_wait anyway
            log.warning("NATS %s: could not %s: %s: %s", self.url, what, type(e).__name__, e)
