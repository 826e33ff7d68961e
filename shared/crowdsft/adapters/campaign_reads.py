"""Read side of campaigns: spec and state, rounds, model lineage and Shapley values.

The round services write these collections; this module only reads them, through the stores
that map each document, and shows what is public: never rng states, vectors or fingerprints.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.mongo import CAMPAIGNS, Database, Document
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.contracts import ShapleyValue
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.lineage import LineageEntry
from crowdsft.domain.round import Decision, Round
from crowdsft.domain.shapley import ShapleyRecord


class ReadModel(BaseModel):
    """What the API shows, so the read side and the HTTP schema cannot drift apart."""

    model_config = ConfigDict(frozen=True)


class StateSummary(ReadModel):
    next_round: int
    model_id: str
    open_round: int | None


class CampaignSummary(ReadModel):
    campaign_id: str
    name: str
    created_at: datetime | None
    spec: CampaignSpec | None
    state: StateSummary | None


class RoundSummary(ReadModel):
    round_id: str
    round_index: int
    status: str
    base_model_id: str
    group_sizes: list[int] = Field(description="Members per group; who: the round's members.")
    winner_model_id: str | None
    accepted: bool | None
    judged_wrong: bool | None
    ranking: list[int] | None
    scores: list[float] | None
    distances: list[float] | None
    best_distance: float | None
    opened_at: datetime | None
    decided_at: datetime | None
    scored_at: datetime | None


class RoundMember(ReadModel):
    contributor_id: str
    group_index: int
    points: float = Field(description="Points going into the round.")
    contribution_ids: list[str]


class RoundMembers(ReadModel):
    round_id: str
    members: int
    offset: int
    entries: list[RoundMember]


class ModelEntry(ReadModel):
    model_id: str
    round_index: int | None
    group_index: int | None
    parent_model_id: str | None
    contributor_ids: list[str]
    contribution_ids: list[str]
    artifact_ref: str | None
    score: float | None
    distance: float | None
    heldout_distance: float | None = Field(
        None, description="LLM candidates: the judge's distance on held-out prompts."
    )
    metrics: dict[str, float] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    rank: int | None
    won: bool | None


class Fairness(ReadModel):
    round_index: int
    pearson: float | None
    spearman: float | None


class ShapleySummary(ReadModel):
    campaign_id: str
    contributors: int = Field(0, description="How many contributors have a value.")
    offset: int = 0
    values: list[ShapleyValue] = Field(description="A page of the values, in crowd order.")
    relative_error: float
    method: str
    valuation: str = Field(
        "geometric",
        description="The game the values are of: `geometric` (the centroid game in the "
        "campaign's space) or `in_run` / `in_run_adam` (each text's effect on the model).",
    )
    as_of_round_index: int
    updated_at: datetime | None
    fairness: Fairness | None
    fairness_history: list[Fairness]


def finite(value: Any) -> float | None:
    """NaN (a constant vector's correlation) and infinities have no JSON form: None instead."""
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def round_summary(doc: Document) -> RoundSummary:
    """From the round's document alone: no member is read to list rounds."""
    made = doc.get("decision")
    decision = Decision.model_validate(made) if made else None
    distances = [c.distance for c in decision.candidates] if decision else None
    opening = doc["opening"]
    return RoundSummary(
        round_id=doc["_id"],
        round_index=doc["round_index"],
        status=doc["status"],
        base_model_id=opening["base_model_id"],
        group_sizes=opening["group_sizes"],
        winner_model_id=decision.winner_model_id if decision else None,
        accepted=decision.accepted if decision else None,
        judged_wrong=decision.judged_wrong if decision else None,
        ranking=decision.ranking if decision else None,
        scores=[c.score for c in decision.candidates] if decision else None,
        distances=distances,
        best_distance=min(distances) if distances else None,
        opened_at=doc.get("opened_at"),
        decided_at=doc.get("decided_at"),
        scored_at=doc.get("scored_at"),
    )


def round_members(round_: Round, offset: int, limit: int) -> RoundMembers:
    opening = round_.opening
    rows = range(offset, min(offset + limit, len(opening.contributor_ids)))
    return RoundMembers(
        round_id=round_.round_id,
        members=len(opening.contributor_ids),
        offset=offset,
        entries=[
            RoundMember(
                contributor_id=opening.contributor_ids[r],
                group_index=opening.labels[r],
                points=opening.points[r],
                contribution_ids=opening.contribution_ids[r],
            )
            for r in rows
        ],
    )


def model_entry(entry: LineageEntry) -> ModelEntry:
    metrics = entry.metrics
    return ModelEntry(
        model_id=entry.model_id,
        round_index=entry.round_index,
        group_index=entry.group_index,
        parent_model_id=entry.parent_model_id,
        contributor_ids=entry.contributor_ids,
        contribution_ids=entry.contribution_ids,
        artifact_ref=entry.artifact_ref,
        score=finite(metrics.get("score")),
        distance=finite(metrics.get("distance")),
        heldout_distance=finite(metrics.get("heldout_distance")),
        metrics={k: f for k, v in metrics.items() if (f := finite(v)) is not None},
        hyperparameters=entry.hyperparameters,
        rank=entry.rank,
        won=entry.won,
    )


def shapley_summary(
    record: ShapleyRecord,
    offset: int = 0,
    limit: int | None = None,
    contributors: Collection[str] | None = None,
) -> ShapleySummary:
    """A page of the values (`offset`, `limit`), or only the `contributors` asked for."""
    history = [
        Fairness(round_index=r, pearson=finite(f.pearson), spearman=finite(f.spearman))
        for r, f in sorted(record.fairness.items())
    ]
    ids, values, errors = record.contributor_ids, record.values, record.std_errors
    rows: Iterable[int]
    if contributors is not None:
        wanted = set(contributors)
        rows = [r for r, c in enumerate(ids) if c in wanted]
    else:
        rows = range(offset, len(ids) if limit is None else min(offset + limit, len(ids)))
    return ShapleySummary(
        campaign_id=record.campaign_id,
        contributors=len(ids),
        offset=offset if contributors is None else 0,
        values=[
            ShapleyValue(contributor_id=ids[r], value=values[r], std_error=errors[r]) for r in rows
        ],
        relative_error=record.relative_error,
        method=record.method,
        valuation=record.valuation,
        as_of_round_index=record.as_of_round_index,
        updated_at=record.updated_at,
        fairness=history[-1] if history else None,
        fairness_history=history,
    )


def _summary(doc: Document) -> CampaignSummary:
    state = doc.get("state")
    return CampaignSummary(
        campaign_id=doc["_id"],
        name=doc.get("name") or doc["_id"],
        created_at=doc.get("created_at"),
        spec=CampaignSpec.model_validate(doc["spec"]) if "spec" in doc else None,
        state=StateSummary(**state) if state is not None else None,
    )


class CampaignReads:
    def __init__(self, db: Database) -> None:
        self._campaigns = db[CAMPAIGNS]
        self._rounds = RoundStore(db)
        self._lineage = LineageStore(db)
        self._shapley = ShapleyStore(db)

    async def exists(self, campaign_id: str) -> bool:
        return await self._campaigns.count_documents({"_id": campaign_id}, limit=1) > 0

    async def listed(self, limit: int) -> list[CampaignSummary]:
        """Newest first."""
        found = self._campaigns.find({}, {"state.rng_state": 0}).sort("created_at", -1)
        return [_summary(doc) async for doc in found.limit(limit)]

    async def campaign(self, campaign_id: str) -> CampaignSummary | None:
        """Feedback-only campaigns have neither spec nor state."""
        doc = await self._campaigns.find_one({"_id": campaign_id}, {"state.rng_state": 0})
        return None if doc is None else _summary(doc)

    async def rounds(self, campaign_id: str, limit: int, offset: int = 0) -> list[RoundSummary]:
        """Oldest first, `limit` rounds after skipping `offset`."""
        found = await self._rounds.heads_of_campaign(campaign_id, limit=limit, offset=offset)
        return [round_summary(doc) for doc in found]

    async def members(
        self, campaign_id: str, round_index: int, limit: int, offset: int = 0
    ) -> RoundMembers | None:
        """A round's members in its own order, `limit` after skipping `offset`."""
        found = await self._rounds.get(campaign_id, round_index)
        return round_members(found, offset, limit) if found is not None else None

    async def lineage(self, campaign_id: str, limit: int, offset: int = 0) -> list[ModelEntry]:
        """The base model first, then each round's candidates by group; `limit` models after
        skipping `offset`."""
        found = await self._lineage.of_campaign(campaign_id, limit, offset)
        return [model_entry(entry) for entry in found]

    async def shapley(
        self,
        campaign_id: str,
        offset: int = 0,
        limit: int | None = None,
        contributors: Collection[str] | None = None,
    ) -> ShapleySummary | None:
        record = await self._shapley.get(campaign_id)
        if record is None:
            return None
        return shapley_summary(record, offset, limit, contributors)
