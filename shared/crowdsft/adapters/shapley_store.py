"""Each campaign's Shapley values and its fairness figures over the rounds.

The values are one per contributor, so they are a chunked part (`crowdsft.adapters.chunks`)
that the campaign's document names by digest, beside their count; the document keeps the
estimate's figures and the fairness history (one entry per round, not per contributor).
"""

from __future__ import annotations

import numpy as np

from crowdsft.adapters.chunks import ChunkStore
from crowdsft.adapters.mongo import SHAPLEY, Database, Document
from crowdsft.domain.shapley import ShapleyRecord

VALUES = "values"
COLUMNS = ("contributor_ids", "values", "std_errors")


class ShapleyStore:
    def __init__(self, db: Database) -> None:
        self._shapley = db[SHAPLEY]
        self._chunks = ChunkStore(db)

    async def _record(self, doc: Document) -> ShapleyRecord:
        fields = {k: v for k, v in doc.items() if k in ShapleyRecord.model_fields}
        digest = (doc.get("parts") or {}).get(VALUES)
        if digest is not None:  # else the lists are in the document (written before chunks)
            columns = await self._chunks.read(doc["_id"], VALUES, digest)
            fields["contributor_ids"] = list(columns["contributor_ids"])
            fields["values"] = np.asarray(columns["values"]).tolist()
            fields["std_errors"] = np.asarray(columns["std_errors"]).tolist()
        return ShapleyRecord.model_validate(fields | {"campaign_id": doc["_id"]})

    async def get(self, campaign_id: str) -> ShapleyRecord | None:
        doc = await self._shapley.find_one({"_id": campaign_id})
        return await self._record(doc) if doc is not None else None

    async def save(self, record: ShapleyRecord) -> None:
        """Values replace the last ones; fairness figures accumulate, keyed by round."""
        columns = {
            "contributor_ids": record.contributor_ids,
            "values": np.asarray(record.values, dtype=np.float64),
            "std_errors": np.asarray(record.std_errors, dtype=np.float64),
        }
        digest = await self._chunks.write(record.campaign_id, VALUES, columns)
        doc = record.model_dump(exclude={"campaign_id", "fairness", *COLUMNS})
        fairness = {f"fairness.{r}": f.model_dump() for r, f in record.fairness.items()}
        update = doc | fairness | {f"parts.{VALUES}": digest, "contributors": len(record.values)}
        # The lists of a record written before chunks are dropped with the first new save.
        await self._shapley.update_one(
            {"_id": record.campaign_id},
            {"$set": update, "$unset": dict.fromkeys(COLUMNS, "")},
            upsert=True,
        )
