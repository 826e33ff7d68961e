"""Rate limits: pure logic, the clock injected so tests need no sleep.

Two forms of one limit (`burst` at once, `per_minute` on average): a token bucket per key in
one process, and fixed windows whose counters live in a shared store, so that every gateway
replica counts the same requests (`adapters.rate_limit_store`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """Whether a request may proceed; when not, how long until one more token exists."""

    allowed: bool
    retry_after_s: float = 0.0


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    """A token bucket per key: `burst` requests at once, then `per_minute` on average.

    In-process state: with several replicas each enforces the limit on its own, so a key
    gets up to replicas x the limit; `Windows` is the form a shared counter can hold.
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("per_minute and burst must be at least 1")
        self._rate = per_minute / 60.0
        self._burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key: str) -> Decision:
        """Take one token from the key's bucket if there is one."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._forget_full_buckets(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated_at)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.updated_at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Decision(True)
        return Decision(False, (1.0 - bucket.tokens) / self._rate)

    def _forget_full_buckets(self, now: float) -> None:
        """Bound memory: a bucket that has refilled completely is the same as no bucket."""
        if len(self._buckets) < self._max_keys:
            return
        refill_s = self._burst / self._rate
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if now - bucket.updated_at < refill_s
        }


@dataclass(frozen=True)
class Window:
    index: int
    ends_at: float


class Windows:
    """Fixed windows of `burst / rate` seconds, each allowing `burst` requests: the same
    average as the bucket, at most two bursts back to back across a window's edge, and a
    state that is one counter per key and window, which any store can increment atomically."""

    def __init__(self, per_minute: int, burst: int) -> None:
        if per_minute < 1 or burst < 1:
            raise ValueError("per_minute and burst must be at least 1")
        self.burst = burst
        self.seconds = burst / (per_minute / 60.0)

    def at(self, now: float) -> Window:
        index = int(now // self.seconds)
        return Window(index, (index + 1) * self.seconds)

    def decide(self, count: int, window: Window, now: float) -> Decision:
        """`count` is this request's number in its window, itself included."""
        if count <= self.burst:
            return Decision(True)
        return Decision(False, max(0.0, window.ends_at - now))
