"""Model lineage in MongoDB: one document per model, keyed by its derived model id.

A candidate's data (who was in its group, and their contribution ids) grows with the crowd
and is its round's group exactly, so the document names the round and group with their
counts, and the lists are read from the stored round (`RoundStore`) when an entry is read:
nothing is copied, and the document stays small at any crowd size. A root model has no data.
"""

from __future__ import annotations

from collections.abc import Sequence

from crowdsft.adapters.mongo import MODELS, Database, Document
from crowdsft.adapters.round_store import RoundStore
from crowdsft.domain.ids import round_id
from crowdsft.domain.lineage import LineageEntry

LISTS = ("contributor_ids", "contribution_ids")


class LineageStore:
    def __init__(self, db: Database, rounds: RoundStore | None = None) -> None:
        self._models = db[MODELS]
        self._rounds = rounds or RoundStore(db)

    @staticmethod
    def _document(entry: LineageEntry) -> Document:
        doc = entry.model_dump(exclude={"model_id", *LISTS})
        return doc | {"contributors": len(entry.contributor_ids),
                      "contributions": len(entry.contribution_ids)}  # fmt: skip

    async def _entry(self, doc: Document) -> LineageEntry:
        fields = {k: v for k, v in doc.items() if k in LineageEntry.model_fields}
        index, group = doc.get("round_index"), doc.get("group_index")
        if index is not None and group is not None and "contributor_ids" not in doc:
            played = await self._rounds.by_id(round_id(doc["campaign_id"], index))
            if played is None:
                raise LookupError(f"model {doc['_id']}'s round is not in the store")
            members = played.group(group)
            fields["contributor_ids"] = members.contributor_ids
            fields["contribution_ids"] = [c for ids in members.contribution_ids for c in ids]
        return LineageEntry.model_validate(fields | {"model_id": doc["_id"]})

    async def record(self, entries: Sequence[LineageEntry]) -> None:
        """Idempotent: a replayed decision writes the same entries again."""
        for entry in entries:
            doc = self._document(entry)
            await self._models.update_one({"_id": entry.model_id}, {"$set": doc}, upsert=True)

    async def add_root(self, entry: LineageEntry) -> None:
        """A campaign's starting model; never overwritten by a second creation."""
        doc = self._document(entry)
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

    async def of_campaign(
        self, campaign_id: str, limit: int | None = None, offset: int = 0
    ) -> list[LineageEntry]:
        """The base model first, then each round's candidates by group; `limit` after skipping
        `offset`. The documents are small, so they are all read and ordered here; only the
        page's candidates read their groups from their rounds."""
        docs = [doc async for doc in self._models.find({"campaign_id": campaign_id})]
        docs.sort(key=lambda d: (_or(d.get("round_index")), _or(d.get("group_index"))))
        page = docs[offset:] if limit is None else docs[offset : offset + limit]
        return [await self._entry(doc) for doc in page]


def _or(value: int | None) -> int:
    return -1 if value is None else value
