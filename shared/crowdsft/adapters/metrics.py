"""The business counters every service exports on /metrics, in one place so names never drift.

Counters live in the process's default Prometheus registry, so each service exposes all of
them and counts only its own: summed over every replica of every service, a counter equals
what the store holds for a run without crashes (a batch replayed after a crash counts its
rejections again; what is *stored* is never counted twice, because only first writes count).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

FEEDBACK_ACCEPTED = Counter(
    "crowdsft_feedback_accepted", "Contributions intake stored for the first time."
)
FEEDBACK_REJECTED = Counter(
    "crowdsft_feedback_rejected", "Submissions intake recorded as rejected.", ["reason"]
)
FEEDBACK_DEAD_LETTERED = Counter(
    "crowdsft_feedback_dead_lettered",
    "Submissions intake set aside on the feedback dead-letter topic.",
    ["reason"],
)
EVENTS_DEAD_LETTERED = Counter(
    "crowdsft_events_dead_lettered",
    "Records a round service set aside on the dead-letter topic.",
    ["service", "reason"],
)
ROUNDS_OPENED = Counter("crowdsft_rounds_opened", "Rounds selection opened.")
ROUNDS_DECIDED = Counter("crowdsft_rounds_decided", "Rounds whose tournament selection decided.")
ROUNDS_SCORED = Counter("crowdsft_rounds_scored", "Rounds whose points scoring wrote.")
ROUND_SECONDS = Histogram(
    "crowdsft_round_seconds",
    "From a round's opening to its decision (training every group's candidate included).",
    buckets=(0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200),
)
TRAINING_SECONDS = Histogram(
    "crowdsft_training_seconds",
    "Wall time to train one group's candidate.",
    ["backend"],
    buckets=(0.01, 0.1, 1, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
RATE_LIMIT_REFUSALS = Counter("crowdsft_rate_limit_refusals", "Requests refused with 429.", ["who"])
PUBLISH_FAILURES = Counter(
    "crowdsft_publish_failures", "Events the broker did not confirm.", ["topic"]
)
CONSUMER_LAG = Gauge(
    "crowdsft_consumer_lag",
    "Records on a partition this consumer holds that its group has not committed.",
    ["group", "topic", "partition"],
)
HTTP_SECONDS = Histogram(
    "crowdsft_http_request_seconds",
    "HTTP request latency by route template.",
    ["service", "method", "route", "status"],
)


def prometheus_middleware(service: str) -> KafkaPrometheusMiddleware:
    """FastStream's own message counts and latencies, in the same registry."""
    return KafkaPrometheusMiddleware(registry=REGISTRY, app_name=service)


def consumers(broker: KafkaBroker) -> list[AIOKafkaConsumer]:
    found: list[Any] = [getattr(s, "consumer", None) for s in broker.subscribers]
    return [c for c in found if c is not None]


_reported: dict[str, set[tuple[str, str]]] = {}  # per group, the partitions last reported


async def measure_lag(group: str, held: Iterable[AIOKafkaConsumer]) -> None:
    """Per partition held: the high watermark minus the group's committed offset (what KEDA's
    Kafka scaler reads too). A partition that moved to another replica in a rebalance stops
    being reported here, so summing over replicas never counts one twice."""
    now: set[tuple[str, str]] = set()
    for consumer in held:
        for tp in sorted(consumer.assignment(), key=lambda p: (p.topic, p.partition)):
            lag = await partition_lag(consumer, tp)
            CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(lag)
            now.add((tp.topic, str(tp.partition)))
    for topic, partition in _reported.get(group, set()) - now:
        CONSUMER_LAG.remove(group, topic, partition)
    _reported[group] = now


async def partition_lag(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    # The high watermark of this consumer's last fetch. ListOffsets is asked only before the
    # first fetch: Tansu answers it with less than the true end once records come in batches.
    end = consumer.highwater(tp)
    if end is None:
        end = (await consumer.end_offsets([tp]))[tp]
    committed = await consumer.committed(tp)
    return max(0, int(end) - int(committed or 0))
