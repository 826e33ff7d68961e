"""Each campaign's Shapley values and its fairness figures over the rounds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from crowdsft.adapters.mongo import SHAPLEY, Database, Document


class ShapleyStore:
    def __init__(self, db: Database) -> None:
        self._shapley = db[SHAPLEY]

    async def get(self, campaign_id: str) -> Document | None:
        return await self._shapley.find_one({"_id": campaign_id})

    async def save(
        self, campaign_id: str, round_index: int, values: Document, fairness: dict[str, Any]
    ) -> None:
        """Values replace the last ones; the round's fairness figures are keyed by round."""
        await self._shapley.update_one(
            {"_id": campaign_id},
            {
                "$set": values
                | {
                    "as_of_round_index": round_index,
                    f"fairness.{round_index}": fairness,
                    "updated_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )
