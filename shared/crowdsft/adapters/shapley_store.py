"""Each campaign's Shapley values and its fairness figures over the rounds."""

from __future__ import annotations

from crowdsft.adapters.mongo import SHAPLEY, Database, Document
from crowdsft.domain.shapley import ShapleyRecord


def _record(doc: Document) -> ShapleyRecord:
    fields = {k: v for k, v in doc.items() if k in ShapleyRecord.model_fields}
    return ShapleyRecord.model_validate(fields | {"campaign_id": doc["_id"]})


class ShapleyStore:
    def __init__(self, db: Database) -> None:
        self._shapley = db[SHAPLEY]

    async def get(self, campaign_id: str) -> ShapleyRecord | None:
        doc = await self._shapley.find_one({"_id": campaign_id})
        return _record(doc) if doc is not None else None

    async def save(self, record: ShapleyRecord) -> None:
        """Values replace the last ones; fairness figures accumulate, keyed by round."""
        doc = record.model_dump(exclude={"campaign_id", "fairness"})
        fairness = {f"fairness.{r}": f.model_dump() for r, f in record.fairness.items()}
        await self._shapley.update_one(
            {"_id": record.campaign_id}, {"$set": doc | fairness}, upsert=True
        )
