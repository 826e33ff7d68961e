"""A third backend, registered from the tests, runs a campaign through every round service
on the real stack: its module is loaded by `CROWDSFT_BACKEND_MODULES`, nothing else changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.ledger_store import LedgerStore
from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.mongo import Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.domain.crowd import point_submissions
from crowdsft.domain.round import RoundStatus
from crowdsft.domain.steps import synthetic_crowd
from crowdsft.settings import Settings
from tests.integration.campaign_runs import contributor_ids, start_services, wait_finished
from tests.support.paid_rounds import ledgers
from tests.unit.test_toy_backend import median_spec


async def test_a_toy_backend_campaign_runs_through_the_services(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    spec = median_spec()
    crowd = synthetic_crowd(12, 2)
    ids = contributor_ids(12)
    env = {**stack_env, "CROWDSFT_BACKEND_MODULES": "tests.support.toy_backend"}
    services = start_services(env, tmp_path)
    try:
        await CampaignStore(db).create_with_spec(spec)
        events = point_submissions("toy", ids, crowd.users, producer="test")
        async with started_broker(settings, "test-crowd") as broker:
            await FeedbackProducer(broker).submit(events)
        await wait_finished(db, spec, services)
    finally:
        for service in services.values():
            service.stop()

    rounds = await RoundStore(db).of_campaign("toy")
    assert [r.status for r in rounds] == [RoundStatus.SCORED] * spec.policy.max_rounds
    measurements = MeasurementStore(db)
    lineage = {e.model_id: e for e in await LineageStore(db).of_campaign("toy")}
    for done in rounds:
        assert done.decision is not None
        [base] = (await measurements.get([done.base_model_id])).values()
        for result in done.decision.candidates:
            members = crowd.users[done.members(result.group_index)]
            expected = np.asarray(base.position) + 0.5 * (
                np.median(members, axis=0) - np.asarray(base.position)
            )
            np.testing.assert_allclose(result.position, expected, rtol=0, atol=1e-12)
            assert lineage[result.model_id].hyperparameters == {"step": 0.5}
            assert lineage[result.model_id].artifact_ref == f"median:{result.model_id}"
    # The ledger pays as for any backend: balances are the sums of each one's entries.
    points = await LedgerStore(db).points("toy", ids)
    paid = await ledgers(db, "toy")
    for contributor_id, balance in zip(ids, points, strict=True):
        entries = paid[contributor_id]
        assert sum(e.points for e in entries) == pytest.approx(balance, abs=1e-9)
