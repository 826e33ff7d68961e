"""Training backends: how a group's contributions turn the base model into a candidate.

A backend is looked up by the campaign's `backend` name; the training service neither knows
nor cares which one runs. `vector` is the paper's crowd simulation (a model is a point);
others (LoRA on Ray) plug in here without touching the services.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.contracts import TrainingRequested
from crowdsft.rounds import vector_candidate
from crowdsft.vectors import crowd_snapshot


@dataclass(frozen=True)
class TrainedCandidate:
    model_id: str
    artifact_ref: str
    metrics: dict[str, float] = field(default_factory=dict)


class TrainingBackend(Protocol):
    async def train(self, request: TrainingRequested) -> TrainedCandidate: ...


def candidate_model_id(request: TrainingRequested) -> str:
    return f"{request.round_id}:g{request.group_index}"


class VectorBackend:
    """Moves the base point toward the group's points-squared weighted centroid."""

    def __init__(self, contributions: ContributionStore, rounds: RoundStore) -> None:
        self._contributions = contributions
        self._rounds = rounds

    async def train(self, request: TrainingRequested) -> TrainedCandidate:
        [base] = await self._rounds.vectors([request.base_model_id])
        docs = await self._contributions.by_ids(request.contribution_ids)
        crowd = crowd_snapshot(docs, base.size)
        weight_of = dict(zip(request.contributor_ids, request.contributor_weights, strict=True))
        weights = np.asarray([weight_of[c] for c in crowd.contributor_ids])
        delta = float(request.hyperparameters["delta"])
        candidate = vector_candidate(base, crowd.users, weights, delta)
        model_id = candidate_model_id(request)
        meta = {"campaign_id": request.campaign_id, "round_id": request.round_id}
        ref = await self._rounds.put_vector(model_id, candidate, meta)
        return TrainedCandidate(model_id, ref, {"contributors": float(len(crowd.contributor_ids))})
