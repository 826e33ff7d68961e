"""The HTTP edges refuse early: a body over the limit before it is read or its token checked,
token guessing by rate, times no store can keep; and with the broker or the store gone the
gateway and the read API answer 503 with Retry-After within a couple of seconds."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.settings import Settings
from services.balances.app import create_app as balances_app
from services.gateway.app import create_app as gateway_app
from tests.support.stack import localstack, private_stack

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024
CHUNK = 1024 * 1024


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("edges")


@pytest.fixture(scope="module")
def stack_env(run_dir: Path) -> Iterator[dict[str, str]]:
    """This module's own stack: its last tests kill the broker and the store."""
    with private_stack(run_dir, "edges") as env:
        yield env


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[mongo.Database]:
    """Short server selection: closing a client whose store was killed waits for it."""
    client = mongo.connect(settings, timeout_ms=1_000)
    database = mongo.database(client, settings)
    await mongo.ensure_indexes(database)
    yield database
    await client.close()


@pytest.fixture(scope="module")
async def token(db: mongo.Database) -> str:
    await CampaignStore(db).create("c1")
    return (await ContributorStore(db).register("alice"))[1]


@pytest.fixture(scope="module")
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = gateway_app(settings.model_copy(update={"http_max_body_bytes": LIMIT}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http


@pytest.fixture(scope="module")
async def balances(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = balances_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://balances") as http:
            yield http


class Body:
    """50 MiB offered a mebibyte at a time; counts what the server actually pulled."""

    def __init__(self, chunks: int = 50) -> None:
        self.chunks, self.pulled = chunks, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b"x" * CHUNK


async def test_a_huge_anonymous_body_is_refused_before_it_is_read(
    gateway: httpx.AsyncClient,
) -> None:
    body = Body()
    headers = {"Content-Length": str(body.chunks * CHUNK), "Content-Type": "application/json"}
    response = await gateway.post("/v1/feedback", content=body, headers=headers)
    assert response.status_code == 413 and "exceeds" in response.json()["detail"]
    assert body.pulled == 0  # refused from its Content-Length: not a byte read, no token asked


async def test_a_chunked_body_is_cut_off_at_the_limit(gateway: httpx.AsyncClient) -> None:
    body = Body()
    response = await gateway.post("/v1/feedback", content=body)  # no length: chunked
    assert response.status_code == 413
    assert body.pulled <= 2  # stopped as soon as it passed the limit


async def test_requests_without_a_valid_token_are_rate_limited(
    gateway: httpx.AsyncClient, token: str
) -> None:
    codes = [
        (await gateway.post("/v1/feedback", json={}, headers={"Authorization": "Bearer guess"}))
        for _ in range(30)
    ]
    assert codes[0].status_code == 401
    limited = [r for r in codes if r.status_code == 429]
    assert limited and int(limited[0].headers["Retry-After"]) >= 1
    ok = await gateway.post(
        "/v1/feedback",
        json={"campaign_id": "c1", "prompt": "p", "response": "r"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert ok.status_code == 202  # a valid token is never held back by others' guessing


async def test_a_time_no_store_could_keep_is_refused_at_the_gateway(
    gateway: httpx.AsyncClient, token: str
) -> None:
    response = await gateway.post(
        "/v1/feedback",
        json={
            "campaign_id": "c1",
            "prompt": "p",
            "response": "r2",
            "client_timestamp": "9999-12-31T23:00:00-12:00",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 422
    assert "representable" in response.text or "future" in response.text


async def test_broker_down_is_a_fast_503(
    gateway: httpx.AsyncClient, token: str, run_dir: Path
) -> None:
    pid = localstack().read_pid(run_dir, "kafka")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    response = await gateway.post(
        "/v1/feedback",
        json={"campaign_id": "c1", "prompt": "p", "response": "while the broker is down"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert time.monotonic() - started < 5
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1


async def test_store_down_is_a_fast_503(balances: httpx.AsyncClient, run_dir: Path) -> None:
    assert (await balances.get("/v1/leaderboard", params={"campaign": "c1"})).status_code == 200
    pid = localstack().read_pid(run_dir, "mongo")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    response = await balances.get("/v1/leaderboard", params={"campaign": "c1"})
    assert time.monotonic() - started < 5
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
