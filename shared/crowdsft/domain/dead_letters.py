"""Dead letters as operators see them: every record a service set aside, with its reason.

The dead-letter topics keep the records; this is the view kept of them in the store, so the
read API can count them by reason and campaign and a fixed record can be found again. A record
on a dead-letter topic that is not itself a dead letter is kept too (as `unreadable`): the
keeper never sets anything aside a second time, so nothing loops and nothing is lost.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowdsft.contracts import (
    EventDeadLettered,
    FeedbackDeadLettered,
    OriginalCopy,
    derive_event_id,
    topics,
    utc_now,
)
from crowdsft.contracts.envelope import ID_PATTERN

Kind = Literal["feedback", "internal", "unreadable"]
UNREADABLE_REASON = "not a dead letter"
_ID = re.compile(ID_PATTERN)


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    dead_letter_id: str = Field(description="The dead letter's event id: replays keep one copy.")
    kind: Kind
    producer: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    reason: str
    detail: str
    attempts: int = 1
    campaign_id: str | None = Field(
        None, description="Read from the original when it names one (a hint, not a check)."
    )
    original: OriginalCopy
    original_key_b64: str | None = None
    dead_lettered_at: datetime
    recorded_at: datetime
    replays: int = Field(0, description="Times `crowdsft dlq replay` sent it back.")
    replayed_at: datetime | None = None


@dataclass(frozen=True)
class Replay:
    """A dead letter's original record, as it is sent back to the topic it came from."""

    dead_letter_id: str
    topic: str
    key: bytes | None
    value: bytes


def replay_of(letter: DeadLetter) -> Replay | str:
    """The record to send back, or why it cannot be: consumers are idempotent on event ids,
    so sending a record back twice stores it once."""
    if letter.kind == "unreadable":
        return "not a dead letter: its source is the dead-letter topic itself"
    if letter.original.truncated:
        kept, length = len(letter.original.value()), letter.original.length
        return f"only the first {kept} of {length} bytes were kept"
    key = base64.b64decode(letter.original_key_b64) if letter.original_key_b64 else None
    return Replay(letter.dead_letter_id, letter.source_topic, key, letter.original.value())


class DeadLetterCount(BaseModel):
    kind: Kind
    source_topic: str
    reason: str
    count: int
    last_at: datetime


def campaign_hint(original: OriginalCopy) -> str | None:
    """The campaign a set-aside record names, if its bytes are JSON with a well-formed id."""
    if original.truncated:
        return None
    try:
        body = json.loads(original.value())
    except (ValueError, UnicodeDecodeError):
        return None
    found = body.get("campaign_id") if isinstance(body, dict) else None
    return found if isinstance(found, str) and _ID.fullmatch(found) else None


def dead_letter_of(topic: str, partition: int, offset: int, value: bytes) -> DeadLetter:
    """What a record read from a dead-letter topic says, whatever its bytes."""
    now = utc_now()
    letter: FeedbackDeadLettered | EventDeadLettered
    try:
        if topic == topics.FEEDBACK_DLQ:
            letter = FeedbackDeadLettered.model_validate_json(value)
        else:
            letter = EventDeadLettered.model_validate_json(value)
    except ValidationError as exc:
        original = OriginalCopy.of(value)
        return DeadLetter(
            dead_letter_id=derive_event_id("unreadable_dead_letter", topic, partition, offset),
            kind="unreadable",
            producer=None,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            reason=UNREADABLE_REASON,
            detail=str(exc)[:2_000],
            campaign_id=campaign_hint(original),
            original=original,
            dead_lettered_at=now,
            recorded_at=now,
        )
    feedback = isinstance(letter, FeedbackDeadLettered)
    attempts = letter.attempts if isinstance(letter, EventDeadLettered) else 1
    key_b64 = letter.original_key_b64 if isinstance(letter, FeedbackDeadLettered) else None
    return DeadLetter(
        dead_letter_id=letter.event_id,
        kind="feedback" if feedback else "internal",
        producer=letter.producer,
        source_topic=letter.source_topic,
        source_partition=letter.source_partition,
        source_offset=letter.source_offset,
        reason=str(getattr(letter.reason, "value", letter.reason)),
        detail=letter.detail,
        attempts=attempts,
        campaign_id=campaign_hint(letter.original),
        original=letter.original,
        original_key_b64=key_b64,
        dead_lettered_at=letter.occurred_at,
        recorded_at=now,
    )
