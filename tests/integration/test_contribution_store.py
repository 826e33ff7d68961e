"""The contribution store against the real SecantusDB: idempotent under every replay shape."""

from __future__ import annotations

import uuid

from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, Database
from crowdsft.contracts import FeedbackSubmitted, utc_now
from crowdsft.feedback import Parsed, RawRecord, content_hash

_offsets = iter(range(10**6))


def parsed(event_id: str, campaign: str, response: str) -> Parsed:
    event = FeedbackSubmitted(
        event_id=event_id,
        producer="test",
        campaign_id=campaign,
        contributor_id="alice",
        prompt="write a reddit comment.",
        response=response,
        client_timestamp=utc_now(),
    )
    record = RawRecord("t", 0, next(_offsets), None, event.model_dump_json().encode())
    return Parsed(record, event, content_hash(event))


async def test_replays_twins_and_reused_ids_are_told_apart(db: Database) -> None:
    campaign = f"c-{uuid.uuid4().hex[:6]}"
    store = ContributionStore(db)
    original = parsed("id-1", campaign, "hello  there")
    first = await store.store([original], utc_now())
    assert [p.event.event_id for p in first.stored] == ["id-1"]

    twin = parsed("id-2", campaign, "hello there ")
    replay = parsed("id-1", campaign, "hello  there")
    reused = parsed("id-1", campaign, "something else")
    fresh = parsed("id-3", campaign, "new words")
    fresh_twin = parsed("id-4", campaign, "new   words")
    outcome = await store.store([twin, replay, reused, fresh, fresh_twin, fresh], utc_now())

    assert [p.event.event_id for p in outcome.stored] == ["id-3"]
    assert sorted(p.event.event_id for p in outcome.replayed) == ["id-1", "id-3"]
    assert [p.event.event_id for p in outcome.conflicting_ids] == ["id-1"]
    assert sorted((p.event.event_id, o) for p, o in outcome.duplicates) == [
        ("id-2", "id-1"),
        ("id-4", "id-3"),
    ]
    assert await db[CONTRIBUTIONS].count_documents({"campaign_id": campaign}) == 2
