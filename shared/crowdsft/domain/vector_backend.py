"""The `vector` backend: the paper's crowd simulation, where a model is a point.

A contribution is a JSON list of numbers, a contributor the mean of theirs, a candidate the base
moved `delta` of the way toward its group's points-squared weighted centroid, and a score the
campaign's evaluation of a point against the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from crowdsft.domain.backend_spec import BackendSpec, CampaignFacts
from crowdsft.domain.backends import Backend, register
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.crowd import Contribution, CrowdSnapshot, crowd_snapshot
from crowdsft.domain.ids import root_artifact_ref, root_model_id
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.round import Decision, Round, RoundStepError
from crowdsft.domain.steps import decision_of, judge, vector_candidate
from crowdsft.engine.evaluation import l2_distance


class VectorBackendSpec(BackendSpec):
    kind: Literal["vector"] = "vector"
    start: list[float] | None = Field(
        None, description="The starting model; unset, it is drawn from the seed as the engine does."
    )

    @property
    def initial_model(self) -> list[float] | None:
        return self.start

    def check(self, campaign: CampaignFacts) -> None:
        if self.start is not None and len(self.start) != len(campaign.target):
            raise ValueError("the backend's start and the target must have the same dimension")

    def lineage_hyperparameters(self, campaign: CampaignFacts) -> dict[str, Any]:
        return {"delta": campaign.delta}

    def root_artifact_ref(self, campaign_id: str) -> str:
        return root_artifact_ref(campaign_id)


class VectorPlacement:
    def snapshot(self, spec: CampaignSpec, contributions: Sequence[Contribution]) -> CrowdSnapshot:
        return crowd_snapshot(contributions, len(spec.target))

    def root(self, spec: CampaignSpec, initial_model: list[float]) -> Measurement:
        return Measurement(
            model_id=root_model_id(spec.campaign_id),
            campaign_id=spec.campaign_id,
            artifact_ref=root_artifact_ref(spec.campaign_id),
            position=initial_model,
        )

    def decide(
        self,
        spec: CampaignSpec,
        round_: Round,
        base: Measurement,
        candidates: Sequence[Measurement],
    ) -> Decision:
        positions = np.asarray([c.position for c in candidates], dtype=np.float64)
        base_position = np.asarray(base.position, dtype=np.float64)
        _check_computed(spec, round_, base_position, positions, candidates)
        outcome, rng_after = judge(spec, base_position, positions, round_.opening.rng_state)
        distances = l2_distance(positions, np.asarray(spec.target, dtype=np.float64))
        return decision_of(outcome, rng_after, base, candidates, distances)


def _check_computed(
    spec: CampaignSpec,
    round_: Round,
    base: np.ndarray,
    positions: np.ndarray,
    candidates: Sequence[Measurement],
) -> None:
    """A vector candidate is fully determined by the stored crowd: recompute each group's
    and refuse a round whose measured candidate differs (a measurement not made by training)."""
    opening = round_.opening
    if opening.positions is None:
        raise RoundStepError(f"{round_.round_id} has no stored crowd positions")
    users = np.asarray(opening.positions, dtype=np.float64)
    weights = np.asarray(opening.points, dtype=np.float64) ** 2
    labels = np.asarray(opening.labels)
    for group, measured in enumerate(positions):
        members = labels == group
        expected = vector_candidate(base, users[members], weights[members], spec.delta)
        if not np.allclose(measured, expected, rtol=0, atol=1e-9):
            raise RoundStepError(
                f"candidate {candidates[group].model_id} is not what the vector backend "
                "computes from the round's stored crowd: refused"
            )


VECTOR = register(
    Backend(
        name="vector",
        spec_type=VectorBackendSpec,
        placement=VectorPlacement(),
        trainer="services.training.vector:VectorTrainer",
    )
)
