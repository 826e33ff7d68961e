"""A campaign run through the real services equals the engine's in-process run, to 1e-9, and
republishing every event of a finished round changes nothing."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.mongo import Database
from crowdsft.contracts import topics
from crowdsft.domain.campaign import CampaignSpec
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
from tests.support.stack import ServiceProcess

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
STATE = (mongo.CAMPAIGNS, mongo.ROUNDS, mongo.MODELS, mongo.ARTIFACTS, mongo.CHUNKS)
# Which services consume each replayed topic: their logs tell when the replay was handled.
# The two training processes form one consumer group: each record reaches one of them.
CONSUMERS = {
    topics.TRAINING_REQUESTED: ("training", "training-2"),
    topics.CANDIDATE_TRAINED: ("selection",),
    topics.ROUND_DECIDED: ("scoring",),
    topics.POINTS_AWARDED: ("selection", "shapley"),
}
GROUPS = {topics.TRAINING_REQUESTED: 1, topics.POINTS_AWARDED: 2}


@dataclass(frozen=True)
class Finished:
    spec: CampaignSpec
    ref: Reference
    services: dict[str, ServiceProcess]


@pytest.fixture(scope="module")
async def finished(
    stack_env: dict[str, str],
    settings: Settings,
    db: Database,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Finished]:
    ref = reference(CONFIG, SEED)
    spec = spec_for("loop", CONFIG, ref.crowd, SEED)
    services = start_services(stack_env, tmp_path_factory.mktemp("services"), training=2)
    try:
        await launch(db, settings, spec, ref.crowd)
        await wait_finished(db, spec, services)
        # Two training processes shared the rounds' requests.
        assert all("candidate trained" in services[n].log() for n in ("training", "training-2"))
        yield Finished(spec, ref, services)
    finally:
        for service in services.values():
            service.stop()


async def test_thirty_rounds_through_the_services_match_the_engine(
    finished: Finished, db: Database
) -> None:
    await assert_matches_engine(db, finished.spec, finished.ref)


async def snapshot(db: Database) -> dict[str, Any]:
    state = {name: [doc async for doc in db[name].find({}, {"recorded_at": 0})] for name in STATE}
    shapley = await db[mongo.SHAPLEY].find_one({}, {"updated_at": 0})
    return state | {"shapley": shapley}


def handled(services: dict[str, ServiceProcess], topic: str) -> int:
    """How many records of `topic` its consumers have finished. FastStream logs each record,
    or each batch for a batch subscriber: training (batched) logs each request it trained.
    The services' console log puts FastStream's context after the message (`topic=...`)."""
    marker = re.compile(rf"\bProcessed\b.*\btopic={re.escape(topic)}(\s|$)")
    if topic == topics.TRAINING_REQUESTED:
        marker = re.compile(r"candidate trained")
    lines = [line for name in CONSUMERS[topic] for line in services[name].log().splitlines()]
    return sum(1 for line in lines if marker.search(line))


async def test_republishing_a_finished_round_changes_nothing(
    finished: Finished, settings: Settings, db: Database
) -> None:
    round_id = f"{finished.spec.campaign_id}:r00012"
    bootstrap = settings.kafka_bootstrap
    events = {topic: await read_topic(bootstrap, topic, idle_s=0.5) for topic in ROUND_TOPICS}
    replay = {
        topic: [e for e in found if e.get("round_id") == round_id]
        for topic, found in events.items()
    }
    assert all(replay.values()), {t: len(v) for t, v in replay.items()}
    before = await snapshot(db)
    done_before = {topic: handled(finished.services, topic) for topic in CONSUMERS}

    for topic, found in replay.items():
        records = [(finished.spec.campaign_id.encode(), json.dumps(e).encode()) for e in found]
        await produce_raw(bootstrap, topic, records)

    # Wait until every consumer has handled its share of the replay, then look again.
    expected = {t: done_before[t] + len(replay[t]) * GROUPS.get(t, 1) for t in CONSUMERS}
    deadline = time.monotonic() + 30
    while any(handled(finished.services, t) < n for t, n in expected.items()):
        seen = {t: handled(finished.services, t) for t in CONSUMERS}
        assert time.monotonic() < deadline, f"replay not handled: {seen} of {expected}"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    assert await snapshot(db) == before
    # Nothing was announced again past the first service: duplicates do not cascade.
    assert len(await read_topic(bootstrap, topics.POINTS_AWARDED, idle_s=0.3)) == len(
        events[topics.POINTS_AWARDED]
    ) + len(replay[topics.POINTS_AWARDED])
