"""What a campaign's exports need (its dataset, a model's lineage), read from MongoDB."""

from __future__ import annotations

from typing import NamedTuple

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.adapters.ledger_store import Standings
from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, REJECTIONS, Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.dataset import CampaignData, Refusal, StoredText
from crowdsft.domain.lineage import LineageEntry

TEXT_FIELDS = ["event_id", "contributor_id", "prompt", "response", "rating", "correction",
               "near_copy_of"]  # fmt: skip


async def campaign_data(db: Database, campaign_id: str) -> CampaignData | None:
    """None for an unknown campaign."""
    spec = await CampaignStore(db).spec(campaign_id)
    if spec is None:
        return None
    texts = [
        StoredText(
            contribution_id=str(doc["_id"]),
            submission_event_id=str(doc["event_id"]),
            contributor_id=str(doc["contributor_id"]),
            prompt=str(doc["prompt"]),
            response=str(doc["response"]),
            rating=doc.get("rating"),
            correction=doc.get("correction"),
            near_copy_of=doc.get("near_copy_of"),
        )
        async for doc in db[CONTRIBUTIONS].find({"campaign_id": campaign_id}, TEXT_FIELDS)
    ]
    refusals = [
        Refusal(
            submission_event_id=doc.get("submission_event_id"),
            contributor_id=doc.get("contributor_id"),
            reason=str(doc["reason"]),
            detail=str(doc.get("detail", "")),
            duplicate_of=doc.get("duplicate_of"),
        )
        async for doc in db[REJECTIONS].find({"campaign_id": campaign_id})
    ]
    standing = await Standings(db).latest(campaign_id)
    points = dict(zip(standing.contributor_ids, standing.points.tolist(), strict=True))
    contributors = sorted({t.contributor_id for t in texts} | set(points))
    return CampaignData(
        spec=spec,
        texts=texts,
        refusals=refusals,
        rounds=await RoundStore(db).of_campaign(campaign_id),
        points=points,
        shapley=await ShapleyStore(db).get(campaign_id),
        credited=await ContributorStore(db).credited(contributors),
    )


class ModelLineage(NamedTuple):
    spec: CampaignSpec
    chain: list[LineageEntry]  # the campaign's base first, the model last
    credited: dict[str, str]


async def model_lineage(db: Database, campaign_id: str, model_id: str | None) -> ModelLineage:
    """The ancestry of `model_id` (default: the campaign's current model); LookupError names
    what is missing."""
    campaigns = CampaignStore(db)
    spec, state = await campaigns.spec(campaign_id), await campaigns.state(campaign_id)
    if spec is None or state is None:
        raise LookupError(f"no campaign {campaign_id!r} that runs rounds")
    chain = await LineageStore(db).ancestry(model_id or state.model_id)
    if chain[-1].campaign_id != campaign_id:
        raise LookupError(f"model {chain[-1].model_id!r} is not campaign {campaign_id!r}'s")
    contributors = sorted({c for entry in chain for c in entry.contributor_ids})
    return ModelLineage(spec, chain, await ContributorStore(db).credited(contributors))
