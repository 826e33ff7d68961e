"""Training: wiring only. Several processes share a round's requests through one group."""

from __future__ import annotations

import asyncio

from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.service import service_parts
from crowdsft.contracts import TrainingRequested, topics
from crowdsft.settings import Settings, load_settings
from services.training.backends import TrainingBackend, VectorBackend
from services.training.handler import TrainingHandler

GROUP_ID = "crowdsft-training"


def create_app(settings: Settings) -> FastStream:
    parts = service_parts(settings, GROUP_ID)
    db, events = parts.db, parts.events
    backends: dict[str, TrainingBackend] = {
        "vector": VectorBackend(ContributionStore(db), RoundStore(db))
    }
    handler = TrainingHandler(backends, parts.publish)

    @parts.broker.subscriber(  # type: ignore[untyped-decorator]
        topics.TRAINING_REQUESTED, **subscriber_options(settings, GROUP_ID)
    )
    async def on_training_requested(message: KafkaMessage) -> None:
        if request := await events.parse(message, TrainingRequested):
            await handler.on_training_requested(request)

    return parts.app


def main() -> None:
    asyncio.run(create_app(load_settings()).run())
