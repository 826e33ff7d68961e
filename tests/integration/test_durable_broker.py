"""A broker restart loses nothing in the durable local mode: submissions answered 202 by the
gateway and not yet read by intake are all stored after the broker is SIGKILLed and started
again (Tansu on its S3 engine against a local S3 server). That mode reads each produced batch
as an object from the S3 server, about two a second against moto here, so the test sends a
few dozen one by one, not thousands."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.settings import Settings
from services.gateway.app import create_app
from tests.support.stack import ServiceProcess, localstack, private_stack

pytestmark = pytest.mark.integration

SUBMISSIONS = 25


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("durable")


@pytest.fixture(scope="module")
def stack_env(run_dir: Path) -> Iterator[dict[str, str]]:
    with private_stack(run_dir, "durable", storage="s3") as env:
        yield env


@pytest.fixture(scope="module")
async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"gateway_rate_limit_burst": 10_000}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http


async def test_submissions_survive_a_broker_restart(
    stack_env: dict[str, str], db: mongo.Database, gateway: httpx.AsyncClient,
    run_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    await CampaignStore(db).create("durable")
    _, token = await ContributorStore(db).register("dana")
    accepted = []
    for n in range(SUBMISSIONS):
        reply = await gateway.post(
            "/v1/feedback",
            json={"campaign_id": "durable", "prompt": "say hi", "response": f"hello number {n}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 202, reply.text
        accepted.append(reply.json()["event_id"])

    localstack().restart_broker(run_dir)  # SIGKILL, then the same port and storage

    intake = ServiceProcess("services.intake", stack_env, tmp_path / "intake.log").start()
    try:
        deadline = time.monotonic() + 90
        while (stored := await db[mongo.CONTRIBUTIONS].count_documents(
            {"event_id": {"$in": accepted}}
        )) < SUBMISSIONS:  # fmt: skip
            assert intake.alive, intake.log()[-3000:]
            assert time.monotonic() < deadline, f"{stored} of {SUBMISSIONS} stored"
            await asyncio.sleep(0.3)
    finally:
        intake.stop()
