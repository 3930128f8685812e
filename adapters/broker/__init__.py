"""Broker adapters: relaying the outbox to a message broker, and consuming what it published.

NATS JetStream (``pip install 'ordercore[nats]'``): :class:`NatsJetStreamPublisher` is an
:class:`~ordercore.ports.EventPublisher` for ``bootstrap(publisher=...)``; :class:`NatsJetStreamConsumer`
hands the events to a handler, typically wrapped in :class:`ordercore.consumer.ExactlyOnce`. Both raise
:class:`BrokerUnavailable` when the broker is gone, and :class:`BrokerRefused` (a BrokerUnavailable, not
retryable) when it refuses what it was given. Importing this package needs nats-py; nothing connects until
the first publish or poll.
"""

from __future__ import annotations

from ordercore_adapters.broker.nats import (
    DEFAULT_STREAM,
    DEFAULT_SUBJECT_PREFIX,
    DEFAULT_URL,
    MAX_POLL_MESSAGES,
    BrokerRefused,
    BrokerUnavailable,
    NatsJetStreamConsumer,
    NatsJetStreamPublisher,
)

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
