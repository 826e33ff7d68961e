"""Shapley: wiring only. Refreshes Shapley values and fairness figures after scoring."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.service import run_service, service_parts
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.contracts import PointsAwarded, topics
from crowdsft.settings import Settings
from services.shapley.handler import ShapleyHandler

GROUP_ID = "crowdsft-shapley"


def create_app(settings: Settings) -> AsgiFastStream:
    parts = service_parts(settings, GROUP_ID)
    db, events = parts.db, parts.events
    handler = ShapleyHandler(
        CampaignStore(db), RoundStore(db), ShapleyStore(db), parts.publish, MeasurementStore(db)
    )

    @parts.broker.subscriber(  # type: ignore[untyped-decorator]
        topics.POINTS_AWARDED, **subscriber_options(settings, GROUP_ID)
    )
    async def on_points_awarded(message: KafkaMessage) -> None:
        await events.consume(message, PointsAwarded, handler.on_points_awarded)

    return parts.app


def main() -> None:
    run_service(create_app)
