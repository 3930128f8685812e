"""The outbox relayed to a real NATS JetStream server, and consumed back exactly once in effect.

Each test uses its own stream and subject prefix on the server named by ``ORDERCORE_TEST_NATS_URL``
(default ``nats://127.0.0.1:4222``, JetStream enabled), deleted afterwards. Without a reachable server the
tests are skipped, except on CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from ordercore import (
    DEFAULT_LIFECYCLE,
    AcceptOrder,
    FireTrigger,
    HoldOrder,
    ManualClock,
    OrderCore,
    OrderStatus,
    ReleaseHold,
    SequentialIds,
    State,
    Transition,
    Trigger,
    Triggers,
    bootstrap,
)
from ordercore import open_store as open_any_store
from ordercore.consumer import ExactlyOnce, InMemoryProcessedEvents
from ordercore.errors import InvalidValue, StoreUnavailable, ValidationFailed
from ordercore.events import OrderEvent
from ordercore.ports import Store
from ordercore.serialization import from_json, to_json
from ordercore_adapters.broker import (
    MAX_POLL_MESSAGES,
    BrokerRefused,
    BrokerUnavailable,
    NatsJetStreamConsumer,
    NatsJetStreamPublisher,
)
from ordercore_adapters.broker import nats as nats_adapter
from tests.unit.factories import AT, make_order, place_command

SERVER_URL = os.environ.get("ORDERCORE_TEST_NATS_URL", "nats://127.0.0.1:4222")


async def _no_error_log(e: Exception) -> None:
    pass


async def _check_server() -> None:
    nc = await nats.connect(
        servers=[SERVER_URL],
        connect_timeout=2,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=_no_error_log,
    )
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


def _require_server() -> None:
    """Return if the test server answers with JetStream; otherwise skip (fail on CI)."""
    try:
        asyncio.run(_check_server())
    except (TimeoutError, nats.errors.Error, OSError) as e:
        reason = (
            f"NATS JetStream test server {SERVER_URL} is unreachable or has no JetStream "
            f"({type(e).__name__}: {e}); set ORDERCORE_TEST_NATS_URL"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@attrs.frozen
class Stored:
    """A message as the stream holds it."""

    subject: str
    msg_id: str
    event: OrderEvent


@attrs.frozen
class Names:
    """A stream and subject prefix of one test's own."""

    stream: str
    prefix: str

    def publisher(self, **kwargs: object) -> NatsJetStreamPublisher:
        return NatsJetStreamPublisher(
            SERVER_URL,
            stream=self.stream,
            subject_prefix=self.prefix,
            **kwargs,  # type: ignore[arg-type]
        )

    def consumer(self, handler: object, durable: str = "billing", **kwargs: object) -> NatsJetStreamConsumer:
        return NatsJetStreamConsumer(
            handler,  # type: ignore[arg-type]
            durable=durable,
            url=SERVER_URL,
            stream=self.stream,
            subject_prefix=self.prefix,
            **kwargs,  # type: ignore[arg-type]
        )

    def stored(self) -> list[Stored]:
        """Every message of the stream, in stream order."""

        async def read() -> list[Stored]:
            nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
            try:
                js = nc.jetstream()
                info = await js.stream_info(self.stream)
                out = []
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    msg = await js.get_msg(self.stream, seq)
                    assert msg.subject is not None and msg.data is not None
                    msg_id = (msg.headers or {}).get("Nats-Msg-Id", "")
                    out.append(Stored(msg.subject, msg_id, from_json(msg.data, OrderEvent)))
                return out
            finally:
                await nc.close()

        return asyncio.run(read())

    def create(self, **config: object) -> None:
        """Create the stream beforehand, as an operator (or another program) would, with ``config``."""

        async def create() -> None:
            nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
            try:
                stream = StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"], **config)  # type: ignore[arg-type]
                await nc.jetstream().add_stream(stream)
            finally:
                await nc.close()

        asyncio.run(create())

    def update(self, **config: object) -> None:
        """Change the stream's configuration, as an operator would."""

        async def update() -> None:
            nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
            try:
                js = nc.jetstream()
                stream = (await js.stream_info(self.stream)).config
                await js.update_stream(stream.evolve(**config))
            finally:
                await nc.close()

        asyncio.run(update())

    def duplicate_window(self) -> float | None:
        async def read() -> float | None:
            nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
            try:
                return (await nc.jetstream().stream_info(self.stream)).config.duplicate_window
            finally:
                await nc.close()

        return asyncio.run(read())

    def send(self, subject: str, *payloads: bytes) -> None:
        """Publish raw messages (not events) to ``<prefix>.<subject>``."""

        async def send() -> None:
            nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
            try:
                for payload in payloads:
                    await nc.jetstream().publish(f"{self.prefix}.{subject}", payload)
            finally:
                await nc.close()

        asyncio.run(send())

    def unsettled(self, durable: str = "billing") -> int:
        """How many messages ``durable`` was given and has not acknowledged or terminated yet."""

        async def read() -> int:
            nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
            try:
                return int((await nc.jetstream().consumer_info(self.stream, durable)).num_ack_pending)
            finally:
                await nc.close()

        return asyncio.run(read())

    def delete(self) -> None:
        async def delete() -> None:
            nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
            try:
                await nc.jetstream().delete_stream(self.stream)
            except nats.js.errors.NotFoundError:
                pass
            finally:
                await nc.close()

        asyncio.run(delete())


@pytest.fixture
def names() -> Iterator[Names]:
    _require_server()
    token = uuid.uuid4().hex[:12]
    n = Names(stream=f"ORDERCORE_TEST_{token}", prefix=f"test.{token}.events")
    yield n
    n.delete()


def drive(app: OrderCore) -> None:
    """Place an order and move it along: several commands, several events each."""
    order_id = app.handle(place_command()).order_id
    app.handle(HoldOrder(order_id=order_id, code="fraud-check"))
    app.handle(ReleaseHold(order_id=order_id, code="fraud-check"))
    app.handle(AcceptOrder(order_id=order_id))
    app.handle(place_command(external_ref="second"))


def pending(store: Store) -> list[OrderEvent]:
    with store.unit_of_work() as uow:
        return [r.event for r in uow.outbox.pending(1000)]


def driven() -> tuple[Store, list[OrderEvent]]:
    """A memory store after :func:`drive`, and the events waiting in its outbox."""
    store = open_any_store("memory://")
    drive(bootstrap(store, clock=ManualClock(AT), ids=SequentialIds()))
    return store, pending(store)


def all_events(app: OrderCore) -> list[OrderEvent]:
    return [e for order_id in app.list_orders() for e in app.history(order_id)]


def server_max_payload() -> int:
    """The largest message (headers and payload) the test server takes."""

    async def read() -> int:
        nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
        try:
            return nc.max_payload
        finally:
            await nc.close()

    return asyncio.run(read())


def events_with_a_large_one(json_size: int) -> list[OrderEvent]:
    """The events of three orders, in commit order; the second order's first event (``O-000002#1``, the
    third) is ``json_size`` bytes of JSON, through a long gift note."""

    def events(note: str) -> list[OrderEvent]:
        store = open_any_store("memory://")
        app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds())
        app.handle(place_command())
        app.handle(place_command(external_ref="large", attributes={"gift_note": note}))
        app.handle(place_command(external_ref="after"))
        try:
            return pending(store)
        finally:
            store.close()

    base = len(to_json(events("")[2]).encode())
    out = events("x" * (json_size - base))
    assert out[2].event_id == "O-000002#1" and len(to_json(out[2]).encode()) == json_size
    return out


def retried(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- relaying the outbox ----------------------------------------------------------------------------------
def test_relay_outbox_delivers_every_event_once_in_commit_order(names: Names) -> None:
    with names.publisher() as publisher:
        app = bootstrap("memory://", clock=ManualClock(AT), ids=SequentialIds(), publisher=publisher)
        drive(app)
        events = sorted(all_events(app), key=lambda e: (e.order_id.value, e.sequence))
        assert app.failures == ()
        assert pending(app.store) == []
        assert app.relay_outbox() == 0
        app.close()

    stored = names.stored()
    assert sorted((s.event.order_id.value, s.event.sequence) for s in stored) == [
        (e.order_id.value, e.sequence) for e in events
    ]
    assert len({s.msg_id for s in stored}) == len(stored) == len(events) > 5
    for s in stored:
        assert s.msg_id == s.event.event_id
        assert s.subject == f"{names.prefix}.{s.event.type}"
    assert [s.event for s in stored if s.event.order_id.value == "O-000001"] == [
        e for e in events if e.order_id.value == "O-000001"
    ]


def test_republishing_after_a_relay_crash_leaves_one_copy_in_the_stream(names: Names) -> None:
    store = open_any_store("memory://")
    app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds())  # no publisher: events wait
    drive(app)
    events = pending(store)
    assert len(events) > 5

    # the relay published, then crashed before marking the events published
    with names.publisher() as crashed:
        crashed.publish(events)
        assert crashed.duplicates == 0
    assert pending(store) == events

    # the restarted relay publishes them all again, and marks them
    with names.publisher() as restarted:
        app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds(), publisher=restarted)
        assert app.relay_outbox() == len(events)
        assert restarted.duplicates == len(events)
    assert pending(store) == []

    stored = names.stored()
    assert [s.msg_id for s in stored] == [e.event_id for e in events]
    assert [s.event for s in stored] == events
    store.close()


def test_a_dropped_connection_is_opened_again(names: Names) -> None:
    store, events = driven()
    with names.publisher() as publisher:
        publisher.publish(events[:2])
        connection = publisher._connection
        publisher._run(connection._nc.close())  # type: ignore[union-attr]  # the server went away
        publisher.publish(events[2:])
    assert [s.msg_id for s in names.stored()] == [e.event_id for e in events]
    store.close()


def test_unreachable_server_raises_a_typed_failure_after_bounded_retries_and_keeps_the_outbox(
    names: Names,
) -> None:
    store = open_any_store("memory://")
    down = NatsJetStreamPublisher(
        f"nats://127.0.0.1:{free_port()}",
        stream=names.stream,
        subject_prefix=names.prefix,
        connect_timeout=0.5,
        attempts=3,
        backoff=0.01,
    )
    with down:
        app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds(), publisher=down)
        order_id = app.handle(place_command()).order_id  # committed; the relay failed and was recorded
        assert [f.handler for f in app.failures] == ["publisher NatsJetStreamPublisher"]
        failure = app.failures[0].exception
        assert isinstance(failure, BrokerUnavailable)
        assert isinstance(failure, StoreUnavailable)
        assert failure.code == "broker_unavailable"
        assert "after 3 attempt(s)" in failure.message

        events = pending(store)
        assert [e.event_id for e in events] == [f"{order_id.value}#1", f"{order_id.value}#2"]

        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="after 3 attempt"):
            down.publish(events)
        assert time.monotonic() - started < 10
    assert pending(store) == events  # nothing was marked published

    with names.publisher() as up:  # the broker is back: the next relay delivers what waited
        app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds(), publisher=up)
        assert app.relay_outbox() == 2
    assert [s.event for s in names.stored()] == events
    store.close()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"url": ""}, "url"),
        ({"url": 4222}, "url"),
        ({"stream": "ORDER CORE"}, "stream"),
        ({"stream": "a.b"}, "stream"),
        ({"subject_prefix": "events.>"}, "subject_prefix"),
        ({"subject_prefix": "a..b"}, "subject_prefix"),
        ({"duplicate_window": 0}, "duplicate_window"),
        ({"connect_timeout": "2"}, "connect_timeout"),
        ({"attempts": 0}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"backoff": -0.1}, "backoff"),
        ({"ack_timeout": 0}, "ack_timeout"),
        ({"window": 0}, "window"),
        ({"window": 2.5}, "window"),
        ({"ensure_stream": "yes"}, "ensure_stream"),
    ],
)
def test_a_publisher_with_a_bad_setting_is_refused_naming_it(settings: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidValue) as info:
        NatsJetStreamPublisher(**settings)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"durable": "my worker"}, "durable"),
        ({"durable": ""}, "durable"),
        ({"handler": "print"}, "handler"),
        ({"filter_subject": "a.>.b"}, "filter_subject"),
        ({"ack_wait": -1}, "ack_wait"),
        ({"max_ack_pending": 0}, "max_ack_pending"),
    ],
)
def test_a_consumer_with_a_bad_setting_is_refused_naming_it(settings: dict[str, object], field: str) -> None:
    given: dict[str, object] = {"handler": lambda event: None, "durable": "worker-1", **settings}
    with pytest.raises(InvalidValue) as info:
        NatsJetStreamConsumer(**given)  # type: ignore[arg-type]
    assert info.value.field == field


def test_several_bad_settings_are_reported_at_once() -> None:
    with pytest.raises(ValidationFailed) as info:
        NatsJetStreamPublisher(attempts=0, window=0)
    assert sorted(p.field for p in info.value.problems) == ["attempts", "window"]


def test_a_consumer_polls_only_with_sensible_limits() -> None:
    with NatsJetStreamConsumer(lambda event: None, durable="worker-1") as consumer:
        with pytest.raises(InvalidValue) as info:
            consumer.poll(max_messages=0)
        assert info.value.field == "max_messages"
        with pytest.raises(InvalidValue) as info:
            consumer.poll(timeout=0)
        assert info.value.field == "timeout"


def test_the_server_url_is_shown_without_its_password() -> None:
    port = free_port()
    with NatsJetStreamPublisher(
        f"nats://relay:s3cret@127.0.0.1:{port}", connect_timeout=0.2, attempts=1, backoff=0.0
    ) as down:
        assert down.url == f"nats://relay:***@127.0.0.1:{port}"
        with pytest.raises(BrokerUnavailable) as info:
            down.publish(make_order().history)
    assert "s3cret" not in str(info.value) and "***" in str(info.value)


def test_a_closed_publisher_refuses_to_publish(names: Names) -> None:
    publisher = names.publisher()
    publisher.close()
    publisher.close()
    with pytest.raises(BrokerUnavailable, match="closed"):
        publisher.publish(pending(bootstrap_with_events()))


def bootstrap_with_events() -> Store:
    store = open_any_store("memory://")
    bootstrap(store, clock=ManualClock(AT), ids=SequentialIds()).handle(place_command())
    return store


@pytest.mark.parametrize("over", ["by its JSON", "only with its headers"])
def test_an_event_larger_than_the_server_takes_is_refused_by_id_and_only_the_events_before_it_are_stored(
    names: Names, caplog: pytest.LogCaptureFixture, over: str
) -> None:
    max_payload = server_max_payload()
    events = events_with_a_large_one(max_payload + 1000 if over == "by its JSON" else max_payload - 10)
    with names.publisher() as publisher, caplog.at_level(logging.WARNING, logger="ordercore.broker.nats"):
        for _ in range(2):  # the relay stops at that event every time, until an operator acts
            with pytest.raises(BrokerRefused) as info:
                publisher.publish(events)
            refused = info.value
            assert isinstance(refused, BrokerUnavailable)
            assert refused.code == "broker_refused" and refused.retryable is False
            assert refused.event_id == "O-000002#1"
            assert "O-000002#1" in refused.message and "max_payload" in refused.message
            assert f"{max_payload:,} bytes" in refused.message
            assert [s.msg_id for s in names.stored()] == ["O-000001#1", "O-000001#2"]
    assert retried(caplog) == []  # refused at once: another attempt would not help


@pytest.mark.parametrize("ensure_stream", [True, False])
def test_an_event_larger_than_the_streams_max_msg_size_is_refused_by_id_until_the_limit_is_raised(
    names: Names, caplog: pytest.LogCaptureFixture, ensure_stream: bool
) -> None:
    names.create(max_msg_size=4000)
    events = events_with_a_large_one(5000)
    with (
        names.publisher(ensure_stream=ensure_stream) as publisher,
        caplog.at_level(logging.WARNING, logger="ordercore.broker.nats"),
    ):
        with pytest.raises(BrokerRefused) as info:
            publisher.publish(events)
        assert info.value.event_id == "O-000002#1" and info.value.retryable is False
        assert retried(caplog) == []
        # the stream's limit was read on connecting (by a publisher that manages no stream as well):
        # nothing from the refused event on is sent
        assert "max_msg_size of stream" in info.value.message and "4,000 bytes" in info.value.message
        assert [s.msg_id for s in names.stored()] == ["O-000001#1", "O-000001#2"]

        names.update(max_msg_size=8000)  # the operator acts: the same publisher relays them all now
        publisher.publish(events)
    assert [s.msg_id for s in names.stored()] == [e.event_id for e in events]


def test_a_publisher_that_may_not_read_the_streams_settings_warns_once_and_tries_on_each_connection(
    names: Names, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    names.create(max_msg_size=4000)
    calls: list[str] = []
    real = JetStreamContext.stream_info
    failing = [True]

    async def stream_info(self: JetStreamContext, name: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        if failing[0]:
            raise nats.errors.TimeoutError  # what a request the account may not send ends with
        return await real(self, name, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext, "stream_info", stream_info)
    events = events_with_a_large_one(5000)
    with (
        names.publisher(ensure_stream=False) as publisher,
        caplog.at_level(logging.WARNING, logger="ordercore.broker.nats"),
    ):
        publisher.publish(events[:2])  # small ones go through
        with pytest.raises(BrokerRefused) as info:  # refused by the stream itself, once sent
            publisher.publish(events)
        assert info.value.event_id == "O-000002#1"
        assert calls == [names.stream]  # not asked again on this connection, refusal or not
        publisher._run(publisher._connection._nc.close())  # type: ignore[union-attr]  # reconnects
        publisher.publish(events[:2])
        assert calls == [names.stream] * 2  # asked again on the new connection: still failing
        failing[0] = False  # a slow reply, say, rather than no permission: the next connection reads it
        publisher._run(publisher._connection._nc.close())  # type: ignore[union-attr]
        with pytest.raises(BrokerRefused) as info:
            publisher.publish(events)
        assert "max_msg_size of stream" in info.value.message  # checked before sending, this time
    [warning] = [r for r in caplog.records if "cannot read the settings" in r.getMessage()]  # once
    assert names.stream in warning.getMessage() and "TimeoutError" in warning.getMessage()


def test_the_relay_marks_the_events_stored_before_a_refused_one_and_does_not_send_them_again(
    names: Names,
) -> None:
    names.create(max_msg_size=4000)
    store = open_any_store("memory://")
    app = bootstrap(store, clock=ManualClock(AT), ids=SequentialIds())  # no publisher yet: all wait
    app.handle(place_command())
    app.handle(place_command(external_ref="large", attributes={"gift_note": "x" * 5000}))
    app.handle(place_command(external_ref="after"))
    with names.publisher() as publisher:
        relay = bootstrap(store, publisher=publisher)
        assert relay.relay_outbox() == 2  # the first order's events, stored before the refused one
        assert [e.event_id for e in pending(store)] == [
            "O-000002#1",
            "O-000002#2",
            "O-000003#1",
            "O-000003#2",
        ]
        [failure] = relay.failures
        assert failure.event_id == "O-000002#1" and isinstance(failure.exception, BrokerRefused)
        for _ in range(2):  # every later relay stops at it again, sending nothing before it
            assert relay.relay_outbox() == 0
        assert publisher.duplicates == 0
        assert [s.msg_id for s in names.stored()] == ["O-000001#1", "O-000001#2"]
    store.close()


def test_a_stream_with_a_shorter_duplicate_window_is_warned_about_once_and_left_as_it_is(
    names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    names.create(duplicate_window=1.0)  # e.g. created first by a consumer with its own setting
    events = pending(bootstrap_with_events())
    with caplog.at_level(logging.WARNING, logger="ordercore.broker.nats"):
        with names.publisher(duplicate_window=0.5) as shorter:
            shorter.publish(events)
        assert caplog.records == []
        with names.publisher(duplicate_window=3600.0) as publisher:
            publisher.publish(events)
            publisher._run(publisher._connection._nc.close())  # type: ignore[union-attr]  # reconnects
            publisher.publish(events)
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    said = warning.getMessage()
    assert names.stream in said and "1s" in said and "3600s" in said and "by its id" in said
    assert names.duplicate_window() == 1.0  # not changed


@pytest.mark.parametrize(
    "events",
    [None, 42, "O-000001#1", b"events", ["not an event"], "with None", "a generator"],
    ids=["None", "int", "str", "bytes", "list of str", "event and None", "generator"],
)
def test_publish_refuses_anything_but_a_sequence_of_events_before_connecting(events: object) -> None:
    event = make_order().history[0]
    if events == "with None":
        events = [event, None]
    elif events == "a generator":
        events = (e for e in [event])
    with NatsJetStreamPublisher(f"nats://127.0.0.1:{free_port()}", attempts=1, backoff=0.0) as down:
        with pytest.raises(InvalidValue) as info:
            down.publish(events)  # type: ignore[arg-type]
        assert info.value.field == "events"
        down.publish([])  # nothing to do: no connection needed


def test_closing_a_publisher_while_it_publishes_makes_the_publish_broker_unavailable() -> None:
    events = pending(bootstrap_with_events())
    outcome: list[BaseException | None] = []
    with socket.socket() as silent:  # a server that accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(10)
        publisher = NatsJetStreamPublisher(
            f"nats://127.0.0.1:{silent.getsockname()[1]}", connect_timeout=30.0, attempts=1
        )

        def publish() -> None:
            try:
                publisher.publish(events)
                outcome.append(None)
            except BaseException as e:
                outcome.append(e)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        connection, _ = silent.accept()  # the publish is waiting for the server
        with connection:
            publisher.close()
            thread.join(timeout=10)
    assert not thread.is_alive()
    [error] = outcome
    assert isinstance(error, BrokerUnavailable)
    assert "closed while publishing" in error.message


# -- consuming exactly once in effect ---------------------------------------------------------------------
class Crash(BaseException):
    """The consumer process dies: nothing after this runs, not even a negative acknowledgement."""


def published(names: Names) -> list[OrderEvent]:
    store, events = driven()
    with names.publisher() as publisher:
        publisher.publish(events)
    store.close()
    return events


def test_the_consumer_hands_every_event_over_and_acknowledges_it(names: Names) -> None:
    events = published(names)
    effects: list[str] = []
    once = ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())
    with names.consumer(once) as consumer:
        assert consumer.drain(timeout=0.5) == len(events)
        assert consumer.poll(timeout=0.2) == 0
    assert effects == [e.event_id for e in events]
    with names.consumer(once) as again:  # the same durable consumer: nothing left to deliver
        assert again.poll(timeout=0.2) == 0


def test_a_failure_after_processing_redelivers_and_the_duplicate_is_skipped(names: Names) -> None:
    events = published(names)
    effects: list[str] = []
    once = ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())
    failures = iter([True, True, False])

    def fails_before_ack(event: OrderEvent) -> None:
        once(event)
        if next(failures, False):
            raise ConnectionError("lost the connection before acknowledging")

    with names.consumer(fails_before_ack) as consumer:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                consumer.poll(timeout=0.5)
        assert consumer.drain(timeout=0.5) == len(events)
    # each took effect once; in what order is the stream's only with max_ack_pending=1 (a message given
    # back comes again after those delivered meanwhile)
    assert sorted(effects) == sorted(e.event_id for e in events) and len(set(effects)) == len(effects)


@pytest.mark.parametrize("max_ack_pending", [None, 1])
def test_a_consumer_crash_before_ack_redelivers_and_the_duplicates_are_skipped(
    names: Names, max_ack_pending: int | None
) -> None:
    events = published(names)
    processed = InMemoryProcessedEvents()  # stands for the consumer's durable store of processed ids
    effects: list[str] = []

    def crashes_after_three(event: OrderEvent) -> None:
        ExactlyOnce(lambda e: effects.append(e.event_id), processed)(event)
        if len(effects) == 3:
            raise Crash

    crashed = names.consumer(crashes_after_three, ack_wait=1.0, max_ack_pending=max_ack_pending)
    with pytest.raises(Crash):
        for _ in events:
            crashed.poll(max_messages=5, timeout=0.5)
    crashed.close()
    assert effects == [e.event_id for e in events[:3]]

    once = ExactlyOnce(lambda e: effects.append(e.event_id), processed)
    with names.consumer(once) as restarted:
        deadline = time.monotonic() + 10
        acknowledged = 0
        while acknowledged < len(events) - 2 and time.monotonic() < deadline:
            acknowledged += restarted.poll(timeout=0.5)  # the unacknowledged come back after ack_wait
        assert acknowledged == len(events) - 2  # the first two were acknowledged before the crash
        assert restarted.poll(timeout=1.5) == 0
    # each once; redelivered messages may come after later ones (max_ack_pending=1 keeps the order)
    assert sorted(effects) == sorted(e.event_id for e in events)
    assert len(effects) == len(set(effects))
    if max_ack_pending == 1:
        assert effects == [e.event_id for e in events]


def test_a_message_that_is_not_an_event_is_dropped(names: Names) -> None:
    events = published(names)

    async def send_garbage() -> None:
        nc = await nats.connect(SERVER_URL, connect_timeout=2, error_cb=_no_error_log)
        try:
            await nc.jetstream().publish(f"{names.prefix}.Nonsense", b'{"type": "Nonsense"}')
        finally:
            await nc.close()

    asyncio.run(send_garbage())
    effects: list[str] = []
    with names.consumer(ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())) as c:
        assert c.drain(timeout=0.5) == len(events)
        assert c.poll(timeout=0.2) == 0
    assert effects == [e.event_id for e in events]


REVIEW = State("awaiting_fraud_review")
SEND_TO_REVIEW = Trigger("send_to_fraud_review")
WITH_REVIEW = DEFAULT_LIFECYCLE.extend(
    name="with-review",
    states=[REVIEW],
    triggers=[SEND_TO_REVIEW],
    transitions=[
        Transition(SEND_TO_REVIEW, OrderStatus.PLACED, REVIEW),
        Transition(Triggers.CANCEL, REVIEW, OrderStatus.CANCELLED),
    ],
)


def test_a_consumer_given_the_applications_lifecycle_receives_the_events_of_its_own_states(
    names: Names,
) -> None:
    with names.publisher() as publisher:
        app = bootstrap("memory://", lifecycle=WITH_REVIEW, publisher=publisher, ids=SequentialIds())
        order_id = app.handle(place_command()).order_id
        app.handle(FireTrigger(order_id=order_id, trigger=SEND_TO_REVIEW))
        assert app.failures == ()
        history = [e.event_id for e in app.get_order(order_id).history]
    effects: list[OrderEvent] = []
    once = ExactlyOnce(effects.append, InMemoryProcessedEvents())
    with names.consumer(once, lifecycle=WITH_REVIEW) as consumer:
        assert consumer.drain(timeout=0.5) == len(history)
    assert [e.event_id for e in effects] == history
    assert effects[-1] == app.get_order(order_id).history[-1]  # the status is the lifecycle's own state
    with pytest.raises(InvalidValue) as info:
        names.consumer(once, lifecycle="with-review")
    assert info.value.field == "lifecycle"


def wait_until_settled(names: Names, durable: str = "billing") -> int:
    """Wait (10 seconds at most) until the server has every delivered message of ``durable`` settled."""
    deadline = time.monotonic() + 10
    while (left := names.unsettled(durable)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_a_message_whose_decoding_fails_unexpectedly_is_terminated(
    names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, events = driven()
    with names.publisher() as publisher:
        publisher.publish(events[:2])
        names.send("Junk", b"[" * 100_000)
        publisher.publish(events[2:])
    store.close()
    decode = nats_adapter.from_json

    def decoder_that_recurses(data: bytes, cls: type[OrderEvent], **options: Any) -> OrderEvent:
        if data.startswith(b"[["):  # as from_json did before it read such JSON as invalid
            raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")
        return decode(data, cls, **options)

    monkeypatch.setattr(nats_adapter, "from_json", decoder_that_recurses)
    effects: list[str] = []
    once = ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())
    with names.consumer(once, ack_wait=1.0) as consumer:
        assert consumer.drain(timeout=0.5) == len(events)
        assert wait_until_settled(names) == 0  # terminated: not waiting to be delivered again
        assert consumer.poll(timeout=1.5) == 0
    assert effects == [e.event_id for e in events]


def test_a_failed_termination_is_logged_and_the_message_terminated_when_it_comes_back(
    names: Names, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    events = published(names)
    names.send("Junk", b'{"not": "an event"}')
    terminate = Msg.term
    terms: list[bytes] = []

    async def term_failing_once(msg: Msg) -> None:
        terms.append(msg.data)
        if len(terms) == 1:
            raise nats.errors.ConnectionClosedError
        await terminate(msg)

    monkeypatch.setattr(Msg, "term", term_failing_once)
    effects: list[str] = []
    once = ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())
    with (
        names.consumer(once, ack_wait=1.0) as consumer,
        caplog.at_level(logging.WARNING, logger="ordercore.broker.nats"),
    ):
        assert consumer.drain(timeout=0.5) == len(events)  # the batch went on past it
        assert any("could not terminate" in r.getMessage() for r in caplog.records)
        deadline = time.monotonic() + 10
        while len(terms) < 2 and time.monotonic() < deadline:  # it comes back after ack_wait
            consumer.poll(timeout=0.5)
        assert len(terms) == 2
        assert wait_until_settled(names) == 0
    assert effects == [e.event_id for e in events]


def test_a_broker_lost_while_acknowledging_is_broker_unavailable_and_every_event_comes_back(
    names: Names,
) -> None:
    events = published(names)
    effects: list[str] = []
    once = ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())
    lost: list[str] = []

    def loses_the_broker_after_the_first(event: OrderEvent) -> None:
        once(event)
        if not lost:  # the handler did its work; then the server goes away
            lost.append(event.event_id)
            consumer._run(consumer._connection._nc.close())  # type: ignore[union-attr]

    consumer = names.consumer(loses_the_broker_after_the_first, ack_wait=1.0)
    with consumer:
        with pytest.raises(BrokerUnavailable, match=f"acknowledge event {events[0].event_id}") as info:
            consumer.poll(timeout=0.5)
        assert not isinstance(info.value, BrokerRefused)
        deadline = time.monotonic() + 10
        acknowledged = 0
        while acknowledged < len(events) and time.monotonic() < deadline:
            acknowledged += consumer.poll(timeout=0.5)  # unacknowledged: back after ack_wait
        assert acknowledged == len(events)
    assert effects == [e.event_id for e in events]  # the first one's redelivery was skipped


def test_an_acknowledgement_that_fails_gives_the_rest_of_the_batch_back_at_once(
    names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = published(names)
    acknowledge = Msg.ack_sync
    acks: list[bytes] = []

    async def ack_timing_out_once(msg: Msg, timeout: float = 1.0) -> Msg:
        acks.append(msg.data)
        if len(acks) == 2:
            raise nats.errors.TimeoutError
        return await acknowledge(msg, timeout=timeout)

    monkeypatch.setattr(Msg, "ack_sync", ack_timing_out_once)
    effects: list[str] = []
    once = ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())
    with names.consumer(once) as consumer:  # ack_wait=30: only the naks bring them back this soon
        with pytest.raises(BrokerUnavailable, match=f"acknowledge event {events[1].event_id}"):
            consumer.poll(timeout=0.5)
        assert consumer.drain(timeout=0.5) == len(events) - 1
    assert sorted(effects) == sorted(e.event_id for e in events) and len(set(effects)) == len(effects)


def test_drain_goes_on_past_a_batch_of_messages_that_are_not_events(names: Names) -> None:
    store, events = driven()
    with names.publisher() as publisher:
        publisher.publish(events[:2])
        names.send("Junk", *[b'{"not": "an event"}'] * 3)
        publisher.publish(events[2:])
    store.close()
    effects: list[str] = []
    with names.consumer(ExactlyOnce(lambda e: effects.append(e.event_id), InMemoryProcessedEvents())) as c:
        assert c.drain(max_messages=2, timeout=0.5) == len(events)
    assert effects == [e.event_id for e in events]


def test_a_consumer_fetches_at_most_max_poll_messages_at_once(names: Names) -> None:
    down = NatsJetStreamConsumer(
        lambda event: None, durable="worker-1", url=f"nats://127.0.0.1:{free_port()}", attempts=1
    )
    with down:
        for too_many in (MAX_POLL_MESSAGES + 1, 2**63):
            with pytest.raises(InvalidValue) as info:
                down.poll(max_messages=too_many)
            assert info.value.field == "max_messages"
            with pytest.raises(InvalidValue):
                down.drain(max_messages=too_many)
    published(names)
    with names.consumer(lambda event: None) as consumer:
        assert consumer.poll(max_messages=MAX_POLL_MESSAGES, timeout=0.5) > 0


def test_a_filter_subject_the_server_refuses_is_broker_refused_at_once(
    names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    published(names)
    with (
        names.consumer(lambda event: None, filter_subject="elsewhere.>", attempts=3) as consumer,
        caplog.at_level(logging.WARNING, logger="ordercore.broker.nats"),
    ):
        with pytest.raises(BrokerRefused, match="BadRequestError") as info:
            consumer.poll(timeout=0.5)
        assert info.value.code == "broker_refused" and info.value.event_id is None
    assert retried(caplog) == []
