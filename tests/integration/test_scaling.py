"""Scaling a step mid-campaign changes nothing but its speed: one intake and one training
process become three and two while the crowd submits and the rounds run, the campaign still
equals the engine's run to 1e-9, and every consumer group's lag returns to zero."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.mongo import Database
from crowdsft.contracts import topics
from crowdsft.domain.crowd import point_submissions
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.settings import Settings
from infra.localstack import free_port
from tests.integration.campaign_runs import (
    assert_matches_engine,
    contributor_ids,
    reference,
    spec_for,
    wait_finished,
)
from tests.support.kafka_io import group_lag
from tests.support.stack import ServiceProcess, wait_until

CONFIG = SimulationConfig(
    n_users=60, n_groups=4, grouping="epsilon_greedy", points_rule="shapley", n_rounds=40
)
SEED = 13
# Each group and the topics it consumes: its lag is asked of the broker at the end.
GROUPS = {
    "crowdsft-intake": [topics.FEEDBACK_SUBMITTED],
    "crowdsft-training": [topics.TRAINING_REQUESTED],
    "crowdsft-selection": [topics.ROUND_START, topics.CANDIDATE_TRAINED, topics.POINTS_AWARDED,
                           topics.FEEDBACK_ACCEPTED],
    "crowdsft-scoring": [topics.ROUND_DECIDED],
    "crowdsft-shapley": [topics.POINTS_AWARDED],
}  # fmt: skip


def started(name: str, env: dict[str, str], logs: Path, port: int) -> ServiceProcess:
    module = f"services.{name.split('-')[0]}"
    probed = {**env, "CROWDSFT_PROBE_PORT": str(port)}
    return ServiceProcess(module, probed, logs / f"{name}.log").start()


def partitions_held(service: ServiceProcess) -> bool:
    return bool(re.search(r"assigned to partitions: \(TopicPartition", service.log()))


async def decided_rounds(db: Database, campaign_id: str) -> int:
    state = await CampaignStore(db).state(campaign_id)
    return 0 if state is None else state.next_round


async def test_raising_intake_and_training_mid_campaign_changes_nothing(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    ref = reference(CONFIG, SEED)
    spec = spec_for("scaled", CONFIG, ref.crowd, SEED)
    ports: dict[str, int] = {}

    def start(name: str) -> ServiceProcess:
        ports[name] = free_port()
        return started(name, stack_env, tmp_path, ports[name])

    services = {name: start(name) for name in ("intake", "selection", "training", "scoring",
                                               "shapley")}  # fmt: skip
    try:
        for name in ("intake", "training"):
            wait_until(lambda n=name: partitions_held(services[n]), 60, f"{name} to join")
        await CampaignStore(db).create_with_spec(spec)
        events = point_submissions(
            spec.campaign_id, contributor_ids(CONFIG.n_users), ref.crowd.users, producer="test"
        )
        half = len(events) // 2
        async with started_broker(settings, "test-crowd") as broker:
            await FeedbackProducer(broker).submit(events[:half])
            # Intake from one process to three while the crowd is still submitting.
            for name in ("intake-2", "intake-3"):
                services[name] = start(name)
            for name in ("intake-2", "intake-3"):
                wait_until(lambda n=name: partitions_held(services[n]), 60, f"{name} to join")
            await FeedbackProducer(broker).submit(events[half:])

        # Training from one process to two once the rounds are under way.
        deadline = asyncio.get_running_loop().time() + 120
        while await decided_rounds(db, spec.campaign_id) < 3:
            assert asyncio.get_running_loop().time() < deadline, "no rounds decided"
            await asyncio.sleep(0.05)
        services["training-2"] = start("training-2")
        await wait_finished(db, spec, services)
        assert await decided_rounds(db, spec.campaign_id) == CONFIG.n_rounds
        await assert_matches_engine(db, spec, ref)

        # The new replicas did real work: intake's stored feedback, training's candidates.
        assert partitions_held(services["training-2"])
        assert "candidate trained" in services["training-2"].log()
        assert sum("batch handled" in services[n].log() for n in ("intake-2", "intake-3")) >= 1

        bootstrap = settings.kafka_bootstrap
        for group, consumed in GROUPS.items():
            lag = -1
            for _ in range(100):
                if (lag := await group_lag(bootstrap, group, consumed)) == 0:
                    break
                await asyncio.sleep(0.2)
            assert lag == 0, f"{group} still {lag} records behind"
        # And the replicas' own /metrics say the same.
        async with httpx.AsyncClient(timeout=5) as http:
            for name, port in ports.items():
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                lags = re.findall(r"^crowdsft_consumer_lag\{[^}]*\} (\S+)$", text, re.M)
                assert all(float(v) == 0 for v in lags), (name, lags)
    finally:
        for service in services.values():
            service.stop()
