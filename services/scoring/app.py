"""Scoring: wiring only. Pays each decided round into the ledger and balances."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.ledger_store import LedgerStore
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.service import run_service, service_parts
from crowdsft.contracts import RoundDecided, topics
from crowdsft.settings import Settings
from services.scoring.handler import ScoringHandler

GROUP_ID = "crowdsft-scoring"


def create_app(settings: Settings) -> AsgiFastStream:
    parts = service_parts(settings, GROUP_ID)
    db, events = parts.db, parts.events
    handler = ScoringHandler(CampaignStore(db), RoundStore(db), LedgerStore(db), parts.publish)

    @parts.broker.subscriber(  # type: ignore[untyped-decorator]
        topics.ROUND_DECIDED, **subscriber_options(settings, GROUP_ID)
    )
    async def on_round_decided(message: KafkaMessage) -> None:
        await events.consume(message, RoundDecided, handler.on_round_decided)

    return parts.app


def main() -> None:
    run_service(create_app)
