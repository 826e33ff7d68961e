"""The reconciliation holds when intake is SIGKILLed halfway and restarted."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, Database
from crowdsft.contracts import topics
from tests.integration.intake_checks import assert_reconciled, wait_for_counts
from tests.support.corpus import build_corpus
from tests.support.kafka_io import produce_raw
from tests.support.stack import ServiceProcess


async def test_intake_killed_halfway_loses_and_duplicates_nothing(
    stack_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    campaign = f"camp-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    corpus = build_corpus(campaign)
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    half = len(corpus.records) // 2
    # Small batches, so the kill lands between commits rather than after one big batch.
    env = {**stack_env, "CROWDSFT_INTAKE_BATCH_MAX_RECORDS": "40"}
    log = tmp_path / "intake.log"

    await produce_raw(bootstrap, topics.FEEDBACK_SUBMITTED, corpus.records[:half])
    first = ServiceProcess("services.intake", env, log).start()
    deadline = time.monotonic() + 60
    while await db[CONTRIBUTIONS].count_documents({}) < 100:
        assert time.monotonic() < deadline, first.log()
        await asyncio.sleep(0.05)
    first.kill()
    stored_at_kill = await db[CONTRIBUTIONS].count_documents({})
    assert 0 < stored_at_kill < len(corpus.valid_ids)

    await produce_raw(bootstrap, topics.FEEDBACK_SUBMITTED, corpus.records[half:])
    second = ServiceProcess("services.intake", env, log).start()
    try:
        rejected = len(corpus.malformed) + corpus.content_duplicates
        await wait_for_counts(db, len(corpus.valid_ids), rejected)
        counts = await assert_reconciled(db, bootstrap, corpus)
    finally:
        second.stop()
    assert counts == {"stored": 850, "rejected": 100}
