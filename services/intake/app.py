"""Feedback intake: wiring only. Consumes submissions in batches, commits after storing."""

from __future__ import annotations

import asyncio

import structlog
from faststream import FastStream
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import (
    announcer,
    consumer_tuning,
    ensure_topics,
    header_tolerant_parser,
    make_broker,
)
from crowdsft.contracts import topics
from crowdsft.feedback import RawRecord
from crowdsft.settings import Settings, load_settings
from services.intake.handler import IntakeHandler

GROUP_ID = "crowdsft-intake"
RETRY_PAUSE_S = 1.0

log = structlog.get_logger(GROUP_ID)


def create_app(settings: Settings) -> FastStream:
    broker = make_broker(settings, client_id=GROUP_ID)
    app = FastStream(broker)
    client = mongo.connect(settings)
    db = mongo.database(client, settings)
    handler = IntakeHandler(ContributionStore(db), CampaignStore(db), announcer(broker))

    @app.on_startup
    async def prepare() -> None:
        await ensure_topics(settings)
        await mongo.ensure_indexes(db)

    @app.after_shutdown
    async def close() -> None:
        await client.close()

    # FastStream's overloaded subscriber() is typed loosely enough that mypy sees it as untyped.
    @broker.subscriber(  # type: ignore[untyped-decorator]
        topics.FEEDBACK_SUBMITTED,
        batch=True,
        group_id=GROUP_ID,
        # Commit only after a batch is stored and announced; on an error rewind and retry.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_records=settings.intake_batch_max_records,
        batch_timeout_ms=settings.intake_batch_timeout_ms,
        parser=header_tolerant_parser,
        title="intake:feedback.submitted",
        **consumer_tuning(settings),
    )
    async def on_feedback_submitted(message: KafkaMessage) -> None:
        raw = message.raw_message
        records = [
            RawRecord(r.topic, r.partition, r.offset, r.key, r.value or b"")
            for r in (raw if isinstance(raw, tuple) else (raw,))
        ]
        try:
            report = await handler.handle(records)
        except Exception:
            # Storage or broker trouble, never the input: pause, then let the batch replay.
            log.exception("batch failed; it will be retried", records=len(records))
            await asyncio.sleep(RETRY_PAUSE_S)
            raise
        log.info("batch handled", records=len(records), **vars(report))

    return app


def main() -> None:
    asyncio.run(create_app(load_settings()).run())
