"""The `vector` backend's trainer: the base point moves toward the group's weighted centroid."""

from __future__ import annotations

import numpy as np

from crowdsft.contracts import TrainingRequested
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.crowd import crowd_snapshot
from crowdsft.domain.ids import candidate_model_id, vector_artifact_ref
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.steps import vector_candidate
from services.training.trainers import TrainingPorts


class VectorTrainer:
    def __init__(self, ports: TrainingPorts) -> None:
        self._ports = ports

    async def train(self, spec: CampaignSpec, request: TrainingRequested) -> Measurement:
        found = await self._ports.measurements.get([request.base_model_id])
        if request.base_model_id not in found:
            raise LookupError(f"no measurement stored for {request.base_model_id}")
        base = np.asarray(found[request.base_model_id].position, dtype=np.float64)
        contributions = await self._ports.contributions.by_ids(request.contribution_ids)
        crowd = crowd_snapshot(contributions, base.size)
        assert crowd.users is not None
        weight_of = dict(zip(request.contributor_ids, request.contributor_weights, strict=True))
        weights = np.asarray([weight_of[c] for c in crowd.contributor_ids])
        candidate = vector_candidate(base, crowd.users, weights, spec.delta)
        model_id = candidate_model_id(request.round_id, request.group_index)
        return Measurement(
            model_id=model_id,
            campaign_id=request.campaign_id,
            round_id=request.round_id,
            artifact_ref=vector_artifact_ref(model_id),
            position=[float(x) for x in candidate],
            metrics={"contributors": float(len(crowd.contributor_ids))},
        )

    async def warm(self) -> None:
        return None

    def close(self) -> None:
        return None
