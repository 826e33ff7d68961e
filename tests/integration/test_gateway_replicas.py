"""The contributor rate limit holds across gateway replicas: three gateways on one store, a
contributor alternating between them, get one limit between them, not one each (and, with
the shared limit switched off, one each: the test can tell the two apart). The shared limit
is checked both ways it can count: a store round trip per request, and counts synchronised
in batches (requests here come slower than the sync interval, so each replica reads the
others' counts afresh before it decides, and the limit is exact)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.ratelimit import Windows
from crowdsft.settings import Settings
from services.gateway.app import create_app

pytestmark = pytest.mark.integration

BURST, PER_MINUTE = 4, 1  # a window of 240 s: the test never straddles one unawares
REPLICAS = 3


SYNC_MS = 20


async def replicas(settings: Settings, shared: bool, sync_ms: int,
                   stack: AsyncExitStack) -> list[httpx.AsyncClient]:  # fmt: skip
    limited = settings.model_copy(update={
        "gateway_rate_limit_burst": BURST, "gateway_rate_limit_per_minute": PER_MINUTE,
        "gateway_rate_limit_shared": shared, "gateway_rate_limit_sync_ms": sync_ms,
    })  # fmt: skip
    clients = []
    for n in range(REPLICAS):
        app = create_app(limited)
        await stack.enter_async_context(app.router.lifespan_context(app))
        transport = httpx.ASGITransport(app=app)
        clients.append(await stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url=f"http://gateway-{n}")
        ))  # fmt: skip
    return clients


async def away_from_a_window_edge() -> None:
    windows = Windows(PER_MINUTE, BURST)
    now = time.time()
    if windows.at(now).ends_at - now < 15:
        await asyncio.sleep(windows.at(now).ends_at - now + 0.5)


async def statuses(clients: list[httpx.AsyncClient], token: str, sync_ms: int) -> list[int]:
    """Submissions sent to the replicas in turn, five to each, at most one per sync."""
    out = []
    for n in range(5 * len(clients)):
        await asyncio.sleep(3 * sync_ms / 1000)
        reply = await clients[n % len(clients)].post(
            "/v1/feedback",
            json={"campaign_id": "c1", "prompt": "p", "response": f"r{n}",
                  "event_id": str(uuid.uuid4())},
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip
        out.append(reply.status_code)
    return out


@pytest.fixture
async def exit_stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.mark.parametrize(
    ("shared", "sync_ms"),
    [(True, 0), (True, SYNC_MS), (False, 0)],
    ids=["shared-each-request", "shared-synced", "per-replica"],
)
async def test_one_limit_across_replicas(
    settings: Settings, db: mongo.Database, exit_stack: AsyncExitStack, shared: bool,
    sync_ms: int,
) -> None:  # fmt: skip
    clients = await replicas(settings, shared, sync_ms, exit_stack)
    _, token = await ContributorStore(db).register(f"busy-{shared}-{sync_ms}")
    await away_from_a_window_edge()
    seen = await statuses(clients, token, sync_ms)
    if shared:
        assert seen == [202] * BURST + [429] * (len(seen) - BURST)
    else:  # each replica keeps its own buckets: the limit once per replica
        assert seen.count(202) == REPLICAS * BURST and seen.count(429) == REPLICAS


async def test_a_synced_limit_is_not_one_per_replica_for_a_burst(
    settings: Settings, db: mongo.Database, exit_stack: AsyncExitStack
) -> None:
    """A caller who spends the burst on one replica, then turns to the next: the next one
    reads what the first counted before it admits anything."""
    clients = await replicas(settings, True, SYNC_MS, exit_stack)
    _, token = await ContributorStore(db).register("burst-then-switch")
    await away_from_a_window_edge()
    first = await statuses(clients[:1], token, 0)
    await asyncio.sleep(3 * SYNC_MS / 1000)
    second = await statuses(clients[1:2], token, 0)
    assert first[:BURST] == [202] * BURST and first[BURST:] == [429] * (len(first) - BURST)
    assert second == [429] * len(second)
