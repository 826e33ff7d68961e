"""Training: one request in, one candidate out. Repeating a request repeats nothing: the
candidate's id is derived from the round and group, and a measured candidate is never
trained again, whichever backend made it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

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

    async def prepare(self, campaign_id: str) -> None:
        """The campaign's first round's fixed work, done by its backend's trainer ahead."""
        spec = await self._campaigns.spec(campaign_id)
        if spec is None:
            return  # a feedback-only campaign, or one not created yet: nothing will train
        trainer = self._trainers.get(spec.backend.kind)
        if trainer is not None:
            await trainer.prepare(spec)
            log.info("campaign prepared", campaign_id=campaign_id, backend=spec.backend.kind)

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


class Preparations:
    """Each campaign whose crowd has started submitting is prepared once per process, in the
    background: the consumer that noticed it never waits, and a failed preparation costs only
    time (its first round does that work) until a later submission tries again."""

    def __init__(self, prepare: Callable[[str], Awaitable[None]]) -> None:
        self._prepare = prepare
        self._started: set[str] = set()
        self._running: set[asyncio.Task[None]] = set()

    def start(self, campaign_ids: Iterable[str]) -> None:
        for campaign_id in campaign_ids:
            if campaign_id not in self._started:
                self._started.add(campaign_id)
                task = asyncio.create_task(self._run(campaign_id))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _run(self, campaign_id: str) -> None:
        try:
            await self._prepare(campaign_id)
        except Exception as exc:
            self._started.discard(campaign_id)
            error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("campaign not prepared; its first round will do the work",
                        campaign_id=campaign_id, error=error)  # fmt: skip

    async def wait(self) -> None:
        """Until every preparation started so far has ended (what a test waits for)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def cancel(self) -> None:
        for task in self._running:
            task.cancel()
