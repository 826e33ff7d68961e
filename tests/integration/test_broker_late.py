"""Services started while the broker is down (a deploy in any order, a broker restarting) wait
for it instead of exiting, and work once it is back: a submission sent through the gateway
then is stored by intake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from infra.localstack import free_port
from tests.support.stack import ServiceProcess, localstack, private_stack, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("late")


@pytest.fixture(scope="module")
def stack_env(run_dir: Path) -> Iterator[dict[str, str]]:
    with private_stack(run_dir, "late") as env:
        yield {**env, "CROWDSFT_GATEWAY_PORT": str(free_port())}


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_services_wait_for_a_broker_that_is_down_at_their_start(
    stack_env: dict[str, str], db: mongo.Database, run_dir: Path, tmp_path: Path
) -> None:
    await CampaignStore(db).create("late")
    _, token = await ContributorStore(db).register("patient")
    localstack().stop_broker(run_dir)
    services = [ServiceProcess(f"services.{name}", stack_env, tmp_path / f"{name}.log").start()
                for name in ("intake", "gateway")]  # fmt: skip
    try:
        # Each tries the missing broker and says it waits (however slowly this machine starts
        # a process), and stays alive a few more attempts.
        for service in services:
            wait_until(lambda s=service: "does not answer yet" in s.log() or not s.alive, 60,
                       f"{service.module} to try the broker")  # fmt: skip
        await asyncio.sleep(2.0)
        assert all(s.alive for s in services), "\n".join(s.log()[-2000:] for s in services)
        assert all("does not answer yet" in s.log() for s in services)
        localstack().start_broker_again(run_dir)
        gateway = f"http://127.0.0.1:{stack_env['CROWDSFT_GATEWAY_PORT']}"
        wait_until(lambda: answers(f"{gateway}/openapi.json"), 60, "the gateway")
        async with httpx.AsyncClient(base_url=gateway, timeout=10) as http:
            reply = await http.post(
                "/v1/feedback",
                json={"campaign_id": "late", "prompt": "p", "response": "worth the wait"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert reply.status_code == 202, reply.text
        deadline = time.monotonic() + 60
        while not await db[mongo.CONTRIBUTIONS].count_documents({"campaign_id": "late"}):
            assert time.monotonic() < deadline, services[0].log()[-3000:]
            await asyncio.sleep(0.3)
    finally:
        for service in services:
            service.stop()
