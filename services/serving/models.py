"""Which model answers a chat: a campaign's current winner (the base until a round is won),
or a model named by id; loaded once, through a resident model worker's merge cache."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.mongo import CAMPAIGNS, Database
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.domain.model_card import adapter_keys
from crowdsft.llm_runtime.jobs import ModelRef
from crowdsft.llm_runtime.worker import ModelWorker
from crowdsft.settings import Settings
from services.serving.batcher import Loaded

log = structlog.get_logger()


class UnknownModel(LookupError):
    """Neither a campaign that trains a language model nor one of its models."""


@dataclass(frozen=True)
class Resolved:
    campaign_id: str
    model_id: str
    ref: ModelRef


class ServedModels:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._campaigns = CampaignStore(db)
        self._lineage = LineageStore(db)
        self._worker = ModelWorker(settings.artifact_root, settings.model_cache)
        self._lock = asyncio.Lock()  # one load at a time: two would both merge the same chain

    async def campaigns(self) -> list[str]:
        """Campaigns whose spec trains a language model, by id."""
        found = self._db[CAMPAIGNS].find({"spec.backend.kind": "lora"}, {"_id": 1})
        return sorted([str(doc["_id"]) async for doc in found])

    async def resolve(self, name: str) -> Resolved:
        """`name`: a campaign id (its current model) or a model id in some lora campaign."""
        spec = await self._campaigns.spec(name)
        if spec is not None:
            state = await self._campaigns.state(name)
            if not isinstance(spec.backend, LoraBackendSpec) or state is None:
                raise UnknownModel(f"campaign {name!r} trains no language model")
            model_id = state.model_id
        else:
            model_id = name
        try:
            chain = await self._lineage.ancestry(model_id)
        except LookupError:
            raise UnknownModel(f"no campaign or model {name!r}") from None
        campaign_id = chain[-1].campaign_id
        spec = await self._campaigns.spec(campaign_id)
        if spec is None or not isinstance(spec.backend, LoraBackendSpec):
            raise UnknownModel(f"model {name!r} is not a language model")
        return Resolved(campaign_id, model_id, ModelRef(spec.backend.llm.base_model,
                                                        adapter_keys(chain)))  # fmt: skip

    async def load(self, name: str) -> Loaded:
        resolved = await self.resolve(name)
        async with self._lock:
            model = await asyncio.to_thread(self._worker.merged, resolved.ref)
            tokenizer = self._worker.tokenizer(resolved.ref)
        return Loaded(resolved.model_id, model, tokenizer)

    async def warm(self, campaign_id: str) -> None:
        """Load a campaign's new winner before anyone asks (after `round.decided`)."""
        try:
            loaded = await self.load(campaign_id)
        except UnknownModel:
            return
        log.info("serving model loaded", campaign_id=campaign_id, model_id=loaded.model_id)
