"""Each round service SIGKILLed mid-campaign and restarted; two campaigns side by side.

Both campaigns still end exactly where the undisturbed engine run ends: same model, same
balances, same Shapley values.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import Database
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.settings import Settings
from tests.integration.campaign_runs import (
    assert_matches_engine,
    launch,
    reference,
    spec_for,
    start_services,
    wait_finished,
)
from tests.support.stack import ServiceProcess, eventually

FIRST = SimulationConfig(
    n_users=30, n_groups=3, grouping="interleaved", points_rule="rank", n_rounds=30
)
SECOND = SimulationConfig(
    n_users=24, n_groups=4, grouping="random", points_rule="shapley", n_rounds=30
)
# Who dies, once the first campaign has reached which round.
KILLS = (("selection", 4), ("training", 10), ("scoring", 16), ("shapley", 22))


async def wait_round(
    db: Database, campaign_id: str, round_index: int, timeout_s: float = 120
) -> None:
    async def reached() -> bool:
        state = await CampaignStore(db).state(campaign_id)
        return state is not None and state.next_round >= round_index

    await eventually(reached, timeout_s, f"{campaign_id} to reach round {round_index}", 0.05)


async def test_killed_services_recover_and_campaigns_stay_apart(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    first_ref, second_ref = reference(FIRST, 11), reference(SECOND, 12)
    first = spec_for("alpha", FIRST, first_ref.crowd, 11)
    second = spec_for("beta", SECOND, second_ref.crowd, 12)
    services = start_services(stack_env, tmp_path)
    try:
        await launch(db, settings, first, first_ref.crowd)
        await launch(db, settings, second, second_ref.crowd)
        for name, round_index in KILLS:
            await wait_round(db, first.campaign_id, round_index)
            services[name].kill()
            state = await CampaignStore(db).state(first.campaign_id)
            assert state is not None and state.next_round < FIRST.n_rounds, "killed too late"
            await asyncio.sleep(0.5)  # the campaign stalls or runs on without it
            services[name] = ServiceProcess(
                f"services.{name}", stack_env, tmp_path / f"{name}-restarted.log"
            ).start()
        await wait_finished(db, first, services)
        await wait_finished(db, second, services)
        await assert_matches_engine(db, first, first_ref)
        await assert_matches_engine(db, second, second_ref)
    finally:
        for service in services.values():
            service.stop()
