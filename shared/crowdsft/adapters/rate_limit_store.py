"""A rate limit every gateway replica shares, counted in MongoDB per key and window.

With a sync interval (the default), a replica counts requests locally and, once per interval,
adds them to its own share of the window (one document per replica and window, `$inc` on one
field per key) and reads every replica's shares back: a request costs no round trip, and one
write and one read per interval serve any number of keys. A replica's view is at most one
interval old while it is busy, and is read afresh before its first request after a quiet
spell; so replicas together can admit past a window's burst only what reached the others
within one interval (the trade Kong's `sync_rate` makes). A share holds one field per key that
replica saw in the window. With no interval, every request is one atomic
`find_one_and_update` with upsert on `<key>:<window>`, and the limit is exact. Windows past
their end are dropped by a TTL index where the store has them and by an occasional sweep where
it does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from crowdsft.adapters.mongo import RATE_LIMIT_SHARES, RATE_LIMITS, Database
from crowdsft.ratelimit import Decision, RateLimiter, Windows

SWEEP_EVERY = 1_000  # requests, on average, between sweeps of ended windows
SWEEP_SYNCS = 100  # syncs, on average, between sweeps of ended windows
Slot = tuple[int, str]  # (window index, key)
log = logging.getLogger(__name__)


class RateLimit(Protocol):
    async def acquire(self, key: str) -> Decision: ...

    async def close(self) -> None: ...


class SharedRateLimit:
    def __init__(self, db: Database, windows: Windows, clock: Callable[[], float] = time.time,
                 sync_s: float = 0.0) -> None:  # fmt: skip
        self._counters = db[RATE_LIMITS]
        self._shares = db[RATE_LIMIT_SHARES]
        self._windows = windows
        self._clock = clock
        self._sync_s = sync_s
        self._replica = uuid.uuid4().hex
        self._stored: Counter[Slot] = Counter()  # every replica's counts, as last read
        self._sending: Counter[Slot] = Counter()  # this replica's, being written
        self._pending: Counter[Slot] = Counter()  # this replica's, not yet written
        self._syncing: asyncio.Task[None] | None = None
        self._fresh: asyncio.Future[None] | None = None

    async def acquire(self, key: str) -> Decision:
        now = self._clock()
        window = self._windows.at(now)
        if self._sync_s <= 0:
            count = await self._count(f"{key}:{window.index}", window.ends_at)
            if random.random() < 1 / SWEEP_EVERY:
                await self._sweep(now)
            return self._windows.decide(count, window, now)
        if self._syncing is None or self._syncing.done():
            # Idle until now: the counts read last may be old, so they are read first, once
            # for every request waiting (under steady traffic the sync loop keeps them at
            # most one interval old).
            self._fresh = asyncio.get_running_loop().create_future()
            self._syncing = asyncio.create_task(self._sync_while_counting(self._fresh))
        if self._fresh is not None and not self._fresh.done():
            await asyncio.shield(self._fresh)
        slot = (window.index, key)
        self._pending[slot] += 1
        count = self._stored[slot] + self._sending[slot] + self._pending[slot]
        return self._windows.decide(count, window, now)

    async def close(self) -> None:
        """Write what is still counted here (bounded by the store's own timeouts)."""
        if self._syncing is not None:
            self._syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncing
        if self._pending:
            with contextlib.suppress(PyMongoError):
                await self.sync()

    async def sync(self) -> None:
        """Add this replica's counts to its share of each window, then read every replica's
        shares of the windows in use back: one write per window and one read, however many
        keys were counted."""
        self._sending, self._pending = self._pending, Counter()
        try:
            await self._add(self._sending)
        except PyMongoError:
            self._pending.update(self._sending)  # counted again at the next sync
            self._sending = Counter()
            raise
        current = self._windows.at(self._clock()).index
        windows = sorted({current, *(index for index, _ in self._pending)})
        stored: Counter[Slot] = Counter()
        async for share in self._shares.find({"window": {"$in": windows}}):
            for field, n in share.get("counts", {}).items():
                stored[(int(share["window"]), _unescaped(field))] += int(n)
        self._stored, self._sending = stored, Counter()
        if random.random() < 1 / SWEEP_SYNCS:
            await self._sweep(self._clock())

    async def _sync_while_counting(self, fresh: asyncio.Future[None]) -> None:
        try:
            await self._sync_logged()
        finally:
            fresh.set_result(None)
        while True:
            await asyncio.sleep(self._sync_s)
            if not self._pending:
                return
            await self._sync_logged()

    async def _sync_logged(self) -> None:
        try:
            await self.sync()
        except PyMongoError as exc:  # the local counts still limit; retried next interval
            log.warning("rate-limit sync failed: %s", exc)

    async def _add(self, counts: Counter[Slot]) -> None:
        """One document per replica and window: `counts` maps each key to what it took."""
        for index in sorted({index for index, _ in counts}):
            increments = {
                f"counts.{_escaped(key)}": n for (i, key), n in counts.items() if i == index
            }
            ends_at = _utc((index + 1) * self._windows.seconds)
            await self._shares.update_one(
                {"_id": f"{self._replica}:{index}"},
                {"$inc": increments, "$setOnInsert": {"window": index, "expires_at": ends_at}},
                upsert=True,
            )

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

    async def _sweep(self, now: float) -> None:
        for collection in (self._counters, self._shares):
            await collection.delete_many({"expires_at": {"$lt": _utc(now)}})


def _escaped(key: str) -> str:
    """A key as a field name: no dots (paths) or dollars (operators)."""
    return key.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def _unescaped(field: str) -> str:
    return field.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class LocalRateLimit:
    """The in-process bucket behind the same awaitable interface (one replica, or tests)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def acquire(self, key: str) -> Decision:
        return self._limiter.acquire(key)

    async def close(self) -> None:
        return None
