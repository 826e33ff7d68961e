"""1,000 submissions, 10% malformed, 5% duplicated, through the real intake process."""

from __future__ import annotations

import uuid
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import Database
from crowdsft.contracts import topics
from tests.integration.intake_checks import assert_reconciled, wait_for_counts
from tests.support.corpus import build_corpus
from tests.support.kafka_io import produce_raw
from tests.support.stack import ServiceProcess


async def test_intake_stores_exactly_the_valid_unique_feedback(
    stack_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    campaign = f"camp-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    corpus = build_corpus(campaign)
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    await produce_raw(bootstrap, topics.FEEDBACK_SUBMITTED, corpus.records)

    intake = ServiceProcess("services.intake", stack_env, tmp_path / "intake.log").start()
    try:
        rejected = len(corpus.malformed) + corpus.content_duplicates
        await wait_for_counts(db, len(corpus.valid_ids), rejected)
        assert intake.alive, intake.log()
        counts = await assert_reconciled(db, bootstrap, corpus)
    finally:
        intake.stop()
    assert counts == {"stored": 850, "rejected": 100}
