"""Model lineage in MongoDB: one document per model, keyed by its derived model id.

A candidate's data (who was in its group, and their contribution ids) grows with the crowd,
so it is stored as two chunked parts (`crowdsft.adapters.chunks`) that the model's document
names by digest, beside their counts; the document itself stays small at any crowd size.
"""

from __future__ import annotations

from collections.abc import Sequence

from crowdsft.adapters.chunks import ChunkStore
from crowdsft.adapters.mongo import MODELS, Database, Document
from crowdsft.domain.lineage import LineageEntry

# part -> (the entry's list it holds, the document's count of it)
LISTS = {
    "members": ("contributor_ids", "contributors"),
    "data": ("contribution_ids", "contributions"),
}


class LineageStore:
    def __init__(self, db: Database) -> None:
        self._models = db[MODELS]
        self._chunks = ChunkStore(db)

    async def _document(self, entry: LineageEntry) -> Document:
        doc = entry.model_dump(exclude={"model_id", *(field for field, _ in LISTS.values())})
        parts = {}
        for part, (field, count) in LISTS.items():
            values = getattr(entry, field)
            parts[part] = await self._chunks.write(entry.model_id, part, {field: values})
            doc[count] = len(values)
        return doc | {"parts": parts}

    async def _entry(self, doc: Document) -> LineageEntry:
        fields = {k: v for k, v in doc.items() if k in LineageEntry.model_fields}
        for part, digest in (doc.get("parts") or {}).items():
            field, _ = LISTS[part]
            fields[field] = list((await self._chunks.read(doc["_id"], part, digest))[field])
        return LineageEntry.model_validate(fields | {"model_id": doc["_id"]})

    async def record(self, entries: Sequence[LineageEntry]) -> None:
        """Idempotent: a replayed decision writes the same entries again."""
        for entry in entries:
            doc = await self._document(entry)
            await self._models.update_one({"_id": entry.model_id}, {"$set": doc}, upsert=True)

    async def add_root(self, entry: LineageEntry) -> None:
        """A campaign's starting model; never overwritten by a second creation."""
        doc = await self._document(entry)
        await self._models.update_one({"_id": entry.model_id}, {"$setOnInsert": doc}, upsert=True)

    async def ancestry(self, model_id: str) -> list[LineageEntry]:
        chain: list[LineageEntry] = []
        current: str | None = model_id
        while current is not None:
            doc = await self._models.find_one({"_id": current})
            if doc is None:
                raise LookupError(f"model {current!r} is not in the lineage")
            chain.append(await self._entry(doc))
            current = chain[-1].parent_model_id
        return chain[::-1]

    async def of_campaign(self, campaign_id: str) -> list[LineageEntry]:
        """The base model first, then each round's candidates by group."""
        found = self._models.find({"campaign_id": campaign_id})
        entries = [await self._entry(doc) async for doc in found]
        return sorted(entries, key=lambda e: (_or(e.round_index), _or(e.group_index)))


def _or(value: int | None) -> int:
    return -1 if value is None else value
