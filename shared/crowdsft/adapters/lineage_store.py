"""Model lineage in MongoDB: one document per model, keyed by its derived model id."""

from __future__ import annotations

from collections.abc import Sequence

from crowdsft.adapters.mongo import MODELS, Database, Document
from crowdsft.domain.lineage import LineageEntry


def _entry(doc: Document) -> LineageEntry:
    fields = {k: v for k, v in doc.items() if k in LineageEntry.model_fields}
    return LineageEntry.model_validate(fields | {"model_id": doc["_id"]})


class LineageStore:
    def __init__(self, db: Database) -> None:
        self._models = db[MODELS]

    async def record(self, entries: Sequence[LineageEntry]) -> None:
        """Idempotent: a replayed decision writes the same entries again."""
        for entry in entries:
            doc = entry.model_dump(exclude={"model_id"})
            await self._models.update_one({"_id": entry.model_id}, {"$set": doc}, upsert=True)

    async def add_root(self, entry: LineageEntry) -> None:
        """A campaign's starting model; never overwritten by a second creation."""
        doc = entry.model_dump(exclude={"model_id"})
        await self._models.update_one({"_id": entry.model_id}, {"$setOnInsert": doc}, upsert=True)

    async def ancestry(self, model_id: str) -> list[LineageEntry]:
        chain: list[LineageEntry] = []
        current: str | None = model_id
        while current is not None:
            doc = await self._models.find_one({"_id": current})
            if doc is None:
                raise LookupError(f"model {current!r} is not in the lineage")
            chain.append(_entry(doc))
            current = chain[-1].parent_model_id
        return chain[::-1]

    async def of_campaign(self, campaign_id: str) -> list[LineageEntry]:
        """The base model first, then each round's candidates by group."""
        entries = [_entry(doc) async for doc in self._models.find({"campaign_id": campaign_id})]
        return sorted(entries, key=lambda e: (_or(e.round_index), _or(e.group_index)))


def _or(value: int | None) -> int:
    return -1 if value is None else value
