"""Two intake replicas share the topic's partitions and still store each record once."""

from __future__ import annotations

import uuid
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import Database
from crowdsft.contracts import topics
from tests.integration.intake_checks import assert_reconciled, wait_for_counts
from tests.support.corpus import build_corpus
from tests.support.kafka_io import produce_raw
from tests.support.stack import ServiceProcess, wait_until


async def test_two_replicas_split_the_work_without_duplicates(
    stack_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    campaign = f"camp-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    corpus = build_corpus(campaign, seed=11)
    env = {**stack_env, "CROWDSFT_INTAKE_BATCH_MAX_RECORDS": "50"}
    replicas = [
        ServiceProcess("services.intake", env, tmp_path / f"intake-{n}.log").start() for n in (1, 2)
    ]
    try:
        # Both in the group before any data, so the partitions are really shared.
        for replica in replicas:
            wait_until(lambda r=replica: "assigned to partitions" in r.log(), 60, "group join")
        bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
        await produce_raw(bootstrap, topics.FEEDBACK_SUBMITTED, corpus.records)
        rejected = len(corpus.malformed) + corpus.content_duplicates
        await wait_for_counts(db, len(corpus.valid_ids), rejected)
        counts = await assert_reconciled(db, bootstrap, corpus)
        assert all("batch handled" in replica.log() for replica in replicas)
    finally:
        for replica in replicas:
            replica.stop()
    assert counts == {"stored": 850, "rejected": 100}
