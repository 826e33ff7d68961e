"""Selection: wiring only. Opens rounds, collects candidates, runs the tournament."""

from __future__ import annotations

import asyncio

from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.ledger_store import LedgerStore
from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.service import service_parts
from crowdsft.contracts import (
    CandidateTrained,
    FeedbackAccepted,
    PointsAwarded,
    StartRound,
    topics,
)
from crowdsft.settings import Settings, load_settings
from services.selection.handler import SelectionHandler

GROUP_ID = "crowdsft-selection"


def create_app(settings: Settings) -> FastStream:
    parts = service_parts(settings, GROUP_ID)
    broker, db, events = parts.broker, parts.db, parts.events
    handler = SelectionHandler(
        CampaignStore(db),
        RoundStore(db),
        ContributionStore(db),
        LedgerStore(db),
        MeasurementStore(db),
        LineageStore(db),
        parts.publish,
    )
    options = subscriber_options(settings, GROUP_ID)

    @broker.subscriber(topics.ROUND_START, **options)  # type: ignore[untyped-decorator]
    async def on_start_round(message: KafkaMessage) -> None:
        if command := await events.parse(message, StartRound):
            await handler.on_start_round(command)

    @broker.subscriber(topics.CANDIDATE_TRAINED, **options)  # type: ignore[untyped-decorator]
    async def on_candidate_trained(message: KafkaMessage) -> None:
        if event := await events.parse(message, CandidateTrained):
            await handler.on_candidate_trained(event)

    @broker.subscriber(topics.POINTS_AWARDED, **options)  # type: ignore[untyped-decorator]
    async def on_points_awarded(message: KafkaMessage) -> None:
        if event := await events.parse(message, PointsAwarded):
            await handler.on_points_awarded(event)

    @broker.subscriber(  # type: ignore[untyped-decorator]
        topics.FEEDBACK_ACCEPTED, batch=True, max_records=5_000, **options
    )
    async def on_feedback_accepted(message: KafkaMessage) -> None:
        """Only which campaigns got new data matters here (the auto policy's first round)."""
        accepted = await events.parse_records(message, FeedbackAccepted)
        await handler.on_feedback_accepted({event.campaign_id for event in accepted})

    return parts.app


def main() -> None:
    asyncio.run(create_app(load_settings()).run())
