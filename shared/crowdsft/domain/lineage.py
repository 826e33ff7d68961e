"""Model lineage: every model of a campaign, with its parent, data, settings and figures."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crowdsft.domain.ids import root_model_id
from crowdsft.domain.round import Round


class LineageEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_id: str
    campaign_id: str
    round_index: int | None = None
    group_index: int | None = None
    parent_model_id: str | None = None
    contributor_ids: list[str] = Field(default_factory=list)
    contribution_ids: list[str] = Field(default_factory=list)
    artifact_ref: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    rank: int | None = None
    won: bool | None = None


def root_entry(campaign_id: str, artifact_ref: str) -> LineageEntry:
    return LineageEntry(
        model_id=root_model_id(campaign_id), campaign_id=campaign_id, artifact_ref=artifact_ref
    )


def candidate_entries(decided: Round, hyperparameters: dict[str, Any]) -> list[LineageEntry]:
    """One entry per candidate of a decided round, in group order."""
    decision = decided.decision
    if decision is None:
        raise ValueError(f"{decided.round_id} is not decided")
    entries = []
    for result in decision.candidates:
        g = result.group_index
        metrics = {"score": result.score, "distance": result.distance, **result.metrics}
        if result.heldout_distance is not None:
            metrics["heldout_distance"] = result.heldout_distance
        if decision.base_distance is not None:
            metrics["base_distance"] = decision.base_distance
        entries.append(
            LineageEntry(
                model_id=result.model_id,
                campaign_id=decided.campaign_id,
                round_index=decided.round_index,
                group_index=g,
                parent_model_id=decided.base_model_id,
                contributor_ids=[decided.contributor_ids[i] for i in decided.members(g)],
                contribution_ids=decided.group_contribution_ids(g),
                artifact_ref=result.artifact_ref,
                metrics=metrics,
                hyperparameters=hyperparameters,
                rank=decision.ranking.index(g),
                won=result.model_id == decision.winner_model_id,
            )
        )
    return entries
