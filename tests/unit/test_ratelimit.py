"""Token buckets with a fake clock: bursts, refill, per-key isolation, Retry-After."""

from __future__ import annotations

import pytest

from crowdsft.ratelimit import RateLimiter, Windows


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire("alice").allowed for _ in range(4)] == [True, True, True, False]


def test_refills_at_the_rate_and_reports_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=30, burst=1, clock=clock)  # one token every 2 s
    assert limiter.acquire("alice").allowed
    refused = limiter.acquire("alice")
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(2.0)
    clock.now += 1.0
    assert limiter.acquire("alice").retry_after_s == pytest.approx(1.0)
    clock.now += 1.0
    assert limiter.acquire("alice").allowed


def test_refill_never_exceeds_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock)
    clock.now += 3_600
    assert [limiter.acquire("bob").allowed for _ in range(3)] == [True, True, False]


def test_keys_are_independent() -> None:
    limiter = RateLimiter(per_minute=1, burst=1, clock=FakeClock())
    assert limiter.acquire("alice").allowed
    assert not limiter.acquire("alice").allowed
    assert limiter.acquire("bob").allowed


def test_memory_is_bounded_by_forgetting_full_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, burst=1, clock=clock, max_keys=10)
    for i in range(10):
        limiter.acquire(f"c{i}")
    clock.now += 5  # every bucket has refilled
    assert limiter.acquire("new").allowed
    assert len(limiter._buckets) == 1
    # A bucket still refilling is kept, so forgetting never grants extra requests.
    assert not limiter.acquire("new").allowed


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        RateLimiter(per_minute=0, burst=1)


def test_windows_allow_a_burst_per_window_and_say_when_the_next_opens() -> None:
    windows = Windows(per_minute=30, burst=5)  # 5 per 10 s: 30 a minute on average
    window = windows.at(1_003.0)
    assert (window.index, window.ends_at) == (100, 1_010.0)
    assert [windows.decide(n, window, 1_003.0).allowed for n in range(1, 7)] == [True] * 5 + [False]
    assert windows.decide(6, window, 1_003.0).retry_after_s == pytest.approx(7.0)
    assert windows.at(1_010.0).index == 101
    with pytest.raises(ValueError):
        Windows(per_minute=0, burst=1)


def test_keys_survive_their_field_name_form() -> None:
    """Shared counts keep one field per key: dots and dollars would be paths and operators."""
    from crowdsft.adapters.rate_limit_store import _escaped, _unescaped

    keys = ["ann", "a.b.c", "$set", "50%2E", "x%y.$z", "user@example.org"]
    fields = [_escaped(key) for key in keys]
    assert not any("." in f or "$" in f for f in fields)
    assert [_unescaped(f) for f in fields] == keys
    assert len(set(fields)) == len(keys)
