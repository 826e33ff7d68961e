"""Near-copies through the real intake and selection processes: a contributor who resubmits
someone's text with a word changed, a few words added or two clauses swapped is stored
(nothing sent is lost) but flagged with the original's id by selection's screening, told why
on `feedback.rejected`, and left out of every round's crowd, so the copy earns nothing; a
different text on the same theme is not touched."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, REJECTIONS, Database
from crowdsft.contracts import topics
from tests.support.corpus import feedback
from tests.support.kafka_io import produce_raw, read_topic
from tests.support.stack import ServiceProcess

ORIGINAL = (
    "Congratulations on the new job! You worked so hard for this, and everyone who knows you "
    "is proud of you. Enjoy the first week and be kind to yourself while you settle in."
)
COPIES = {
    "one word": ORIGINAL.replace("hard", "long"),
    "a few added": ORIGINAL + " Truly, well done.",
    "swapped clauses": ORIGINAL.replace(
        "Enjoy the first week and be kind to yourself",
        "Be kind to yourself and enjoy the first week",
    ),
}
KEY = b"one-partition"
SAME_THEME = (
    "What great news about the job. All that effort paid off; take the first days slowly and "
    "celebrate this weekend with the people who cheered you on."
)


def payload(campaign: str, contributor: str, n: int, response: str) -> bytes:
    event = feedback(campaign, contributor, n, random.Random(n))
    return json.dumps({**json.loads(event.model_dump_json()), "response": response}).encode()


async def test_near_copies_are_flagged_told_and_earn_nothing(
    stack_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    campaign = f"camp-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    # The original is submitted first; the copies and a fresh text on its theme after it.
    sent = [payload(campaign, "alice", 1, ORIGINAL)]
    sent += [payload(campaign, "mallory", 10 + i, text) for i, text in enumerate(COPIES.values())]
    sent.append(payload(campaign, "bob", 20, SAME_THEME))
    await produce_raw(bootstrap, topics.FEEDBACK_SUBMITTED, [(KEY, value) for value in sent])

    services = [ServiceProcess(f"services.{name}", stack_env, tmp_path / f"{name}.log").start()
                for name in ("intake", "selection")]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while await db[REJECTIONS].count_documents({"campaign_id": campaign}) < len(COPIES):
            logs = "\n".join(s.log()[-2000:] for s in services)
            assert all(s.alive for s in services) and time.monotonic() < deadline, logs
            await asyncio.sleep(0.2)
    finally:
        for service in services:
            service.stop()

    stored = [doc async for doc in db[CONTRIBUTIONS].find({"campaign_id": campaign})]
    assert len(stored) == 2 + len(COPIES)  # every text stored
    original_id = next(d["_id"] for d in stored if d["contributor_id"] == "alice")
    copies = [d for d in stored if d["contributor_id"] == "mallory"]
    assert {d["near_copy_of"] for d in copies} == {original_id}
    assert all(0.7 <= d["near_copy_similarity"] < 1.0 for d in copies)
    fresh = [d for d in stored if d["contributor_id"] in ("alice", "bob")]
    assert all(d.get("near_copy_of") is None for d in fresh)

    rejections = [doc async for doc in db[REJECTIONS].find({"campaign_id": campaign})]
    assert {(d["contributor_id"], d["reason"], d["duplicate_of"]) for d in rejections} == {
        ("mallory", "near_duplicate", original_id)
    }
    told = [e for e in await read_topic(bootstrap, topics.FEEDBACK_REJECTED)
            if e.get("campaign_id") == campaign]  # fmt: skip
    assert len(told) == len(COPIES) and all("near-copy earns nothing" in e["detail"] for e in told)
    # Intake accepted every text (each is new content); the screening judged them after.
    accepted = [e for e in await read_topic(bootstrap, topics.FEEDBACK_ACCEPTED)
                if e.get("campaign_id") == campaign]  # fmt: skip
    assert len(accepted) == 2 + len(COPIES)

    # A round's crowd is read from here: the copies are in no round, so they earn nothing.
    crowd = await ContributionStore(db).of_campaign(campaign)
    assert sorted(c.contributor_id for c in crowd) == ["alice", "bob"]
    assert await ContributionStore(db).count(campaign) == 2
