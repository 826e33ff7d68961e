"""Contributions in MongoDB: bulk, idempotent storage of triaged feedback.

Two collections, each keyed only by `_id` (a secondary unique index cost SecantusDB over
two thirds of its insert rate, measured with /work/main/bench/intake.py):
- `submissions`, `_id` = event id: every submission seen, with its content hash and its
  contributor, so an event id is honoured once and never reused for other content or by
  another contributor (that is a conflict, refused with its reason);
- `contributions`, `_id` = content hash (campaign and canonical text, not the contributor):
  the same demonstration is stored once, and whoever's event id reached it first owns it.
Lookups happen only for the inserts that collide, so fresh data costs two bulk inserts.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from crowdsft.adapters.mongo import (
    CONTRIBUTIONS,
    REJECTIONS,
    SUBMISSIONS,
    Database,
    Document,
    insert_new,
)
from crowdsft.contracts import FeedbackRejected
from crowdsft.domain.crowd import Contribution
from crowdsft.feedback import Parsed, StoreOutcome


def contribution_document(item: Parsed, stored_at: datetime) -> Document:
    event = item.event
    return {
        "_id": item.content_hash,
        "event_id": event.event_id,
        "campaign_id": event.campaign_id,
        "contributor_id": event.contributor_id,
        "prompt": event.prompt,
        "response": event.response,
        "rating": event.rating,
        "correction": event.correction,
        "client_timestamp": event.client_timestamp,
        "submitted_at": event.occurred_at,
        "stored_at": stored_at,
        "producer": event.producer,
        "source": item.record.position,
    }


CONTRIBUTION_FIELDS = ["contributor_id", "prompt", "response"]
# Near-copies stay stored (nothing sent is lost) but are in no crowd (adapters.near_copy_store).
EARNING: Document = {"near_copy_of": None}


def rejection_document(rejection: FeedbackRejected, source: str) -> Document:
    return {
        "_id": rejection.event_id,
        "source": source,
        "reason": rejection.reason.value,
        "detail": rejection.detail,
        "submission_event_id": rejection.submission_event_id,
        "campaign_id": rejection.campaign_id,
        "contributor_id": rejection.contributor_id,
        "duplicate_of": rejection.duplicate_of,
        "recorded_at": rejection.occurred_at,
    }


def _contribution(doc: Document) -> Contribution:
    return Contribution(doc["_id"], doc["contributor_id"], doc["prompt"], doc["response"])


def submission_document(item: Parsed) -> Document:
    return {
        "_id": item.event.event_id,
        "content_hash": item.content_hash,
        "contributor_id": item.event.contributor_id,
    }


def _same_submission(item: Parsed, known: Document) -> bool:
    """A replay repeats the content and the sender; documents from before the sender was
    kept match on content alone."""
    sender = known.get("contributor_id", item.event.contributor_id)
    return bool(known["content_hash"] == item.content_hash and sender == item.event.contributor_id)


class ContributionStore:
    def __init__(self, db: Database) -> None:
        self._submissions = db[SUBMISSIONS]
        self._contributions = db[CONTRIBUTIONS]
        self._rejections = db[REJECTIONS]

    async def _documents(self, collection: Any, ids: list[str], *names: str) -> list[Document]:
        fields = dict.fromkeys(names, 1)
        return list(await asyncio.gather(*(collection.find_one({"_id": i}, fields) for i in ids)))

    async def store(self, items: list[Parsed], stored_at: datetime) -> StoreOutcome:
        outcome = StoreOutcome()
        seen = await insert_new(self._submissions, [submission_document(i) for i in items])
        collided = [items[i] for i in sorted(seen)]
        known = await self._documents(
            self._submissions,
            [i.event.event_id for i in collided],
            "content_hash",
            "contributor_id",
        )
        reused = {
            id(item)
            for item, doc in zip(collided, known, strict=True)
            if not _same_submission(item, doc)
        }
        outcome.conflicting_ids = [item for item in collided if id(item) in reused]
        # A seen event id with the same content may still lack its contribution (a crash
        # between the two inserts), so it goes on to the contribution insert like new ones.
        candidates = [item for item in items if id(item) not in reused]
        taken = await insert_new(
            self._contributions, [contribution_document(i, stored_at) for i in candidates]
        )
        losers = [candidates[i] for i in sorted(taken)]
        owners = [
            doc["event_id"]
            for doc in await self._documents(
                self._contributions, [i.content_hash for i in losers], "event_id"
            )
        ]
        for item, owner in zip(losers, owners, strict=True):
            if owner == item.event.event_id:
                outcome.replayed.append(item)
            else:
                outcome.duplicates.append((item, owner))
        outcome.stored = [item for i, item in enumerate(candidates) if i not in taken]
        return outcome

    async def of_campaign(self, campaign_id: str) -> list[Contribution]:
        """What a round's crowd is made of: every stored contribution but near-copies."""
        query = {"campaign_id": campaign_id, **EARNING}
        cursor = self._contributions.find(query, CONTRIBUTION_FIELDS)
        return [_contribution(doc) async for doc in cursor]

    async def by_ids(self, contribution_ids: list[str]) -> list[Contribution]:
        """A round's own members, as it was opened with them, flagged since or not."""
        cursor = self._contributions.find({"_id": {"$in": contribution_ids}}, CONTRIBUTION_FIELDS)
        return [_contribution(doc) async for doc in cursor]

    async def count(self, campaign_id: str) -> int:
        return await self._contributions.count_documents({"campaign_id": campaign_id, **EARNING})

    async def record_rejections(self, rejections: list[tuple[FeedbackRejected, str]]) -> None:
        """Keyed by the rejection's deterministic id, so a replayed batch records nothing new."""
        await insert_new(self._rejections, [rejection_document(*pair) for pair in rejections])
