"""Chaos: a vector campaign runs and contributors keep submitting through the gateway while a
bounded loop SIGKILLs and restarts a random part every few seconds for two minutes: every
service, the broker (durable mode) and the store. Afterwards every submission the gateway
answered 202 is stored once, ledger sums equal balances (and the balances API says so), no
ledger key is paid twice, and the campaign's model, points and Shapley values equal the
engine's run with the same seed to 1e-9."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.contracts import new_event_id
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.settings import Settings
from infra.localstack import free_port
from tests.integration.campaign_runs import (
    ROUND_SERVICES,
    assert_matches_engine,
    launch,
    reference,
    spec_for,
    start_services,
    wait_finished,
)
from tests.support.paid_rounds import ledgers
from tests.support.stack import ServiceProcess, localstack, private_stack, wait_until

pytestmark = pytest.mark.integration

CHAOS_S = 120
EVERY_S = (2.0, 5.0)
HTTP_SERVICES = ("gateway", "balances")
VICTIMS = (*ROUND_SERVICES, *HTTP_SERVICES, "broker", "store")
CONFIG = SimulationConfig(
    n_users=12, n_groups=3, grouping="interleaved", points_rule="rank", n_rounds=6
)
WRITERS = 5
# Demonstrations of random words: distinct enough that none is a near-copy of another.
LEXICON = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ri", "so", "tu") for b in "aeiouxyz"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module")
def stack_env(run_dir: Path) -> Iterator[dict[str, str]]:
    with private_stack(run_dir, "chaos", storage="s3") as env:
        yield {
            **env,
            "CROWDSFT_GATEWAY_PORT": str(free_port()),
            "CROWDSFT_BALANCES_PORT": str(free_port()),
            "CROWDSFT_GATEWAY_RATE_LIMIT_BURST": "10000",
            # A request lost with a killed part is asked for again soon.
            "CROWDSFT_SELECTION_CANDIDATE_TIMEOUT_S": "15",
        }


@pytest.fixture(scope="module")
async def db(settings: Settings) -> Any:
    """Short server selection: the store is killed under this client many times."""
    async with mongo.opened(settings, timeout_ms=2_000) as database:
        yield database


async def retried(call: Callable[..., Awaitable[Any]], *args: Any, timeout_s: float = 120) -> Any:
    """The test's own reads wait out the store's deaths too."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await call(*args)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def demonstration(words: random.Random) -> str:
    return " ".join(words.choice(LEXICON) for _ in range(16))


async def submit_until_accepted(http: httpx.AsyncClient, body: dict[str, str], token: str,
                                stop: asyncio.Event) -> bool:  # fmt: skip
    """The same event id again until the gateway answers 202: a client's honest retry."""
    while not stop.is_set():
        try:
            reply = await http.post(
                "/v1/feedback", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if reply.status_code == 202:
                return True
            assert reply.status_code in (502, 503, 504), reply.text
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.3)
    return False


async def feedback_stream(base_url: str, tokens: dict[str, str], accepted: set[str],
                          stop: asyncio.Event) -> None:  # fmt: skip
    """Two demonstrations a second, the writers in turn, through the gateway process (the
    durable broker reads a few produced batches a second: faster would only grow a backlog)."""
    words = random.Random(3)
    writers = itertools.cycle(tokens.values())
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        while not stop.is_set():
            body = {
                "event_id": new_event_id(),
                "campaign_id": "stream",
                "prompt": "say something",
                "response": demonstration(words),
            }
            if await submit_until_accepted(http, body, next(writers), stop):
                accepted.add(body["event_id"])
            await asyncio.sleep(0.5)


def start(name: str, env: dict[str, str], logs: Path, n: int) -> ServiceProcess:
    return ServiceProcess(f"services.{name}", env, logs / f"{name}-{n}.log").start()


def kill_and_restart(victim: str, services: dict[str, ServiceProcess], env: dict[str, str],
                     run_dir: Path, logs: Path, n: int) -> None:  # fmt: skip
    if victim == "broker":
        localstack().restart_broker(run_dir)
    elif victim == "store":
        localstack().restart_store(run_dir)
    else:
        services[victim].kill()
        services[victim] = start(victim, env, logs, n)


async def test_everything_survives_two_minutes_of_kills(
    stack_env: dict[str, str], settings: Settings, db: mongo.Database, run_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    ref = reference(CONFIG, 31)
    spec = spec_for("chaotic", CONFIG, ref.crowd, 31)
    await CampaignStore(db).create("stream")
    contributors = ContributorStore(db)
    tokens = {f"w{n}": (await contributors.register(f"w{n}"))[1] for n in range(WRITERS)}
    services = start_services(stack_env, tmp_path)
    services |= {name: start(name, stack_env, tmp_path, 0) for name in HTTP_SERVICES}
    gateway_url = f"http://127.0.0.1:{settings.gateway_port}"
    balances_url = f"http://127.0.0.1:{settings.balances_port}"
    wait_until(lambda: _answers(f"{gateway_url}/openapi.json"), 60, "the gateway")
    accepted: set[str] = set()
    stop = asyncio.Event()
    kills: list[str] = []
    try:
        await launch(db, settings, spec, ref.crowd)
        stream = asyncio.create_task(feedback_stream(gateway_url, tokens, accepted, stop))
        chooser = random.Random(7)
        ends = time.monotonic() + CHAOS_S
        while time.monotonic() < ends:
            await asyncio.sleep(chooser.uniform(*EVERY_S))
            victim = chooser.choice(VICTIMS)
            await asyncio.to_thread(
                kill_and_restart, victim, services, stack_env, run_dir, tmp_path, len(kills)
            )
            kills.append(victim)
        stop.set()
        await stream
        await retried(wait_finished, db, spec, services, 300, timeout_s=360)
        deadline = time.monotonic() + 180
        while (stored := await retried(
            db[mongo.CONTRIBUTIONS].count_documents, {"campaign_id": "stream"}
        )) < len(accepted):  # fmt: skip
            assert time.monotonic() < deadline, f"{stored} of {len(accepted)} stored"
            await asyncio.sleep(1.0)
        async with httpx.AsyncClient(base_url=balances_url, timeout=5) as http:
            board = (await retried(http.get, "/v1/leaderboard?campaign=chaotic&limit=100")).json()
    finally:
        stop.set()
        for service in services.values():
            service.stop()

    assert {"broker", "store"} <= set(kills) and len(kills) >= 25, kills
    stored_ids = [
        doc["event_id"]
        async for doc in db[mongo.CONTRIBUTIONS].find({"campaign_id": "stream"}, {"event_id": 1})
    ]
    assert len(stored_ids) == len(set(stored_ids)), "a submission stored twice"
    assert accepted <= set(stored_ids), f"{len(accepted - set(stored_ids))} accepted, then lost"
    entries = [e for lines in (await ledgers(db, "chaotic")).values() for e in lines]
    keys = [(e.round_id, e.contributor_id, e.rule) for e in entries]
    assert len(keys) == len(set(keys)), "a ledger key paid twice"
    paid = Counter[str]()
    for entry in entries:
        paid[entry.contributor_id] += entry.points
    served = {entry["contributor_id"]: entry["points"] for entry in board["entries"]}
    assert paid.keys() <= served.keys()
    for contributor_id, points in served.items():
        assert np.isclose(points, paid[contributor_id], rtol=0, atol=1e-9), contributor_id
    await assert_matches_engine(db, spec, ref)
    print(f"\nchaos: {len(kills)} kills {dict(Counter(kills))}; {len(accepted)} accepted")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
