"""A campaign's Shapley values and its fairness figures (points vs Shapley) round by round."""

from __future__ import annotations

import hashlib
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.round import Round


class Fairness(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pearson: float | None
    spearman: float | None


class ShapleyRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    campaign_id: str
    contributor_ids: list[str]
    values: list[float]
    std_errors: list[float]
    relative_error: float
    method: str
    fingerprint: str = Field(description="Of the crowd the values were estimated for.")
    as_of_round_index: int
    fairness: dict[int, Fairness] = Field(default_factory=dict, description="By round index.")
    updated_at: datetime | None = None


def crowd_fingerprint(scored: Round, spec: CampaignSpec) -> str:
    """The centroid game depends only on these: equal fingerprints, equal Shapley values.
    Hashed from the raw bytes: the text of 100,000 positions would take seconds to write."""
    digest = hashlib.sha256()
    digest.update("\n".join(scored.contributor_ids).encode())
    digest.update(np.asarray(scored.positions, dtype=np.float64).tobytes())
    digest.update(repr((spec.target, spec.evaluation, spec.seed)).encode())
    return digest.hexdigest()
