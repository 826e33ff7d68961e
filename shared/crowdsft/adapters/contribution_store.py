"""Contributions in MongoDB: bulk, idempotent storage of triaged feedback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError

from crowdsft.adapters.mongo import CONTRIBUTIONS, REJECTIONS, Database, Document
from crowdsft.feedback import Parsed, first_of_each

DUPLICATE_KEY = 11000


@dataclass
class StoreOutcome:
    """What happened to each submission of a batch; every input lands in exactly one list."""

    stored: list[Parsed] = field(default_factory=list)
    replayed: list[Parsed] = field(default_factory=list)
    reused_ids: list[Parsed] = field(default_factory=list)
    duplicates: list[tuple[Parsed, str]] = field(default_factory=list)


def contribution_document(item: Parsed, stored_at: datetime) -> Document:
    event = item.event
    return {
        "_id": event.event_id,
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
        "content_hash": item.content_hash,
        "source": item.record.position,
    }


class ContributionStore:
    def __init__(self, db: Database) -> None:
        self._contributions = db[CONTRIBUTIONS]
        self._rejections = db[REJECTIONS]

    async def _existing(self, items: list[Parsed]) -> tuple[dict[str, str], dict[str, str]]:
        """Stored (id -> content hash) and (content hash -> id) for the batch's keys."""
        ids = [item.event.event_id for item in items]
        hashes = [item.content_hash for item in items]
        query = {"$or": [{"_id": {"$in": ids}}, {"content_hash": {"$in": hashes}}]}
        by_id: dict[str, str] = {}
        by_hash: dict[str, str] = {}
        async for doc in self._contributions.find(query, {"content_hash": 1}):
            by_id[doc["_id"]] = doc["content_hash"]
            by_hash[doc["content_hash"]] = doc["_id"]
        return by_id, by_hash

    def _classify(
        self, item: Parsed, by_id: dict[str, str], by_hash: dict[str, str], outcome: StoreOutcome
    ) -> bool:
        """Sort an item already known to the store; False when it is new."""
        stored_hash = by_id.get(item.event.event_id)
        if stored_hash is not None:
            if stored_hash == item.content_hash:
                outcome.replayed.append(item)
            else:
                outcome.reused_ids.append(item)
            return True
        original = by_hash.get(item.content_hash)
        if original is not None:
            outcome.duplicates.append((item, original))
            return True
        return False

    async def store(self, items: list[Parsed], stored_at: datetime) -> StoreOutcome:
        outcome = StoreOutcome()
        if not items:
            return outcome
        # Known to the store first: a replay must stay a replay even when a same-content
        # twin with a new event id precedes it in the batch.
        by_id, by_hash = await self._existing(items)
        unknown = [item for item in items if not self._classify(item, by_id, by_hash, outcome)]
        fresh, batch_replays, batch_duplicates = first_of_each(unknown)
        if fresh:
            lost_races = await self._insert(fresh, stored_at)
            won = [item for i, item in enumerate(fresh) if i not in lost_races]
            outcome.stored.extend(won)
            if lost_races:
                # Another intake replica stored the same key between our read and our write.
                racers = [fresh[i] for i in sorted(lost_races)]
                by_id, by_hash = await self._existing(racers)
                for item in racers:
                    if not self._classify(item, by_id, by_hash, outcome):
                        raise RuntimeError(f"insert of {item.event.event_id} failed without a key")
        owner = {item.content_hash: item.event.event_id for item in outcome.stored}
        owner.update({item.content_hash: item.event.event_id for item in outcome.replayed})
        owner.update({item.content_hash: original for item, original in outcome.duplicates})
        outcome.replayed.extend(batch_replays)
        for item, first in batch_duplicates:
            outcome.duplicates.append((item, owner.get(first.content_hash, first.event.event_id)))
        return outcome

    async def _insert(self, fresh: list[Parsed], stored_at: datetime) -> set[int]:
        """Insert in bulk; returns the indexes that lost a unique-key race."""
        docs = [contribution_document(item, stored_at) for item in fresh]
        try:
            await self._contributions.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            return {int(error["index"]) for error in errors}
        return set()

    async def record_rejections(self, rejections: list[Document]) -> None:
        """Keyed by the rejection's deterministic id, so a replayed batch records nothing new."""
        if not rejections:
            return
        try:
            await self._rejections.insert_many(rejections, ordered=False)
        except BulkWriteError as exc:
            errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
