"""Reward events: points per round, Shapley values and fairness figures."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdsft.contracts.envelope import CampaignEvent, RoundEvent


class PointAward(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contributor_id: str
    points: float


class PointsAwarded(RoundEvent):
    """Scoring turned a round decision into ledger entries under one points rule."""

    event_type: Literal["points.awarded"] = "points.awarded"
    round_index: int = Field(ge=0)
    rule: str
    awards: list[PointAward]


class ShapleyValue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contributor_id: str
    value: float
    std_error: float = Field(ge=0)


class ShapleyComputed(CampaignEvent):
    """Fresh Shapley estimates for a campaign, with the points-vs-Shapley fairness figures."""

    event_type: Literal["shapley.computed"] = "shapley.computed"
    as_of_round_index: int = Field(ge=0)
    method: str
    values: list[ShapleyValue]
    relative_error: float = Field(ge=0)
    pearson: float | None = None
    spearman: float | None = None
