"""Rounds, candidate artifacts and model lineage in MongoDB.

Every document has a deterministic `_id` (`<campaign>:<round>`, model ids derived from the
round and group), and every state change is a conditional update, so a replayed event finds
its work done and changes nothing.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from pymongo.errors import DuplicateKeyError

from crowdsft.adapters.mongo import ARTIFACTS, MODELS, ROUNDS, Database, Document

FloatArray = NDArray[np.float64]


def round_id(campaign_id: str, round_index: int) -> str:
    return f"{campaign_id}:r{round_index:05d}"


OPENING, DECISION, AWARDS = "opening", "decision", "awards"


def announced(doc: Document, step: str) -> bool:
    return bool(doc.get("announced", {}).get(step))


class RoundStore:
    def __init__(self, db: Database) -> None:
        self._rounds = db[ROUNDS]
        self._models = db[MODELS]
        self._artifacts = db[ARTIFACTS]

    async def get(self, campaign_id: str, round_index: int) -> Document | None:
        return await self._rounds.find_one({"_id": round_id(campaign_id, round_index)})

    async def open(self, doc: Document) -> Document:
        """Insert a new round; if it exists already (a replay), the stored one wins."""
        with contextlib.suppress(DuplicateKeyError):
            await self._rounds.insert_one(doc | {"status": "open", "opened_at": _now()})
        stored = await self._rounds.find_one({"_id": doc["_id"]})
        assert stored is not None
        return stored

    async def add_candidate(self, rid: str, group_index: int, model_id: str) -> Document | None:
        """Record a trained candidate on an open round; returns the round as it now stands."""
        await self._rounds.update_one(
            {"_id": rid, "status": "open"},
            {"$set": {f"candidates.{group_index}": model_id}},
        )
        return await self._rounds.find_one({"_id": rid})

    async def decide(self, rid: str, decision: Document) -> Document:
        """open -> decided, once; a second caller gets the stored decision back."""
        await self._rounds.update_one(
            {"_id": rid, "status": "open"},
            {"$set": decision | {"status": "decided", "decided_at": _now()}},
        )
        stored = await self._rounds.find_one({"_id": rid})
        assert stored is not None
        return stored

    async def mark_announced(self, rid: str, step: str) -> None:
        """After a step's events are out. A trigger that finds the flag set does nothing, so
        a duplicate event stops at the first service instead of replaying the rounds after it;
        a crash before the flag costs one repeated announcement, which consumers absorb."""
        await self._rounds.update_one({"_id": rid}, {"$set": {f"announced.{step}": True}})

    async def of_campaign(self, campaign_id: str) -> list[Document]:
        cursor = self._rounds.find({"campaign_id": campaign_id}).sort("round_index", 1)
        return [doc async for doc in cursor]

    # Artifacts: the vector backend's trained candidates (a folder or object store for LoRA).

    async def put_vector(self, model_id: str, vector: FloatArray, meta: Document) -> str:
        await self._artifacts.update_one(
            {"_id": model_id},
            {"$setOnInsert": meta | {"vector": [float(x) for x in vector], "stored_at": _now()}},
            upsert=True,
        )
        return f"artifacts:{model_id}"

    async def vectors(self, model_ids: list[str]) -> FloatArray:
        """Vectors in the order asked; base models live in the lineage, candidates here."""
        found: dict[str, list[float]] = {}
        for collection in (self._artifacts, self._models):
            cursor = collection.find({"_id": {"$in": model_ids}, "vector": {"$exists": True}})
            found.update({doc["_id"]: doc["vector"] async for doc in cursor})
        missing = [m for m in model_ids if m not in found]
        if missing:
            raise LookupError(f"no vector stored for {missing}")
        return np.asarray([found[m] for m in model_ids], dtype=np.float64)

    async def put_measured(self, model_id: str, doc: Document) -> None:
        """An LLM model's artifact document: where it stands in phi space, its distances and
        metrics. The first write wins, as the first adapter folder does."""
        await self._artifacts.update_one(
            {"_id": model_id}, {"$setOnInsert": doc | {"stored_at": _now()}}, upsert=True
        )

    async def measured(self, model_ids: list[str]) -> dict[str, Document]:
        cursor = self._artifacts.find({"_id": {"$in": model_ids}, "distance": {"$exists": True}})
        return {doc["_id"]: doc async for doc in cursor}

    # Lineage: one document per model, with its parent, data and metrics.

    async def ancestry(self, model_id: str) -> list[Document]:
        """A model's lineage from the campaign's root to itself, oldest first."""
        chain: list[Document] = []
        current: str | None = model_id
        while current is not None:
            doc = await self._models.find_one({"_id": current}, {"vector": 0})
            if doc is None:
                raise LookupError(f"model {current!r} is not in the lineage")
            chain.append(doc)
            current = doc.get("parent_model_id")
        return chain[::-1]

    async def record_models(self, docs: list[Document]) -> None:
        for doc in docs:
            await self._models.update_one({"_id": doc["_id"]}, {"$set": doc}, upsert=True)


def _now() -> datetime:
    return datetime.now(UTC)
