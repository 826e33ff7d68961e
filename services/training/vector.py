"""The `vector` backend's trainer: the base point moves toward the group's weighted centroid."""

from __future__ import annotations

import numpy as np

from crowdsft.contracts import TrainingRequested
from crowdsft.domain.campaign import CampaignSpec
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
        group = await self._ports.group(request)
        if group.positions is None:
            raise LookupError(f"round {request.round_id} has no positions for its members")
        users, weights = group.positions, group.weights
        candidate = vector_candidate(base, users, weights, spec.delta)
        model_id = candidate_model_id(request.round_id, request.group_index)
        return Measurement(
            model_id=model_id,
            campaign_id=request.campaign_id,
            round_id=request.round_id,
            artifact_ref=vector_artifact_ref(model_id),
            position=[float(x) for x in candidate],
            metrics={"contributors": float(len(group.contributor_ids))},
        )

    async def warm(self) -> None:
        return None

    async def prepare(self, spec: CampaignSpec) -> None:
        """The root was measured when the campaign was created."""

    def close(self) -> None:
        return None
