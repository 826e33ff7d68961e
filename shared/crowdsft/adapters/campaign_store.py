"""Campaigns: their spec, and the selection state that moves from round to round."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.mongo import CAMPAIGNS, Database, Document
from crowdsft.domain.backends import backend_of
from crowdsft.domain.campaign import CampaignSpec, CampaignState, CrowdVersion, initial_state
from crowdsft.domain.ids import root_model_id
from crowdsft.domain.lineage import root_entry


class CampaignStore:
    def __init__(self, db: Database) -> None:
        self._campaigns = db[CAMPAIGNS]
        self._lineage = LineageStore(db)
        self._measurements = MeasurementStore(db)
        self._known: set[str] = set()

    async def create(self, campaign_id: str, name: str | None = None) -> bool:
        """A feedback-only campaign (no rounds yet). True when created, False if it existed."""
        return await self._insert({"_id": campaign_id, "name": name or campaign_id})

    async def create_with_spec(self, spec: CampaignSpec) -> bool:
        """A campaign that runs rounds: its spec, its starting model and its random stream."""
        model, rng_state = initial_state(spec)
        root = root_entry(spec.campaign_id, spec.backend.root_artifact_ref(spec.campaign_id))
        await self._lineage.add_root(root)
        measured = backend_of(spec).placement.root(spec, model)
        if measured is not None:
            await self._measurements.put(measured)
        state = CampaignState(next_round=0, model_id=root_model_id(spec.campaign_id),
                              rng_state=rng_state)  # fmt: skip
        doc = {"_id": spec.campaign_id, "name": spec.name or spec.campaign_id}
        fields = {"spec": spec.model_dump(mode="json"), "state": state.model_dump()}
        return await self._insert(doc | fields)

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
        return CampaignState.model_validate(doc["state"])

    async def advance(self, campaign_id: str, expected_round: int, state: CampaignState) -> bool:
        """Compare-and-set on the round counter, so a replayed step cannot move state twice."""
        result = await self._campaigns.update_one(
            {"_id": campaign_id, "state.next_round": expected_round},
            {"$set": {"state": state.model_dump()}},
        )
        return result.modified_count == 1

    async def note_accepted(self, campaign_id: str, accepted: int) -> int:
        """New contributions were accepted (and screened): the crowd's version moves; the
        version after this move (0 for a campaign that does not exist)."""
        doc = await self._campaigns.find_one_and_update(
            {"_id": campaign_id},
            {"$inc": {"crowd.version": 1, "crowd.accepted": accepted}},
            {"crowd": 1},
            return_document=ReturnDocument.AFTER,
        )
        return int(((doc or {}).get("crowd") or {}).get("version", 0))

    async def crowd(self, campaign_id: str) -> CrowdVersion:
        doc = await self._campaigns.find_one({"_id": campaign_id}, {"crowd": 1})
        crowd = (doc or {}).get("crowd") or {}
        return CrowdVersion(int(crowd.get("version", 0)), int(crowd.get("accepted", 0)))

    async def mark_open(self, campaign_id: str, round_index: int, rng_state: str) -> None:
        await self._campaigns.update_one(
            {"_id": campaign_id, "state.next_round": round_index},
            {"$set": {"state.open_round": round_index, "state.rng_state": rng_state}},
        )
