"""A campaign's Shapley values and its fairness figures (points vs Shapley) round by round."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.measurement import Measurement
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
    valuation: str = "geometric"
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


def measured_values(
    contributor_ids: list[str], candidates: list[Measurement]
) -> tuple[list[float], list[float]]:
    """Each contributor's in-run values summed over every candidate their texts trained,
    round after round: the value of their data in each round's game (a fine-tune from the
    round's base), whether or not the gate kept that candidate, so a value does not hang on
    which group a contributor was drawn into. Errors of separate runs add in quadrature."""
    values = dict.fromkeys(contributor_ids, 0.0)
    variances = dict.fromkeys(contributor_ids, 0.0)
    for model in candidates:
        for who, value in model.member_values.items():
            if who in values:
                values[who] += value
                variances[who] += model.member_value_errors.get(who, 0.0) ** 2
    return list(values.values()), [math.sqrt(v) for v in variances.values()]


def models_fingerprint(campaign_id: str, model_ids: list[str]) -> str:
    """Measured values depend only on the models measured (and the crowd they are shown for)."""
    return hashlib.sha256("\n".join([campaign_id, *model_ids]).encode()).hexdigest()
