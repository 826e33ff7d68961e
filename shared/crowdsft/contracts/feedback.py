"""Feedback events: what contributors submit and what intake answers."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, Field

from crowdsft.contracts.envelope import ID_PATTERN, CampaignEvent, Event

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
    client_timestamp: AwareDatetime


class FeedbackAccepted(CampaignEvent):
    """Intake stored the submission as a contribution (id = its content hash)."""

    event_type: Literal["feedback.accepted"] = "feedback.accepted"
    submission_event_id: str
    contribution_id: str
    contributor_id: str


class RejectionReason(StrEnum):
    OVERSIZE = "oversize"
    BAD_JSON = "bad_json"
    INVALID_FIELDS = "invalid_fields"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNKNOWN_CAMPAIGN = "unknown_campaign"
    DUPLICATE_CONTENT = "duplicate_content"


class FeedbackRejected(Event):
    """Intake refused a submission; malformed ones are also dead-lettered with their bytes."""

    event_type: Literal["feedback.rejected"] = "feedback.rejected"
    submission_event_id: str | None = None
    campaign_id: str | None = None
    contributor_id: str | None = None
    reason: RejectionReason
    detail: str = Field(max_length=2_000)
    duplicate_of: str | None = Field(None, description="Contribution id, for duplicates.")


class FeedbackDeadLettered(Event):
    """The original record of a malformed submission, kept whole so nothing is lost."""

    event_type: Literal["feedback.dead_lettered"] = "feedback.dead_lettered"
    source_topic: str
    source_partition: int
    source_offset: int
    reason: RejectionReason
    detail: str = Field(max_length=2_000)
    original_key_b64: str | None = None
    original_value_b64: str


class EventDeadLettered(Event):
    """A record on an internal topic that is not the event the topic carries, kept whole."""

    event_type: Literal["event.dead_lettered"] = "event.dead_lettered"
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str = Field(max_length=200)
    detail: str = Field(max_length=2_000)
    original_value_b64: str
