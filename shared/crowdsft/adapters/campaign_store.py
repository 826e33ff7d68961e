"""Campaigns: which campaign ids exist (intake rejects feedback for unknown ones)."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from crowdsft.adapters.mongo import CAMPAIGNS, Database


class CampaignStore:
    def __init__(self, db: Database) -> None:
        self._campaigns = db[CAMPAIGNS]
        self._known: set[str] = set()

    async def create(self, campaign_id: str, name: str | None = None) -> bool:
        """True when created, False when it already existed (creating twice is harmless)."""
        try:
            await self._campaigns.insert_one(
                {"_id": campaign_id, "name": name or campaign_id, "created_at": datetime.now(UTC)}
            )
        except DuplicateKeyError:
            return False
        return True

    async def known(self, campaign_ids: set[str]) -> set[str]:
        """Campaigns never disappear, so found ids are cached; misses are asked again."""
        missing = campaign_ids - self._known
        if missing:
            cursor = self._campaigns.find({"_id": {"$in": sorted(missing)}}, {"_id": 1})
            self._known.update([doc["_id"] async for doc in cursor])
        return campaign_ids & self._known
