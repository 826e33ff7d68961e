"""Campaigns: their spec, and the selection state that moves from round to round."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from crowdsft.adapters.mongo import CAMPAIGNS, MODELS, Database, Document
from crowdsft.campaigns import CampaignSpec, initial_state


@dataclass(frozen=True)
class CampaignState:
    """Where selection stands: the current model, the next round and the random stream."""

    next_round: int
    model_id: str
    rng_state: str
    open_round: int | None


def root_model_id(campaign_id: str) -> str:
    return f"{campaign_id}:base"


class CampaignStore:
    def __init__(self, db: Database) -> None:
        self._campaigns = db[CAMPAIGNS]
        self._models = db[MODELS]
        self._known: set[str] = set()

    async def create(self, campaign_id: str, name: str | None = None) -> bool:
        """A feedback-only campaign (no rounds yet). True when created, False if it existed."""
        return await self._insert({"_id": campaign_id, "name": name or campaign_id})

    async def create_with_spec(self, spec: CampaignSpec) -> bool:
        """A campaign that runs rounds: its spec, its starting model and its random stream."""
        model, rng_state = initial_state(spec)
        root = root_model_id(spec.campaign_id)
        lineage_root: Document = {
            "campaign_id": spec.campaign_id,
            "parent_model_id": None,
            "round_index": None,
        }
        if spec.llm is None:
            lineage_root |= {"vector": model, "artifact_ref": f"models:{root}"}
        else:  # measured by the first training request, like every candidate after it
            lineage_root |= {"artifact_ref": f"base:{spec.llm.base_model}"}
        await self._models.update_one({"_id": root}, {"$setOnInsert": lineage_root}, upsert=True)
        state = {"next_round": 0, "model_id": root, "rng_state": rng_state, "open_round": None}
        doc = {"_id": spec.campaign_id, "name": spec.name or spec.campaign_id}
        return await self._insert(doc | {"spec": spec.model_dump(mode="json"), "state": state})

    async def _insert(self, doc: Document) -> bool:
        try:
            await self._campaigns.insert_one(doc | {"created_at": datetime.now(UTC)})
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

    async def spec(self, campaign_id: str) -> CampaignSpec | None:
        doc = await self._campaigns.find_one({"_id": campaign_id}, {"spec": 1})
        if doc is None or "spec" not in doc:
            return None
        return CampaignSpec.model_validate(doc["spec"])

    async def state(self, campaign_id: str) -> CampaignState | None:
        doc = await self._campaigns.find_one({"_id": campaign_id}, {"state": 1})
        if doc is None or "state" not in doc:
            return None
        return CampaignState(**doc["state"])

    async def advance(self, campaign_id: str, expected_round: int, **changes: Any) -> bool:
        """Compare-and-set on the round counter, so a replayed step cannot move state twice."""
        result = await self._campaigns.update_one(
            {"_id": campaign_id, "state.next_round": expected_round},
            {"$set": {f"state.{key}": value for key, value in changes.items()}},
        )
        return result.modified_count == 1

    async def mark_open(self, campaign_id: str, round_index: int, rng_state: str) -> None:
        await self._campaigns.update_one(
            {"_id": campaign_id, "state.next_round": round_index},
            {"$set": {"state.open_round": round_index, "state.rng_state": rng_state}},
        )

    async def list_specs(self) -> list[CampaignSpec]:
        cursor = self._campaigns.find({"spec": {"$exists": True}}, {"spec": 1})
        return [CampaignSpec.model_validate(doc["spec"]) async for doc in cursor]
