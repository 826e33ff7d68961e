"""Intake's work for one consumed batch: triage, store, record rejections, announce.

Everything that reaches intake ends in exactly one place: a stored contribution, a recorded
rejection (malformed ones also dead-lettered with their original bytes), or a recognised
replay of something already stored. Offsets are committed by the caller only after this
returns, so a crash at any point replays the batch and every step here is idempotent.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from crowdsft.adapters.metrics import (
    FEEDBACK_ACCEPTED,
    FEEDBACK_DEAD_LETTERED,
    FEEDBACK_REJECTED,
)
from crowdsft.contracts import (
    FeedbackAccepted,
    FeedbackDeadLettered,
    FeedbackRejected,
    OriginalCopy,
    RejectionReason,
    derive_event_id,
    utc_now,
)
from crowdsft.domain.ports import Announcement, Campaigns, FeedbackStore, Publish
from crowdsft.feedback import Malformed, Parsed, RawRecord, StoreOutcome, triage

PRODUCER = "intake"


@dataclass(frozen=True)
class BatchReport:
    stored: int
    replayed: int
    duplicates: int
    malformed: int
    store_ms: float
    publish_ms: float


def _rejection(item: Parsed | Malformed, reason: RejectionReason, detail: str) -> FeedbackRejected:
    event = item.event
    return FeedbackRejected(
        event_id=derive_event_id("feedback.rejected", item.record.position),
        producer=PRODUCER,
        submission_event_id=event.event_id if event else None,
        campaign_id=event.campaign_id if event else None,
        contributor_id=event.contributor_id if event else None,
        reason=reason,
        detail=detail,
    )


def _dead_letter(item: Malformed) -> FeedbackDeadLettered:
    record = item.record
    return FeedbackDeadLettered(
        event_id=derive_event_id("feedback.dead_lettered", record.position),
        producer=PRODUCER,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        reason=item.reason,
        detail=item.detail,
        original_key_b64=_key_copy(record.key),
        original=OriginalCopy.of(record.value),
    )


def _key_copy(key: bytes | None) -> str | None:
    """Keys are short ids; a longer one keeps a prefix (the value's copy says what it was)."""
    return base64.b64encode(key[:3_000]).decode() if key is not None else None


def _accepted(item: Parsed) -> FeedbackAccepted:
    event = item.event
    return FeedbackAccepted(
        event_id=derive_event_id("feedback.accepted", event.event_id),
        producer=PRODUCER,
        campaign_id=event.campaign_id,
        submission_event_id=event.event_id,
        contribution_id=item.content_hash,
        contributor_id=event.contributor_id,
        submitted_at=event.occurred_at,
        near_copy_signature=item.near_copy_signature,
    )


def _count(
    outcome: StoreOutcome, rejected: list[tuple[FeedbackRejected, str]], malformed: list[Malformed]
) -> None:
    """Once everything is stored and announced: a batch that fails before counts nothing."""
    FEEDBACK_ACCEPTED.inc(len(outcome.stored))
    for rejection, _ in rejected:
        FEEDBACK_REJECTED.labels(rejection.reason.value).inc()
    for item in malformed:
        FEEDBACK_DEAD_LETTERED.labels(item.reason.value).inc()


class IntakeHandler:
    def __init__(
        self, contributions: FeedbackStore, campaigns: Campaigns, publish: Publish
    ) -> None:
        self._contributions = contributions
        self._campaigns = campaigns
        self._publish = publish

    async def _split_unknown_campaigns(
        self, parsed: list[Parsed]
    ) -> tuple[list[Parsed], list[Malformed]]:
        known = await self._campaigns.known({item.event.campaign_id for item in parsed})
        valid = [item for item in parsed if item.event.campaign_id in known]
        unknown = [
            Malformed(
                item.record,
                RejectionReason.UNKNOWN_CAMPAIGN,
                f"campaign {item.event.campaign_id!r} does not exist",
                item.event,
            )
            for item in parsed
            if item.event.campaign_id not in known
        ]
        return valid, unknown

    async def handle(self, records: list[RawRecord]) -> BatchReport:
        parsed, malformed = triage(records)
        valid, unknown = await self._split_unknown_campaigns(parsed)
        malformed += unknown
        started = time.perf_counter()
        outcome = await self._contributions.store(valid, stored_at=utc_now())
        rejected = self._rejections(malformed, outcome)
        await self._contributions.record_rejections(rejected)
        announcements: list[Announcement] = [
            (item.event.campaign_id, _accepted(item)) for item in outcome.stored + outcome.replayed
        ]
        announcements += [(None, rejection) for rejection, _ in rejected]
        announcements += [(None, _dead_letter(item)) for item in malformed]
        stored = time.perf_counter()
        await self._publish(announcements)
        _count(outcome, rejected, malformed)
        return BatchReport(
            stored=len(outcome.stored),
            replayed=len(outcome.replayed),
            duplicates=len(outcome.duplicates),
            malformed=len(malformed),
            store_ms=round((stored - started) * 1000, 1),
            publish_ms=round((time.perf_counter() - stored) * 1000, 1),
        )

    @staticmethod
    def _rejections(
        malformed: list[Malformed], outcome: StoreOutcome
    ) -> list[tuple[FeedbackRejected, str]]:
        rejected = [(_rejection(m, m.reason, m.detail), m.record.position) for m in malformed]
        for item, original in outcome.duplicates:
            rejection = _rejection(
                item, RejectionReason.DUPLICATE_CONTENT, f"same content as {original}"
            ).model_copy(update={"duplicate_of": original})
            rejected.append((rejection, item.record.position))
        for item in outcome.conflicting_ids:
            detail = (
                f"event_id {item.event.event_id} was already used for other content or by "
                "another contributor; choose a new one"
            )
            rejection = _rejection(item, RejectionReason.EVENT_ID_CONFLICT, detail)
            rejected.append((rejection, item.record.position))
        return rejected
