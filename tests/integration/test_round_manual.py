"""The manual policy: each round waits for its start command; stale commands do nothing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.kafka import announcer, started_broker
from crowdsft.adapters.mongo import CONTRIBUTIONS, ROUNDS, Database
from crowdsft.contracts import StartRound, derive_event_id
from crowdsft.domain.campaign import RoundPolicy
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.settings import Settings
from tests.integration.campaign_runs import launch, reference, spec_for, start_services

CONFIG = SimulationConfig(n_users=12, n_groups=3, n_rounds=3)


async def start(settings: Settings, campaign_id: str, round_index: int) -> None:
    command = StartRound(
        event_id=derive_event_id("round.start", campaign_id, round_index, time.time()),
        producer="test",
        campaign_id=campaign_id,
        round_index=round_index,
    )
    async with started_broker(settings, "test-operator") as broker:
        await announcer(broker)([(campaign_id, command)])


async def rounds_scored(db: Database, campaign_id: str) -> int:
    return await db[ROUNDS].count_documents({"campaign_id": campaign_id, "status": "scored"})


async def wait_scored(db: Database, campaign_id: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while await rounds_scored(db, campaign_id) < count:
        assert time.monotonic() < deadline, f"round {count - 1} was not scored"
        await asyncio.sleep(0.1)


async def test_rounds_start_only_on_command(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    ref = reference(CONFIG, seed=3)
    spec = spec_for("manual", CONFIG, ref.crowd, 3).model_copy(
        update={"policy": RoundPolicy(mode="manual", max_rounds=3)}
    )
    services = start_services(stack_env, tmp_path)
    try:
        await launch(db, settings, spec, ref.crowd)
        # Every contribution stored, and still no round: the policy waits for a command.
        deadline = time.monotonic() + 60
        while await db[CONTRIBUTIONS].count_documents({"campaign_id": "manual"}) < CONFIG.n_users:
            assert time.monotonic() < deadline, "intake did not store the crowd"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
        assert await db[ROUNDS].count_documents({"campaign_id": "manual"}) == 0

        await start(settings, "manual", 0)
        await wait_scored(db, "manual", 1)
        await start(settings, "manual", 0)  # stale: round 0 is done
        await start(settings, "manual", 2)  # premature: round 1 comes first
        await asyncio.sleep(2)
        assert await db[ROUNDS].count_documents({"campaign_id": "manual"}) == 1

        await start(settings, "manual", 1)
        await wait_scored(db, "manual", 2)
        await start(settings, "manual", 2)
        await wait_scored(db, "manual", 3)
        await start(settings, "manual", 3)  # past max_rounds
        await asyncio.sleep(1)
        state = await CampaignStore(db).state("manual")
        assert state is not None and state.next_round == 3 and state.open_round is None
        assert await db[ROUNDS].count_documents({"campaign_id": "manual"}) == 3
    finally:
        for service in services.values():
            service.stop()
