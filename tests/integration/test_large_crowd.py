"""A crowd of 10,000 through the services: rounds complete, nothing the services write or send
grows past a megabyte, and the points reconcile.

Every contributor submits one point to a vector campaign; three rounds run under the auto
policy through intake, selection, training, scoring and shapley on the real local stack. Then:
- every round document, chunk, lineage entry and Shapley record is under 1 MB, and so is
  every record on the round topics;
- the payments reconcile: each contributor's balance is their starting point plus the awards
  of the accepted rounds they were in, recomputed here from each round's own stored parts;
  every member appears once per round (no ledger key can be paid twice); and a sample of
  contributors' ledgers, as the read side derives them, sum to their balances.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from crowdsft.adapters.balance_store import BalanceStore
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.ledger_store import Standings
from crowdsft.adapters.mongo import Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.contracts import topics
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
from crowdsft.domain.crowd import point_submissions
from crowdsft.engine.crowd import sample_crowd, synthetic_population
from crowdsft.engine.ledger import INITIAL_POINTS
from crowdsft.settings import Settings
from tests.integration.campaign_runs import start_services, wait_finished
from tests.support.kafka_io import record_sizes
from tests.support.sizes import largest_documents

pytestmark = pytest.mark.integration

N, ROUNDS, MEGABYTE = 10_000, 3, 1_000_000
ROUND_TOPICS = [topics.ROUND_OPENED, topics.TRAINING_REQUESTED, topics.CANDIDATE_TRAINED,
                topics.ROUND_DECIDED, topics.POINTS_AWARDED, topics.SHAPLEY_COMPUTED]  # fmt: skip


async def test_ten_thousand_contributors_stay_small_and_reconcile(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    rng = np.random.default_rng(4)
    crowd = sample_crowd(synthetic_population(rng, n_people=N + 1), N, rng)
    spec = CampaignSpec(
        campaign_id="large",
        target=[float(x) for x in crowd.expert],
        n_groups=4,
        points_rule="rank",
        policy=RoundPolicy(mode="auto", min_contributions=N, max_rounds=ROUNDS),
        seed=6,
    )
    ids = [f"p{i:05d}" for i in range(N)]
    services = start_services(stack_env, tmp_path)
    try:
        await CampaignStore(db).create_with_spec(spec)
        async with started_broker(settings, "test-crowd") as broker:
            events = point_submissions(spec.campaign_id, ids, crowd.users, producer="test")
            await FeedbackProducer(broker).submit(events)
        await wait_finished(db, spec, services, timeout_s=600)
    finally:
        for service in services.values():
            service.stop()

    documents = await largest_documents(db)
    assert max(documents.values()) < MEGABYTE, documents
    records = await record_sizes(settings.kafka_bootstrap, ROUND_TOPICS)
    assert max(records.values()) < MEGABYTE, records
    assert min(records.values()) > 0, records  # every round topic was read

    rounds = await RoundStore(db).of_campaign(spec.campaign_id)
    assert [r.status.value for r in rounds] == ["scored"] * ROUNDS
    expected: dict[str, float] = {}
    for paid in rounds:
        assert paid.payment is not None and paid.decision is not None
        members = paid.contributor_ids
        assert len(members) == N and len(set(members)) == N  # once each: one award, one key
        for contributor_id, award in zip(members, paid.payment.awards, strict=True):
            start = INITIAL_POINTS if contributor_id not in expected else 0.0
            won = award if paid.decision.accepted else 0.0
            expected[contributor_id] = expected.get(contributor_id, 0.0) + start + won
    standing = await Standings(db).latest(spec.campaign_id)
    assert sorted(standing.contributor_ids) == sorted(ids)
    stored = dict(zip(standing.contributor_ids, standing.points.tolist(), strict=True))
    for contributor_id, points in expected.items():
        assert stored[contributor_id] == pytest.approx(points, abs=1e-9), contributor_id

    balances = BalanceStore(db)
    for contributor_id in random.Random(0).sample(ids, 25):
        entries = await balances.ledger(contributor_id, spec.campaign_id, limit=100)
        keys = [(e.round_id, e.rule) for e in entries]
        assert len(keys) == len(set(keys))
        total = sum(e.points for e in entries)
        assert total == pytest.approx(await balances.balance(contributor_id, spec.campaign_id))
