"""Read side of campaigns: spec and state, rounds, model lineage and Shapley values.

The round services write these collections; this module only reads them, and projects away
what stays internal (rng states, contribution vectors, candidate vectors), so a round list
costs what it shows rather than what the services keep.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crowdsft.adapters.mongo import CAMPAIGNS, MODELS, ROUNDS, SHAPLEY, Database, Document
from crowdsft.campaigns import CampaignSpec
from crowdsft.contracts import GroupAssignment
from crowdsft.rounds import group_assignments

ROUND_FIELDS = [
    "campaign_id", "round_index", "status", "base_model_id", "contributor_ids", "labels",
    "n_groups", "winner_model_id", "accepted", "judged_wrong", "ranking", "scores",
    "distances", "opened_at", "decided_at", "scored_at",
]  # fmt: skip


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
    groups: list[GroupAssignment]
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


class ShapleyValue(ReadModel):
    contributor_id: str
    value: float
    std_error: float


class Fairness(ReadModel):
    round_index: int
    pearson: float | None
    spearman: float | None


class ShapleySummary(ReadModel):
    campaign_id: str
    values: list[ShapleyValue]
    relative_error: float
    method: str
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
    distances = doc.get("distances")
    return RoundSummary(
        round_id=doc["_id"],
        round_index=doc["round_index"],
        status=doc["status"],
        base_model_id=doc["base_model_id"],
        groups=group_assignments(doc.get("contributor_ids", []), doc.get("labels", [])),
        winner_model_id=doc.get("winner_model_id"),
        accepted=doc.get("accepted"),
        judged_wrong=doc.get("judged_wrong"),
        ranking=doc.get("ranking"),
        scores=doc.get("scores"),
        distances=distances,
        best_distance=min(distances) if distances else None,
        opened_at=doc.get("opened_at"),
        decided_at=doc.get("decided_at"),
        scored_at=doc.get("scored_at"),
    )


def model_entry(doc: Document) -> ModelEntry:
    metrics = doc.get("metrics") or {}
    return ModelEntry(
        model_id=doc["_id"],
        round_index=doc.get("round_index"),
        group_index=doc.get("group_index"),
        parent_model_id=doc.get("parent_model_id"),
        contributor_ids=doc.get("contributor_ids", []),
        contribution_ids=doc.get("contribution_ids", []),
        artifact_ref=doc.get("artifact_ref"),
        score=finite(metrics.get("score")),
        distance=finite(metrics.get("distance")),
        heldout_distance=finite(metrics.get("heldout_distance")),
        metrics={k: f for k, v in metrics.items() if (f := finite(v)) is not None},
        hyperparameters=doc.get("hyperparameters", {}),
        rank=doc.get("rank"),
        won=doc.get("won"),
    )


def shapley_summary(doc: Document) -> ShapleySummary:
    history = sorted(
        (
            Fairness(
                round_index=int(index),
                pearson=finite(f.get("pearson")),
                spearman=finite(f.get("spearman")),
            )
            for index, f in (doc.get("fairness") or {}).items()
        ),
        key=lambda f: f.round_index,
    )
    values = zip(doc["contributor_ids"], doc["values"], doc["std_errors"], strict=True)
    return ShapleySummary(
        campaign_id=doc["_id"],
        values=[
            ShapleyValue(contributor_id=c, value=float(v), std_error=float(e)) for c, v, e in values
        ],
        relative_error=float(doc["relative_error"]),
        method=doc["method"],
        as_of_round_index=int(doc["as_of_round_index"]),
        updated_at=doc.get("updated_at"),
        fairness=history[-1] if history else None,
        fairness_history=history,
    )


class CampaignReads:
    def __init__(self, db: Database) -> None:
        self._campaigns = db[CAMPAIGNS]
        self._rounds = db[ROUNDS]
        self._models = db[MODELS]
        self._shapley = db[SHAPLEY]

    async def exists(self, campaign_id: str) -> bool:
        return await self._campaigns.count_documents({"_id": campaign_id}, limit=1) > 0

    async def campaign(self, campaign_id: str) -> CampaignSummary | None:
        """Feedback-only campaigns have neither spec nor state."""
        doc = await self._campaigns.find_one({"_id": campaign_id}, {"state.rng_state": 0})
        if doc is None:
            return None
        state = doc.get("state")
        return CampaignSummary(
            campaign_id=doc["_id"],
            name=doc.get("name") or doc["_id"],
            created_at=doc.get("created_at"),
            spec=CampaignSpec.model_validate(doc["spec"]) if "spec" in doc else None,
            state=StateSummary(**state) if state is not None else None,
        )

    async def rounds(self, campaign_id: str, limit: int, offset: int = 0) -> list[RoundSummary]:
        """Oldest first, `limit` rounds after skipping `offset`."""
        cursor = (
            self._rounds.find({"campaign_id": campaign_id}, ROUND_FIELDS)
            .sort("round_index", 1)
            .skip(offset)
            .limit(limit)
        )
        return [round_summary(doc) async for doc in cursor]

    async def lineage(self, campaign_id: str) -> list[ModelEntry]:
        """The base model first, then each round's candidates by group."""
        cursor = self._models.find({"campaign_id": campaign_id}, {"vector": 0})
        docs = [doc async for doc in cursor]
        docs.sort(key=lambda d: (_or(d.get("round_index"), -1), _or(d.get("group_index"), -1)))
        return [model_entry(doc) for doc in docs]

    async def shapley(self, campaign_id: str) -> ShapleySummary | None:
        doc = await self._shapley.find_one({"_id": campaign_id}, {"fingerprint": 0})
        return shapley_summary(doc) if doc is not None else None


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
