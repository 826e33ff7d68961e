"""Training: wiring only. Several processes share a round's requests through one group; each
takes a batch of requests and trains them at once (on Ray, for the lora backend)."""

from __future__ import annotations

import asyncio

from faststream.asgi import AsgiFastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.consuming import batch_records
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.service import run_service, service_parts
from crowdsft.contracts import TrainingRequested, topics
from crowdsft.settings import Settings
from services.training.handler import Preparations, TrainingHandler
from services.training.trainers import InstalledTrainers, TrainingPorts

GROUP_ID = "crowdsft-training"
# Its own group: noticing active campaigns never waits behind a long training batch.
PREPARING_GROUP_ID = "crowdsft-training-prepare"


def create_app(settings: Settings) -> AsgiFastStream:
    parts = service_parts(settings, GROUP_ID)
    db, events = parts.db, parts.events
    measurements = MeasurementStore(db)
    ports = TrainingPorts(
        ContributionStore(db), measurements, LineageStore(db), settings, RoundStore(db)
    )
    trainers = InstalledTrainers(ports)
    handler = TrainingHandler(CampaignStore(db), measurements, trainers, parts.publish)
    warming: set[asyncio.Task[None]] = set()
    preparations = Preparations(handler.prepare)

    @parts.broker.subscriber(  # type: ignore[untyped-decorator]
        topics.TRAINING_REQUESTED,
        batch=True,
        max_records=settings.training_batch_max_records,
        batch_timeout_ms=settings.intake_batch_timeout_ms,
        max_poll_interval_ms=settings.training_max_poll_interval_ms,
        **subscriber_options(settings, GROUP_ID),
    )
    async def on_training_requested(message: KafkaMessage) -> None:
        """A Ray cluster trains as many groups at once as it has workers."""
        await events.consume_each(message, TrainingRequested, handler.on_training_requested)

    @parts.broker.subscriber(  # type: ignore[untyped-decorator]
        topics.FEEDBACK_ACCEPTED,
        batch=True,
        max_records=settings.intake_batch_max_records,
        batch_timeout_ms=settings.intake_batch_timeout_ms,
        **subscriber_options(settings, PREPARING_GROUP_ID),
    )
    async def on_feedback_accepted(message: KafkaMessage) -> None:
        """A campaign's crowd is submitting: its first round's fixed work starts now. Intake
        keys each announcement by its campaign, so the values are never parsed here."""
        keys = {record.key for record in batch_records(message) if record.key}
        preparations.start(key.decode(errors="replace") for key in keys)

    @parts.app.after_startup
    async def warm_trainers() -> None:
        if settings.training_warm_backends:  # beside the consumers, never blocking them
            warming.add(asyncio.create_task(trainers.warm(settings.training_warm_backends)))

    @parts.app.after_shutdown
    async def stop_trainers() -> None:
        for task in warming:
            task.cancel()
        preparations.cancel()
        trainers.close()

    return parts.app


def main() -> None:
    run_service(create_app)
