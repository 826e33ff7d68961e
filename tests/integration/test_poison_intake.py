"""Poison on the feedback topic, through the real intake process: every record is set aside or
refused with its reason within seconds, and canary feedback sent after it, on the same
partition, is stored. Copies and a reused event id earn nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, REJECTIONS, Database
from crowdsft.contracts import topics
from tests.support.corpus import feedback
from tests.support.kafka_io import produce_raw, read_topic
from tests.support.stack import ServiceProcess

KEY = b"one-partition"  # every record on one partition: a stuck one would block the canary


def payload(campaign: str, contributor: str, n: int, **changes: object) -> dict[str, object]:
    event = feedback(campaign, contributor, n, random.Random(n))
    return {**json.loads(event.model_dump_json()), **changes}


async def wait_stored(db: Database, event_ids: set[str], intake: ServiceProcess) -> float:
    started = time.monotonic()
    while True:
        found = await db[CONTRIBUTIONS].count_documents({"event_id": {"$in": sorted(event_ids)}})
        if found == len(event_ids):
            return time.monotonic() - started
        assert intake.alive, intake.log()[-3000:]
        assert time.monotonic() - started < 60, intake.log()[-3000:]
        await asyncio.sleep(0.2)


async def test_poison_feedback_never_blocks_the_partition(
    stack_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    campaign = f"camp-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    original = payload(campaign, "alice", 1, response="So happy for you, well done!")
    poison = {
        "oversize": b"x" * 800_000,
        "garbage": b"\x00\x01 not json at all",  # sent with a JSON content-type header
        "deep": b"[" * 30_000 + b"]" * 30_000,
        "latin1": "r\xe9ponse".encode("latin-1"),
        "far_future": json.dumps(
            payload(campaign, "alice", 2, client_timestamp="9999-12-31T23:00:00-12:00")
        ).encode(),
    }
    copies = {  # the same demonstration from a second account, disguised four ways
        "case": "SO HAPPY FOR YOU, WELL DONE!",
        "punctuation": "So happy for you... well done",
        "zero_width": "So hap\u200bpy for you, well done!",
        "homoglyph": "So h\u0430ppy for y\u043eu, well done!",  # Cyrillic a and o
    }
    copy_events = {
        name: payload(campaign, "mallory", 10 + i, response=text)
        for i, (name, text) in enumerate(copies.items())
    }
    conflict = payload(campaign, "bob", 3, event_id=original["event_id"])  # alice's id
    canaries = [payload(campaign, "carol", 20 + i) for i in range(3)]
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    json_header = [("content-type", b"application/json")]
    await produce_raw(bootstrap, topics.FEEDBACK_SUBMITTED, [(KEY, json.dumps(original).encode())])
    await produce_raw(
        bootstrap,
        topics.FEEDBACK_SUBMITTED,
        [(KEY, value) for value in poison.values()],
        headers=json_header,
    )
    later = [*copy_events.values(), conflict, *canaries]
    await produce_raw(
        bootstrap, topics.FEEDBACK_SUBMITTED, [(KEY, json.dumps(p).encode()) for p in later]
    )

    intake = ServiceProcess("services.intake", stack_env, tmp_path / "intake.log").start()
    try:
        wanted = {str(original["event_id"]), *(str(c["event_id"]) for c in canaries)}
        seconds = await wait_stored(db, wanted, intake)
        assert seconds < 30
        await asyncio.sleep(1.0)  # the rejections of the same batch are written before it
    finally:
        intake.stop()

    rejections = [doc async for doc in db[REJECTIONS].find({"campaign_id": campaign})]
    by_event = {doc["submission_event_id"]: doc for doc in rejections}
    for name, event in copy_events.items():
        doc = by_event[event["event_id"]]
        assert doc["reason"] == "duplicate_content", name
        assert doc["duplicate_of"] is not None, name
    assert await db[CONTRIBUTIONS].count_documents({"contributor_id": "mallory"}) == 0
    [refused] = [d for d in rejections if d["contributor_id"] == "bob"]
    assert refused["reason"] == "event_id_conflict" and "another contributor" in refused["detail"]
    assert await db[CONTRIBUTIONS].count_documents({"contributor_id": "bob"}) == 0

    letters = await read_topic(bootstrap, topics.FEEDBACK_DLQ)
    reasons = {letter["original"]["sha256"]: letter for letter in letters}
    for name, value in poison.items():
        letter = reasons[hashlib.sha256(value).hexdigest()]
        assert letter["original"]["length"] == len(value), name
        assert letter["source_partition"] is not None
    assert reasons[hashlib.sha256(poison["oversize"]).hexdigest()]["reason"] == "oversize"
    assert reasons[hashlib.sha256(poison["far_future"]).hexdigest()]["reason"] == "invalid_fields"
    assert reasons[hashlib.sha256(poison["deep"]).hexdigest()]["reason"] == "bad_json"
    assert len(intake.log()) < 200_000  # no failure repeated into the log
