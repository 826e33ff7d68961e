"""A rate limit every gateway replica shares: one counter per key and window in MongoDB.

Each request is one atomic `$inc` with upsert on `<key>:<window>`, so replicas never lose a
count to each other; windows past their end are dropped by a TTL index where the store has
them and by an occasional sweep where it does not.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from crowdsft.adapters.mongo import RATE_LIMITS, Database
from crowdsft.ratelimit import Decision, RateLimiter, Windows

SWEEP_EVERY = 1_000  # requests, on average, between sweeps of ended windows


class RateLimit(Protocol):
    async def acquire(self, key: str) -> Decision: ...


class SharedRateLimit:
    def __init__(self, db: Database, windows: Windows,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._counters = db[RATE_LIMITS]
        self._windows = windows
        self._clock = clock

    async def acquire(self, key: str) -> Decision:
        now = self._clock()
        window = self._windows.at(now)
        count = await self._count(f"{key}:{window.index}", window.ends_at)
        if random.random() < 1 / SWEEP_EVERY:
            await self._counters.delete_many({"expires_at": {"$lt": _utc(now)}})
        return self._windows.decide(count, window, now)

    async def _count(self, counter_id: str, ends_at: float) -> int:
        try:
            return await self._increment(counter_id, ends_at)
        except DuplicateKeyError:  # two replicas created the same window at once: it exists now
            return await self._increment(counter_id, ends_at)

    async def _increment(self, counter_id: str, ends_at: float) -> int:
        doc = await self._counters.find_one_and_update(
            {"_id": counter_id},
            {"$inc": {"count": 1}, "$setOnInsert": {"expires_at": _utc(ends_at)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # an upsert that returns the document after it always has one
            raise RuntimeError(f"the store returned no counter for {counter_id}")
        return int(doc["count"])


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class LocalRateLimit:
    """The in-process bucket behind the same awaitable interface (one replica, or tests)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def acquire(self, key: str) -> Decision:
        return self._limiter.acquire(key)
