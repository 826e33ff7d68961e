"""Near-copy fingerprints and flags in MongoDB.

`fingerprints` (`_id` = contribution id) keeps each long text's MinHash signature, so that the
consumer that owns a campaign can rebuild its in-memory band index after a restart or a
rebalance (`domain.near_copies.CampaignIndex`); a flag is a conditional update of the
contribution, so a copy keeps the first original it was judged a copy of, and a replay
changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from bson import Binary

from crowdsft.adapters.mongo import CONTRIBUTIONS, FINGERPRINTS, Database, Document, insert_new
from crowdsft.domain.near_copies import Fingerprint, FlaggedCopy, NearCopy


def _document(fingerprint: Fingerprint) -> Document:
    return {
        "_id": fingerprint.contribution_id,
        "campaign_id": fingerprint.campaign_id,
        "submitted_at": fingerprint.submitted_at,
        "signature": Binary(fingerprint.signature.astype("<u4").tobytes()),
    }


def _fingerprint(doc: Document) -> Fingerprint:
    signature = np.frombuffer(bytes(doc["signature"]), dtype="<u4").astype(np.uint32)
    return Fingerprint(doc["_id"], doc["campaign_id"], doc["submitted_at"], signature)


class NearCopyStore:
    def __init__(self, db: Database) -> None:
        self._fingerprints = db[FINGERPRINTS]
        self._contributions = db[CONTRIBUTIONS]

    async def known(self, campaign_id: str) -> list[Fingerprint]:
        cursor = self._fingerprints.find({"campaign_id": campaign_id})
        return [_fingerprint(doc) async for doc in cursor]

    async def count(self, campaign_id: str) -> int:
        return await self._fingerprints.count_documents({"campaign_id": campaign_id})

    async def save(self, fingerprints: list[Fingerprint]) -> None:
        await insert_new(self._fingerprints, [_document(f) for f in fingerprints])

    async def flag(self, verdicts: list[NearCopy]) -> list[FlaggedCopy]:
        for verdict in verdicts:
            await self._contributions.update_one(
                {"_id": verdict.copy_id, "near_copy_of": None},
                {"$set": {"near_copy_of": verdict.original_id,
                          "near_copy_similarity": verdict.similarity}},
            )  # fmt: skip
        docs = await self._find([v.copy_id for v in verdicts])
        return [
            FlaggedCopy(
                NearCopy(doc["_id"], doc["near_copy_of"], doc["near_copy_similarity"]),
                doc["campaign_id"],
                doc["contributor_id"],
                doc["event_id"],
            )
            for doc in docs
            if doc is not None and doc.get("near_copy_of")
        ]

    async def _find(self, ids: list[str]) -> list[Any]:
        fields = dict.fromkeys(
            ("event_id", "contributor_id", "campaign_id", "near_copy_of", "near_copy_similarity"), 1
        )
        return list(
            await asyncio.gather(*(self._contributions.find_one({"_id": i}, fields) for i in ids))
        )
