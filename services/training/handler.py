"""Training: one request in, one candidate out. Repeating a request repeats nothing: the
candidate's id and artifact are derived from the round and group."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from crowdsft.adapters.kafka import Publish
from crowdsft.contracts import CandidateTrained, TrainingRequested, derive_event_id
from crowdsft.contracts import topics as t
from services.training.backends import TrainingBackend

PRODUCER = "training"
log = structlog.get_logger(PRODUCER)


class TrainingHandler:
    def __init__(self, backends: dict[str, TrainingBackend], publish: Publish) -> None:
        self._backends = backends
        self._publish = publish

    async def on_training_batch(self, requests: Sequence[TrainingRequested]) -> None:
        """All at once: a Ray cluster trains as many groups in parallel as it has workers.
        Every request finishes before an error is raised, so a retried batch redoes only
        what failed (the rest is found done)."""
        results = await asyncio.gather(
            *(self.on_training_requested(r) for r in requests), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def on_training_requested(self, request: TrainingRequested) -> None:
        backend = self._backends.get(request.backend)
        if backend is None:
            # A campaign is validated when created, so this is a deployment without the backend.
            raise LookupError(f"training backend {request.backend!r} is not installed here")
        trained = await backend.train(request)
        event = CandidateTrained(
            event_id=derive_event_id("candidate.trained", request.round_id, request.group_index),
            producer=PRODUCER,
            campaign_id=request.campaign_id,
            round_id=request.round_id,
            group_index=request.group_index,
            model_id=trained.model_id,
            parent_model_id=request.base_model_id,
            artifact_ref=trained.artifact_ref,
            metrics=trained.metrics,
        )
        await self._publish([(t.CANDIDATE_TRAINED, request.campaign_id, event)])
        log.info("candidate trained", round_id=request.round_id, group=request.group_index)
