"""Measurements in MongoDB: one document per model, where it stands and what it scored.

Written once, by whoever made the model; the first write wins, as the first adapter folder
does, so a replayed training request cannot change a candidate that was already judged.
"""

from __future__ import annotations

from datetime import UTC, datetime

from crowdsft.adapters.mongo import ARTIFACTS, Database, Document
from crowdsft.domain.measurement import Measurement


def _document(measurement: Measurement) -> Document:
    fields = measurement.model_dump(exclude={"model_id"})
    return fields | {"_id": measurement.model_id, "stored_at": datetime.now(UTC)}


def _measurement(doc: Document) -> Measurement:
    fields = {k: v for k, v in doc.items() if k not in ("_id", "stored_at")}
    return Measurement.model_validate(fields | {"model_id": doc["_id"]})


class MeasurementStore:
    def __init__(self, db: Database) -> None:
        self._measurements = db[ARTIFACTS]

    async def put(self, measurement: Measurement) -> Measurement:
        await self._measurements.update_one(
            {"_id": measurement.model_id}, {"$setOnInsert": _document(measurement)}, upsert=True
        )
        stored = await self._measurements.find_one({"_id": measurement.model_id})
        assert stored is not None
        return _measurement(stored)

    async def get(self, model_ids: list[str]) -> dict[str, Measurement]:
        cursor = self._measurements.find({"_id": {"$in": model_ids}})
        return {doc["_id"]: _measurement(doc) async for doc in cursor}
