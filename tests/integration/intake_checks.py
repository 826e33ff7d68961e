"""Shared steps of the intake reconciliation tests (plain functions, not fixtures)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from crowdsft.adapters.mongo import CONTRIBUTIONS, REJECTIONS, Database
from crowdsft.contracts import topics
from crowdsft.contracts.feedback import RejectionReason
from tests.support.corpus import Corpus
from tests.support.kafka_io import read_topic


async def wait_for_counts(db: Database, stored: int, rejected: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n_stored = await db[CONTRIBUTIONS].count_documents({})
        n_rejected = await db[REJECTIONS].count_documents({})
        if n_stored >= stored and n_rejected >= rejected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"stored {n_stored}/{stored}, rejected {n_rejected}/{rejected}")


async def assert_reconciled(db: Database, bootstrap: str, corpus: Corpus) -> dict[str, Any]:
    """Exactly the valid unique feedback stored; every malformed record dead-lettered whole."""
    stored_ids = {doc["event_id"] async for doc in db[CONTRIBUTIONS].find({}, {"event_id": 1})}
    assert stored_ids == corpus.valid_ids

    reasons: dict[str, int] = {}
    async for doc in db[REJECTIONS].find({}, {"reason": 1}):
        reasons[doc["reason"]] = reasons.get(doc["reason"], 0) + 1
    assert reasons.pop(RejectionReason.DUPLICATE_CONTENT.value) == corpus.content_duplicates
    expected: dict[str, int] = {}
    for reason in corpus.malformed.values():
        expected[reason.value] = expected.get(reason.value, 0) + 1
    assert reasons == expected

    dead = {
        letter["event_id"]: letter for letter in await read_topic(bootstrap, topics.FEEDBACK_DLQ)
    }
    assert len(dead) == len(corpus.malformed)
    originals = {
        base64.b64decode(letter["original"]["value_b64"]): letter for letter in dead.values()
    }
    assert set(originals) == set(corpus.malformed)
    for value, letter in originals.items():
        assert letter["reason"] == corpus.malformed[value].value
        assert letter["detail"]

    accepted = {
        e["submission_event_id"] for e in await read_topic(bootstrap, topics.FEEDBACK_ACCEPTED)
    }
    assert accepted == corpus.valid_ids
    total = len(stored_ids) + len(corpus.malformed) + corpus.content_duplicates + corpus.replays
    assert total == len(corpus.records)
    return {"stored": len(stored_ids), "rejected": sum(expected.values())}
