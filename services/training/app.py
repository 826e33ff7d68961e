"""Training: wiring only. Several processes share a round's requests through one group; each
takes a batch of requests and trains them at once (on Ray, for the lora backend)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.ray_runner import RayRunner
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.service import service_parts
from crowdsft.contracts import TrainingRequested, topics
from crowdsft.llm.jobs import Workspace
from crowdsft.settings import Settings, load_settings
from services.training.backends import TrainingBackend, VectorBackend
from services.training.handler import TrainingHandler
from services.training.lora import LoraBackend

GROUP_ID = "crowdsft-training"


def create_app(settings: Settings) -> FastStream:
    parts = service_parts(settings, GROUP_ID)
    db, events = parts.db, parts.events
    contributions, rounds = ContributionStore(db), RoundStore(db)
    # Ray starts on the first lora request, so vector-only deployments never start it.
    runner = RayRunner(
        settings.ray_address, settings.ray_local_cpus, gpus_per_task=settings.ray_gpus_per_task
    )
    workspace = Workspace(
        artifact_root=str(Path(settings.artifact_root).expanduser().resolve()),
        model_cache=settings.model_cache,
    )
    backends: dict[str, TrainingBackend] = {
        "vector": VectorBackend(contributions, rounds),
        "lora": LoraBackend(CampaignStore(db), contributions, rounds, runner, workspace),
    }
    handler = TrainingHandler(backends, parts.publish)

    @parts.broker.subscriber(  # type: ignore[untyped-decorator]
        topics.TRAINING_REQUESTED,
        batch=True,
        max_records=settings.training_batch_max_records,
        batch_timeout_ms=settings.intake_batch_timeout_ms,
        max_poll_interval_ms=settings.training_max_poll_interval_ms,
        **subscriber_options(settings, GROUP_ID),
    )
    async def on_training_requested(message: KafkaMessage) -> None:
        requests = await events.parse_records(message, TrainingRequested)
        await handler.on_training_batch(requests)

    @parts.app.after_shutdown
    async def stop_ray() -> None:
        runner.stop()

    return parts.app


def main() -> None:
    asyncio.run(create_app(load_settings()).run())
