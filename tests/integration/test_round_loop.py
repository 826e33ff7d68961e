"""A campaign run through the real services equals the engine's in-process run, to 1e-9, and
republishing every event of a finished round changes nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.mongo import Database
from crowdsft.campaigns import CampaignSpec
from crowdsft.contracts import topics
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.settings import Settings
from tests.integration.campaign_runs import (
    Reference,
    assert_matches_engine,
    launch,
    reference,
    spec_for,
    start_services,
    wait_finished,
)
from tests.support.kafka_io import produce_raw, read_topic

# Grouping that reads the points and a rule with real-valued awards: the strictest check.
CONFIG = SimulationConfig(
    n_users=40, n_groups=4, grouping="epsilon_greedy", points_rule="shapley", n_rounds=30
)
SEED = 7
ROUND_TOPICS = (
    topics.ROUND_OPENED,
    topics.TRAINING_REQUESTED,
    topics.CANDIDATE_TRAINED,
    topics.CANDIDATE_EVALUATED,
    topics.ROUND_DECIDED,
    topics.POINTS_AWARDED,
)
STATE = (mongo.CAMPAIGNS, mongo.ROUNDS, mongo.MODELS, mongo.ARTIFACTS, mongo.BALANCES, mongo.LEDGER)


@pytest.fixture(scope="module")
async def finished(
    stack_env: dict[str, str],
    settings: Settings,
    db: Database,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[CampaignSpec, Reference]]:
    ref = reference(CONFIG, SEED)
    spec = spec_for("loop", CONFIG, ref.crowd, SEED)
    services = start_services(stack_env, tmp_path_factory.mktemp("services"), training=2)
    try:
        await launch(db, settings, spec, ref.crowd)
        await wait_finished(db, spec, services)
        # Two training processes shared the rounds' requests.
        assert all("candidate trained" in services[n].log() for n in ("training", "training-2"))
        yield spec, ref
    finally:
        for service in services.values():
            service.stop()


async def test_thirty_rounds_through_the_services_match_the_engine(
    finished: tuple[CampaignSpec, Reference], db: Database
) -> None:
    spec, ref = finished
    await assert_matches_engine(db, spec, ref)


async def snapshot(db: Database) -> dict[str, Any]:
    state = {name: [doc async for doc in db[name].find({}, {"recorded_at": 0})] for name in STATE}
    shapley = await db[mongo.SHAPLEY].find_one({}, {"updated_at": 0})
    return state | {"shapley": shapley}


async def test_republishing_a_finished_round_changes_nothing(
    finished: tuple[CampaignSpec, Reference], settings: Settings, db: Database
) -> None:
    spec, _ = finished
    round_id = f"{spec.campaign_id}:r00012"
    bootstrap = settings.kafka_bootstrap
    events = {topic: await read_topic(bootstrap, topic, idle_s=0.5) for topic in ROUND_TOPICS}
    replay = {
        topic: [e for e in found if e.get("round_id") == round_id]
        for topic, found in events.items()
    }
    assert all(replay.values()), {t: len(v) for t, v in replay.items()}
    before = await snapshot(db)
    awarded_before = len(events[topics.POINTS_AWARDED])

    for topic, found in replay.items():
        records = [(spec.campaign_id.encode(), json.dumps(e).encode()) for e in found]
        await produce_raw(bootstrap, topic, records)

    # Scoring re-announces the round's awards once it has seen the decision again.
    deadline = time.monotonic() + 30
    while len(await read_topic(bootstrap, topics.POINTS_AWARDED, idle_s=0.3)) < awarded_before + 2:
        assert time.monotonic() < deadline, "the services did not see the replayed round"
    await asyncio.sleep(1.5)
    assert await snapshot(db) == before
