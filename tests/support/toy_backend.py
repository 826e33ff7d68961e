"""A third backend, defined only in the tests: one module and one `register(...)`.

`median`: a contribution is a point (as in `vector`), a candidate moves the base `step` of the
way toward its group's coordinate-wise median, and the judge ranks candidates by L2 distance to
the target whatever the campaign's evaluation. Services load it with
`CROWDSFT_BACKEND_MODULES=tests.support.toy_backend`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from crowdsft.contracts import TrainingRequested
from crowdsft.domain.backend_spec import BackendSpec, CampaignFacts
from crowdsft.domain.backends import Backend, register
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.crowd import Contribution, CrowdSnapshot, crowd_snapshot
from crowdsft.domain.ids import candidate_model_id, root_model_id
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.round import Decision, Round
from crowdsft.domain.steps import decision_of, judge_measured
from services.training.trainers import TrainingPorts

NAME = "median"


class MedianBackendSpec(BackendSpec):
    kind: Literal["median"] = "median"
    step: float = Field(0.5, gt=0, le=1)

    def lineage_hyperparameters(self, campaign: CampaignFacts) -> dict[str, Any]:
        return {"step": self.step}

    def root_artifact_ref(self, campaign_id: str) -> str:
        return f"median-root:{campaign_id}"


def distance(point: Sequence[float], spec: CampaignSpec) -> float:
    return float(np.linalg.norm(np.asarray(point) - np.asarray(spec.target)))


class MedianPlacement:
    def snapshot(self, spec: CampaignSpec, contributions: Sequence[Contribution]) -> CrowdSnapshot:
        return crowd_snapshot(contributions, len(spec.target))

    def root(self, spec: CampaignSpec, initial_model: list[float]) -> Measurement:
        model_id = root_model_id(spec.campaign_id)
        return Measurement(
            model_id=model_id,
            campaign_id=spec.campaign_id,
            artifact_ref=spec.backend.root_artifact_ref(spec.campaign_id),
            position=initial_model,
        )

    def decide(
        self, spec: CampaignSpec, round_: Round, base: Measurement,
        candidates: Sequence[Measurement],
    ) -> Decision:  # fmt: skip
        distances = np.asarray([distance(c.position, spec) for c in candidates])
        outcome, rng_after = judge_measured(
            spec, -distances, -distance(base.position, spec), round_.opening.rng_state
        )
        return decision_of(outcome, rng_after, base, candidates, distances, measured=False)


class MedianTrainer:
    def __init__(self, ports: TrainingPorts) -> None:
        self._ports = ports

    async def train(self, spec: CampaignSpec, request: TrainingRequested) -> Measurement:
        assert isinstance(spec.backend, MedianBackendSpec)
        [base] = (await self._ports.measurements.get([request.base_model_id])).values()
        group = await self._ports.group(request)
        assert group.positions is not None
        start = np.asarray(base.position)
        moved = start + spec.backend.step * (np.median(group.positions, axis=0) - start)
        model_id = candidate_model_id(request.round_id, request.group_index)
        return Measurement(
            model_id=model_id,
            campaign_id=spec.campaign_id,
            round_id=request.round_id,
            artifact_ref=f"median:{model_id}",
            position=[float(x) for x in moved],
            metrics={"members": float(len(group.contributor_ids))},
        )

    async def warm(self) -> None:
        return None

    async def prepare(self, spec: CampaignSpec) -> None:
        """The root was measured when the campaign was created."""

    def close(self) -> None:
        return None


register(
    Backend(
        name=NAME,
        spec_type=MedianBackendSpec,
        placement=MedianPlacement(),
        trainer="tests.support.toy_backend:MedianTrainer",
    )
)
