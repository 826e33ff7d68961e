"""Feedback intake: wiring only. Consumes submissions in batches, commits after storing."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import structlog
from faststream.asgi import AsgiFastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.consuming import Failure, batch_records, classify
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.service import run_service, service_parts
from crowdsft.adapters.tracing import record_per_record
from crowdsft.contracts import topics
from crowdsft.feedback import RawRecord
from crowdsft.settings import Settings
from services.intake.handler import IntakeHandler

GROUP_ID = "crowdsft-intake"
RETRY_PAUSE_S = 1.0

log = structlog.get_logger(GROUP_ID)


def create_app(settings: Settings) -> AsgiFastStream:
    parts = service_parts(settings, GROUP_ID)
    broker, db = parts.broker, parts.db
    handler = IntakeHandler(ContributionStore(db), CampaignStore(db), parts.publish)

    # FastStream's overloaded subscriber() is typed loosely enough that mypy sees it as untyped.
    @broker.subscriber(  # type: ignore[untyped-decorator]
        topics.FEEDBACK_SUBMITTED,
        batch=True,
        max_records=settings.intake_batch_max_records,
        batch_timeout_ms=settings.intake_batch_timeout_ms,
        title="intake:feedback.submitted",
        # Commit only after a batch is stored and announced; on an error rewind and retry.
        **subscriber_options(settings, GROUP_ID),
    )
    async def on_feedback_submitted(message: KafkaMessage) -> None:
        raw = batch_records(message)
        records = [RawRecord(r.topic, r.partition, r.offset, r.key, r.value or b"") for r in raw]
        started = time.time_ns()
        try:
            report = await handler.handle(records)
        except Exception as exc:
            if classify(exc) is Failure.TRANSIENT:
                # Storage or broker trouble: pause, then let the batch replay.
                log.warning("batch failed; it will be retried", records=len(records),
                            error=f"{type(exc).__name__}: {str(exc)[:300]}")  # fmt: skip
                await asyncio.sleep(RETRY_PAUSE_S)
                raise
            # Triage lets no input through that storing could fail on, so this is a defect
            # meeting one record: find it alone, set it aside, store the rest.
            log.exception("batch failed on its content; handling its records one by one")
            for record, original in zip(records, raw, strict=True):
                await parts.events.guarded(original, partial(handler.handle, [record]))
            return
        # Each record's trace (begun at the gateway) reaches the write that kept it.
        record_per_record("intake store", raw, started, time.time_ns(), batch=len(records))
        log.info("batch handled", records=len(records), **vars(report))

    return parts.app


def main() -> None:
    run_service(create_app)
