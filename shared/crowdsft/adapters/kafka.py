"""Kafka wiring: one broker factory, consumer tuning and topic creation, all from settings.

Nothing here knows whether it talks to Tansu or Apache Kafka. Producers are plain (no
idempotence or transactions: Tansu lacks both), so consumers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from crowdsft.adapters.consuming import header_tolerant_parser, raw_decoder
from crowdsft.adapters.metrics import PUBLISH_FAILURES, prometheus_middleware
from crowdsft.adapters.tracing import telemetry_middlewares
from crowdsft.contracts.topics import TOPIC_EVENTS, topic_of
from crowdsft.domain.ports import Announcement, Publish
from crowdsft.settings import Settings


def security(settings: Settings) -> BaseSecurity | None:
    """SASL credentials come only from configuration, never from code or defaults."""
    if settings.kafka_sasl_mechanism is None:
        return None
    if settings.kafka_sasl_username is None or settings.kafka_sasl_password is None:
        raise ValueError("CROWDSFT_KAFKA_SASL_USERNAME and _PASSWORD are required with SASL")
    username = settings.kafka_sasl_username
    password = settings.kafka_sasl_password.get_secret_value()
    use_ssl = settings.kafka_security_protocol == "SASL_SSL"
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    return kinds[settings.kafka_sasl_mechanism](username, password, use_ssl=use_ssl)


def make_broker(settings: Settings, client_id: str, **options: Any) -> KafkaBroker:
    """Every broker is counted (FastStream's message metrics, labelled with the client id less
    its `crowdsft-` prefix) and, where the process traces, traced (context in Kafka headers)."""
    service = client_id.removeprefix("crowdsft-")
    return KafkaBroker(
        settings.kafka_bootstrap,
        client_id=client_id,
        security=security(settings),
        acks="all",
        linger_ms=5,
        # Through the process's logging (crowdsft.logs), not FastStream's own handler.
        logger=logging.getLogger("crowdsft.broker"),
        middlewares=(*telemetry_middlewares(settings), prometheus_middleware(service)),
        **options,
    )


async def answers(settings: Settings, timeout_s: float = 3.0) -> bool:
    """Whether any bootstrap address takes a TCP connection: a client that would fail asks
    this first, since a producer whose start fails is never closed (and says so on exit)."""
    for address in settings.kafka_bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout_s)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


@asynccontextmanager
async def started_broker(settings: Settings, client_id: str) -> AsyncIterator[KafkaBroker]:
    """A connected broker for a one-off producer (CLI, demo, tests), stopped on the way out."""
    broker = make_broker(settings, client_id=client_id)
    try:
        await broker.start()  # a failed start is stopped too: its producer is closed
        yield broker
    finally:
        await broker.stop()


def consumer_tuning(settings: Settings) -> dict[str, Any]:
    """Subscriber options every service shares: read from the start, commit by hand."""
    return {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


def _admin_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"bootstrap_servers": settings.kafka_bootstrap}
    if settings.kafka_sasl_mechanism is not None and settings.kafka_sasl_password is not None:
        options.update(
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


class TooFewPartitions(RuntimeError):
    """A topic has fewer partitions than replicas may consume it: refuse to start."""


async def ensure_topics(settings: Settings) -> None:
    """Create every crowdsft topic that is missing, then check every one this process can
    see has at least `max_replicas` partitions; safe to run from every service."""
    admin = AIOKafkaAdminClient(**_admin_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in TOPIC_EVENTS if name not in existing]
        for name in missing:
            # Under ACLs a service sees only its own topics and may create none: the
            # operator's set-up made them (infra/kafka/start-secure.sh).
            with contextlib.suppress(
                TopicAlreadyExistsError,
                TopicAuthorizationFailedError,
                ClusterAuthorizationFailedError,
            ):
                await admin.create_topics(
                    [NewTopic(name, settings.kafka_partitions, replication_factor=1)]
                )
        if missing:  # what was created, or what the ACLs let this process see
            existing = set(await admin.list_topics())
        visible = sorted(existing & set(TOPIC_EVENTS))
        counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(visible)}
    finally:
        await admin.close()
    check_partitions(counts, settings.max_replicas)


def check_partitions(counts: Mapping[str, int], max_replicas: int) -> None:
    short = {topic: n for topic, n in counts.items() if n < max_replicas}
    if short:
        listed = ", ".join(f"{topic} has {n}" for topic, n in sorted(short.items()))
        raise TooFewPartitions(
            f"topics have fewer partitions than CROWDSFT_MAX_REPLICAS={max_replicas}: "
            f"{listed}. A replica beyond a topic's partitions consumes nothing; add partitions "
            "(kafka-topics.sh --alter --partitions N) or lower CROWDSFT_MAX_REPLICAS"
        )


def announcer(broker: KafkaBroker) -> Publish:
    """Publish many events at once and wait until the broker has confirmed every one of them.

    Each send is queued without waiting (aiokafka batches them), then all confirmations are
    awaited together: a caller that commits offsets afterwards never commits past an unsent
    event. An unconfirmed event is counted (`crowdsft_publish_failures_total`) and raises.
    Each event goes to its type's topic (`contracts.topics`), never to one named by hand.
    """

    async def publish(announcements: Sequence[Announcement]) -> None:
        pending: list[tuple[str, Awaitable[Any]]] = []
        topic = "unknown"  # until the first event names one
        try:
            for key, event in announcements:
                topic = topic_of(event)
                sent = await broker.publish(
                    event, topic, key=key.encode() if key is not None else None, no_confirm=True
                )
                pending.append((topic, sent))
        except Exception:
            PUBLISH_FAILURES.labels(topic).inc()
            raise
        outcomes = await asyncio.gather(*(sent for _, sent in pending), return_exceptions=True)
        failed = [
            (t, o)
            for (t, _), o in zip(pending, outcomes, strict=True)
            if isinstance(o, BaseException)
        ]
        for topic, _ in failed:
            PUBLISH_FAILURES.labels(topic).inc()
        if failed:
            raise failed[0][1]

    return publish


def subscriber_options(settings: Settings, group_id: str) -> dict[str, Any]:
    """One place for how every service consumes: its own group, commit after handling."""
    return {
        "group_id": group_id,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "parser": header_tolerant_parser,
        "decoder": raw_decoder,
        **consumer_tuning(settings),
    }
