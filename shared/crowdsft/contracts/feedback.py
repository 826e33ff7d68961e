"""Feedback events: what contributors submit and what intake answers."""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crowdsft.contracts.envelope import ID_PATTERN, CampaignEvent, Event, SaneDatetime

# Explicit size limits: generous for SFT demonstrations, small enough that one message stays
# well under Kafka's 1 MiB default and a batch of 2,000 fits in memory.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_PROMPT_CHARS = 4_000
MAX_RESPONSE_CHARS = 8_000
MAX_CORRECTION_CHARS = 8_000
RATING_MIN, RATING_MAX = 1, 5


class FeedbackSubmitted(CampaignEvent):
    """A contributor's demonstration for a prompt, published by the CLI or the HTTP gateway."""

    event_type: Literal["feedback.submitted"] = "feedback.submitted"
    contributor_id: str = Field(pattern=ID_PATTERN)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    response: str = Field(min_length=1, max_length=MAX_RESPONSE_CHARS)
    rating: int | None = Field(None, ge=RATING_MIN, le=RATING_MAX)
    correction: str | None = Field(None, min_length=1, max_length=MAX_CORRECTION_CHARS)
    client_timestamp: SaneDatetime


# 64 uint32 minima, base64: 344 characters.
NEAR_COPY_SIGNATURE_CHARS = 400


class FeedbackAccepted(CampaignEvent):
    """Intake stored the submission as a contribution (id = its content hash)."""

    event_type: Literal["feedback.accepted"] = "feedback.accepted"
    submission_event_id: str
    contribution_id: str
    contributor_id: str
    submitted_at: SaneDatetime | None = Field(
        None, description="When the gateway took the submission: the earlier of two similar "
        "texts is the original."
    )  # fmt: skip
    near_copy_signature: str | None = Field(
        None, max_length=NEAR_COPY_SIGNATURE_CHARS,
        description="Base64 MinHash of the canonical text (crowdsft.domain.near_copies); "
        "absent for texts too short to judge.",
    )  # fmt: skip


class RejectionReason(StrEnum):
    OVERSIZE = "oversize"
    BAD_JSON = "bad_json"
    INVALID_FIELDS = "invalid_fields"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_CAMPAIGN = "unknown_campaign"
    DUPLICATE_CONTENT = "duplicate_content"
    NEAR_DUPLICATE = "near_duplicate"
    EVENT_ID_CONFLICT = "event_id_conflict"
    UNSTORABLE = "unstorable"


class FeedbackRejected(Event):
    """Intake refused a submission; malformed ones are also dead-lettered with their bytes."""

    event_type: Literal["feedback.rejected"] = "feedback.rejected"
    submission_event_id: str | None = None
    campaign_id: str | None = None
    contributor_id: str | None = None
    reason: RejectionReason
    detail: str = Field(max_length=2_000)
    duplicate_of: str | None = Field(None, description="Contribution id, for duplicates.")


# A dead letter carries at most this much of its original, so it always fits the broker's
# 1 MiB default (base64 adds a third): every valid submission (64 KiB at most) is copied
# whole, and anything larger keeps its length and SHA-256 beside the copied prefix.
DEAD_LETTER_COPY_BYTES = 128 * 1024


class OriginalCopy(BaseModel):
    """The bytes a dead letter keeps of its record: whole when small, else a prefix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value_b64: str
    length: int = Field(ge=0, description="Bytes in the original record's value.")
    sha256: str = Field(description="Of the whole original value.")
    truncated: bool = Field(description="True when value_b64 holds only a prefix.")

    @classmethod
    def of(cls, value: bytes) -> OriginalCopy:
        kept = value[:DEAD_LETTER_COPY_BYTES]
        return cls(
            value_b64=base64.b64encode(kept).decode(),
            length=len(value),
            sha256=hashlib.sha256(value).hexdigest(),
            truncated=len(kept) < len(value),
        )

    def value(self) -> bytes:
        return base64.b64decode(self.value_b64)


class FeedbackDeadLettered(Event):
    """The original record of a malformed submission, kept so nothing valid is lost."""

    event_type: Literal["feedback.dead_lettered"] = "feedback.dead_lettered"
    source_topic: str
    source_partition: int
    source_offset: int
    reason: RejectionReason
    detail: str = Field(max_length=2_000)
    original_key_b64: str | None = Field(None, max_length=4_096)
    original: OriginalCopy


class EventDeadLettered(Event):
    """A record on an internal topic that can never be handled: not the event the topic
    carries, or one the store contradicts (an unknown round, a forged candidate)."""

    event_type: Literal["event.dead_lettered"] = "event.dead_lettered"
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str = Field(max_length=200)
    detail: str = Field(max_length=2_000)
    attempts: int = Field(1, ge=1, description="Times it was tried before it was set aside.")
    original: OriginalCopy
