"""Training: one request in, one candidate out. Repeating a request repeats nothing: the
candidate's id is derived from the round and group, and a measured candidate is never
trained again, whichever backend made it."""

from __future__ import annotations

import structlog

from crowdsft.adapters.metrics import TRAINING_SECONDS
from crowdsft.contracts import CandidateTrained, TrainingRequested, derive_event_id
from crowdsft.domain.ids import candidate_model_id
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.ports import Campaigns, Measurements, Publish
from services.training.trainers import TrainerLookup

PRODUCER = "training"
log = structlog.get_logger(PRODUCER)


class TrainingHandler:
    def __init__(
        self,
        campaigns: Campaigns,
        measurements: Measurements,
        trainers: TrainerLookup,
        publish: Publish,
    ) -> None:
        self._campaigns = campaigns
        self._measurements = measurements
        self._trainers = trainers
        self._publish = publish

    async def on_training_requested(self, request: TrainingRequested) -> None:
        measured = await self._measured(request)
        event = CandidateTrained(
            event_id=derive_event_id("candidate.trained", request.round_id, request.group_index),
            producer=PRODUCER,
            campaign_id=request.campaign_id,
            round_id=request.round_id,
            group_index=request.group_index,
            model_id=measured.model_id,
            parent_model_id=request.base_model_id,
            artifact_ref=measured.artifact_ref,
            metrics=measured.metrics,
        )
        await self._publish([(request.campaign_id, event)])
        log.info("candidate trained", round_id=request.round_id, group=request.group_index)

    async def _measured(self, request: TrainingRequested) -> Measurement:
        model_id = candidate_model_id(request.round_id, request.group_index)
        done = await self._measurements.get([model_id])
        if model_id in done:
            return done[model_id]  # a replay: the first result stands
        spec = await self._campaigns.spec(request.campaign_id)
        if spec is None:
            raise LookupError(f"campaign {request.campaign_id!r} runs no rounds")
        if request.backend != spec.backend.kind:
            raise ValueError(f"request names backend {request.backend!r}; the campaign's is "
                             f"{spec.backend.kind!r}")  # fmt: skip
        trainer = self._trainers.get(spec.backend.kind)
        if trainer is None:
            # A campaign is validated when created, so this is a deployment without the backend.
            raise LookupError(f"training backend {spec.backend.kind!r} is not installed here")
        with TRAINING_SECONDS.labels(spec.backend.kind).time():
            trained = await trainer.train(spec, request)
        return await self._measurements.put(trained)
