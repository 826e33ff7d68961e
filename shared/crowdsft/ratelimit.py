"""Per-contributor token buckets: pure logic, the clock is injected so tests need no sleep."""

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

    In-process state: with several gateway replicas each enforces the limit on its own, so
    a contributor gets up to replicas x the limit. A limiter shared between replicas (in
    Redis, say) is future work.
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
