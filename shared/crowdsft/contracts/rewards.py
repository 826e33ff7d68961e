"""Reward events: points per round, Shapley values and fairness figures."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdsft.contracts.envelope import CampaignEvent, RoundEvent


class PointsAwarded(RoundEvent):
    """Scoring paid a round under one points rule. What each member got is the stored
    round's (its awards, read by round id); the event carries the totals."""

    event_type: Literal["points.awarded"] = "points.awarded"
    round_index: int = Field(ge=0)
    rule: str
    accepted: bool = Field(description="Whether the round paid awards (the model moved).")
    members: int = Field(ge=0, description="Contributors in the round.")
    paid: int = Field(ge=0, description="Members whose award is not zero.")
    total: float = Field(description="The sum of the round's awards.")


class ShapleyValue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contributor_id: str
    value: float
    std_error: float = Field(ge=0)


class ShapleyComputed(CampaignEvent):
    """Fresh Shapley estimates for a campaign, with the points-vs-Shapley fairness figures.
    The values themselves are the stored record's (the read API pages them)."""

    event_type: Literal["shapley.computed"] = "shapley.computed"
    as_of_round_index: int = Field(ge=0)
    method: str
    valuation: str = Field(
        "geometric",
        description="The game valued: `geometric` (the centroid game in the campaign's space) "
        "or a measured one (`in_run`, `in_run_adam`: what the texts did to the model as it "
        "trained).",
    )
    contributors: int = Field(ge=0, description="How many contributors have a value.")
    relative_error: float = Field(ge=0)
    pearson: float | None = None
    spearman: float | None = None
