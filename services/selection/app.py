"""Selection: wiring only. Opens rounds, collects candidates, runs the tournament."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

from faststream.asgi import AsgiFastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.consuming import ThrottledLog, batch_records
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.ledger_store import LedgerStore
from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.near_copy_store import NearCopyStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.service import run_service, service_parts
from crowdsft.contracts import (
    CandidateTrained,
    FeedbackAccepted,
    PointsAwarded,
    StartRound,
    topics,
    utc_now,
)
from crowdsft.settings import Settings
from services.selection.handler import SelectionHandler
from services.selection.screening import Acceptance, Screening

GROUP_ID = "crowdsft-selection"


def create_app(settings: Settings) -> AsgiFastStream:
    parts = service_parts(settings, GROUP_ID)
    broker, db, events = parts.broker, parts.db, parts.events
    campaigns = CampaignStore(db)
    handler = SelectionHandler(
        campaigns,
        RoundStore(db),
        ContributionStore(db),
        LedgerStore(db),
        MeasurementStore(db),
        LineageStore(db),
        parts.publish,
    )
    screening = Screening(
        NearCopyStore(db), ContributionStore(db), parts.publish, settings.near_copy_threshold
    )
    acceptance = Acceptance(campaigns, screening, handler)
    options = subscriber_options(settings, GROUP_ID)

    @broker.subscriber(topics.ROUND_START, **options)  # type: ignore[untyped-decorator]
    async def on_start_round(message: KafkaMessage) -> None:
        await events.consume(message, StartRound, handler.on_start_round)

    @broker.subscriber(topics.CANDIDATE_TRAINED, **options)  # type: ignore[untyped-decorator]
    async def on_candidate_trained(message: KafkaMessage) -> None:
        await events.consume(message, CandidateTrained, handler.on_candidate_trained)

    @broker.subscriber(topics.POINTS_AWARDED, **options)  # type: ignore[untyped-decorator]
    async def on_points_awarded(message: KafkaMessage) -> None:
        await events.consume(message, PointsAwarded, handler.on_points_awarded)

    @broker.subscriber(  # type: ignore[untyped-decorator]
        topics.FEEDBACK_ACCEPTED, batch=True, max_records=5_000, **options
    )
    async def on_feedback_accepted(message: KafkaMessage) -> None:
        """New texts are screened for near-copies before anything counts them; then only which
        campaigns got new data matters (the auto policy's first round)."""
        first_of: dict[str, Any] = {}
        accepted: dict[str, list[FeedbackAccepted]] = {}
        for record in batch_records(message):
            if event := await events.parse_record(record, FeedbackAccepted):
                first_of.setdefault(event.campaign_id, record)
                accepted.setdefault(event.campaign_id, []).append(event)
        for campaign_id, record in sorted(first_of.items()):
            await events.guarded(record, partial(acceptance.accept, accepted[campaign_id]))

    watching: list[asyncio.Task[None]] = []

    @parts.app.after_startup
    async def watch_overdue() -> None:
        watching.append(asyncio.create_task(ask_again_for_overdue(handler, settings)))

    @parts.app.on_shutdown
    async def stop_watching() -> None:
        for task in watching:
            task.cancel()

    return parts.app


async def ask_again_for_overdue(handler: SelectionHandler, settings: Settings) -> None:
    """Nothing waits forever for a lost step: each period, rounds still waiting for a
    candidate after the timeout ask for it again."""
    timeout = timedelta(seconds=settings.selection_candidate_timeout_s)
    throttled = ThrottledLog()
    while True:
        await asyncio.sleep(timeout.total_seconds() / 2)
        try:
            await handler.request_overdue(utc_now() - timeout)
        except Exception as exc:  # the store or broker is away: the next period tries again
            throttled.warning("overdue", "could not look for overdue rounds", error=repr(exc))


def main() -> None:
    run_service(create_app)
