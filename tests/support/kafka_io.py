"""Raw Kafka access for tests: send exact bytes, read a topic back to the end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def produce_raw(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    try:
        pending = [
            await producer.send(topic, value, key=key, headers=headers) for key, value in records
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, idle_s: float = 1.5) -> list[dict[str, Any]]:
    """Every JSON record on the topic, read from the start until it stays quiet for idle_s."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while loop.time() - last < idle_s:
            batches = await consumer.getmany(timeout_ms=200, max_records=5_000)
            for records in batches.values():
                out.extend(json.loads(r.value) for r in records)
                last = loop.time()
    finally:
        await consumer.stop()
    return out


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records on `topics` that `group` has not committed, asked of the broker (not joining).
    The end of each partition is the high watermark of a fetch from the committed offset: Tansu
    answers ListOffsets(latest) with a smaller number once records arrive in batches."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata of every topic
        parts = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        committed = {tp: await consumer.committed(tp) or 0 for tp in parts}
        consumer.assign(parts)
        for tp, offset in committed.items():
            consumer.seek(tp, offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while any(consumer.highwater(tp) is None for tp in parts) and loop.time() < deadline:
            await consumer.getmany(timeout_ms=200)
        ends = {tp: consumer.highwater(tp) for tp in parts}
        missing = [tp for tp, end in ends.items() if end is None]
        assert not missing, f"no high watermark fetched for {missing}"
        return sum(int(ends[tp] or 0) - offset for tp, offset in committed.items())
    finally:
        await consumer.stop()


async def record_sizes(bootstrap: str, topics: list[str], idle_s: float = 1.5) -> dict[str, int]:
    """The largest record value (bytes) on each topic, read from the start until quiet."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    largest = dict.fromkeys(topics, 0)
    try:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while loop.time() - last < idle_s:
            batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                size = max(len(r.value or b"") for r in records)
                largest[tp.topic] = max(largest[tp.topic], size)
                last = loop.time()
    finally:
        await consumer.stop()
    return largest
