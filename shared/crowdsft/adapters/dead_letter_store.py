"""The dead letters kept for operators: stored once each, counted by reason, listed newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pymongo import UpdateOne

from crowdsft.adapters.mongo import DEAD_LETTERS, Database, Document
from crowdsft.domain.dead_letters import DeadLetter, DeadLetterCount


def _scope(campaign_id: str | None) -> Document:
    return {"campaign_id": campaign_id} if campaign_id is not None else {}


def _letter(doc: Document) -> DeadLetter:
    return DeadLetter.model_validate(doc | {"dead_letter_id": doc["_id"]})


class DeadLetterStore:
    def __init__(self, db: Database) -> None:
        self._letters = db[DEAD_LETTERS]

    async def keep(self, letters: list[DeadLetter]) -> None:
        """Idempotent: a redelivered dead letter finds its copy and changes nothing."""
        if not letters:
            return
        writes = [
            UpdateOne(
                {"_id": letter.dead_letter_id},
                {"$setOnInsert": letter.model_dump(mode="python", exclude={"dead_letter_id"})},
                upsert=True,
            )
            for letter in letters
        ]
        await self._letters.bulk_write(writes, ordered=False)

    async def counts(self, campaign_id: str | None = None) -> list[DeadLetterCount]:
        """How many records each reason set aside, most first."""
        pipeline: list[Document] = [
            {"$match": _scope(campaign_id)},
            {
                "$group": {
                    "_id": {"kind": "$kind", "source_topic": "$source_topic", "reason": "$reason"},
                    "count": {"$sum": 1},
                    "last_at": {"$max": "$recorded_at"},
                }
            },
            {"$sort": {"count": -1, "_id.reason": 1}},
        ]
        cursor = await self._letters.aggregate(pipeline)
        return [
            DeadLetterCount(**doc["_id"], count=doc["count"], last_at=doc["last_at"])
            async for doc in cursor
        ]

    async def recent(self, campaign_id: str | None = None, limit: int = 20) -> list[DeadLetter]:
        found = self._letters.find(_scope(campaign_id)).sort("recorded_at", -1).limit(limit)
        return [_letter(doc) async for doc in found]

    async def matching(
        self,
        campaign_id: str | None = None,
        reason: str | None = None,
        kind: Literal["feedback", "internal"] | None = None,
        again: bool = False,
        limit: int = 10_000,
    ) -> list[DeadLetter]:
        """Oldest first, as they were set aside; replayed ones only when asked `again`."""
        query = _scope(campaign_id)
        query |= {"reason": reason} if reason is not None else {}
        query |= {"kind": kind} if kind is not None else {"kind": {"$ne": "unreadable"}}
        query |= {} if again else {"replayed_at": None}  # never replayed (or kept before)
        found = self._letters.find(query).sort("recorded_at", 1).limit(limit)
        return [_letter(doc) async for doc in found]

    async def mark_replayed(self, dead_letter_ids: list[str], at: datetime) -> None:
        for dead_letter_id in dead_letter_ids:  # a few hundred at most: no wide $in
            await self._letters.update_one(
                {"_id": dead_letter_id}, {"$inc": {"replays": 1}, "$set": {"replayed_at": at}}
            )
