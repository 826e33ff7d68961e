"""1,000 submissions, 10% malformed, 5% duplicated, through the real intake process."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, Database
from crowdsft.contracts import topics
from tests.integration.intake_checks import assert_reconciled, wait_for_counts
from tests.support.corpus import build_corpus, feedback
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


async def test_binary_headers_do_not_block_a_batch(
    stack_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    """FastStream would fail a whole batch on a non-UTF-8 header; intake must not stall."""
    campaign = f"camp-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    event = feedback(campaign, "alice", 1, random.Random(1))
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    records = [(b"alice", event.model_dump_json().encode())]
    await produce_raw(bootstrap, topics.FEEDBACK_SUBMITTED, records, headers=[("h", b"\xff\xfe")])

    intake = ServiceProcess("services.intake", stack_env, tmp_path / "intake.log").start()
    try:
        deadline = time.monotonic() + 30
        while not await db[CONTRIBUTIONS].find_one({"event_id": event.event_id}):
            assert time.monotonic() < deadline, intake.log()
            await asyncio.sleep(0.1)
        assert intake.alive
    finally:
        intake.stop()
