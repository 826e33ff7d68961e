"""A lost training request (its offsets committed past it, as a store or broker crash can
lose one) is asked again after the timeout, and the campaign ends where the engine's does.
Its own module: the training group must be fresh on this module's broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from crowdsft.adapters.mongo import Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.contracts import topics
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
from tests.support.stack import ServiceProcess

CONFIG = SimulationConfig(
    n_users=12, n_groups=3, grouping="interleaved", points_rule="rank", n_rounds=4
)


async def lose_pending_requests(bootstrap: str) -> int:
    """Commit the training group past every request now on the topic, as if lost. The end
    is found by reading: Tansu misreports end offsets after a batched produce."""
    reader = AIOKafkaConsumer(
        topics.TRAINING_REQUESTED, bootstrap_servers=bootstrap, group_id=None,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )  # fmt: skip
    await reader.start()
    ends: dict[TopicPartition, int] = {}
    try:
        while batches := await reader.getmany(timeout_ms=1_500):
            for tp, records in batches.items():
                ends[tp] = max(ends.get(tp, 0), records[-1].offset + 1)
    finally:
        await reader.stop()
    committer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id="crowdsft-training", enable_auto_commit=False
    )
    await committer.start()
    try:
        committer.assign(list(ends))
        await committer.commit(ends)
        assert {tp: await committer.committed(tp) for tp in ends} == ends
    finally:
        await committer.stop()
    return sum(ends.values())


async def test_lost_training_requests_are_asked_again(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    ref = reference(CONFIG, 22)
    spec = spec_for("lossy", CONFIG, ref.crowd, 22)
    env = {**stack_env, "CROWDSFT_SELECTION_CANDIDATE_TIMEOUT_S": "2"}
    services = start_services(env, tmp_path)
    services.pop("training").kill()  # round 0's requests will wait on the topic
    try:
        await launch(db, settings, spec, ref.crowd)
        while (opened := await RoundStore(db).get("lossy", 0)) is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # its requests are out
        lost = await lose_pending_requests(stack_env["CROWDSFT_KAFKA_BOOTSTRAP"])
        assert lost >= CONFIG.n_groups
        services["training"] = ServiceProcess(
            "services.training", env, tmp_path / "training-late.log"
        ).start()
        await wait_finished(db, spec, services, timeout_s=120)
        await assert_matches_engine(db, spec, ref)
        assert "asked again" in services["selection"].log()
        assert opened.round_index == 0
    finally:
        for service in services.values():
            service.stop()
