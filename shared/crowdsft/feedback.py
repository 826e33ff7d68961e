"""Triage of raw feedback records: pure parsing, validation and content keys (no I/O).

Intake keeps every record it cannot use, with the reason, so nothing sent is ever lost.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field

from pydantic import ValidationError

from crowdsft.contracts import FeedbackSubmitted, RejectionReason
from crowdsft.contracts.feedback import MAX_MESSAGE_BYTES

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One consumed Kafka record, reduced to what triage and the dead-letter queue need."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True, slots=True)
class Malformed:
    record: RawRecord
    reason: RejectionReason
    detail: str
    event: FeedbackSubmitted | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    record: RawRecord
    event: FeedbackSubmitted
    content_hash: str


@dataclass
class StoreOutcome:
    """What storing a batch did to each submission; every input lands in exactly one list."""

    stored: list[Parsed] = field(default_factory=list)
    replayed: list[Parsed] = field(default_factory=list)
    reused_ids: list[Parsed] = field(default_factory=list)
    duplicates: list[tuple[Parsed, str]] = field(default_factory=list)  # (item, owner's id)


def _normalise(text: str | None) -> str:
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text or "")).strip()


def content_hash(event: FeedbackSubmitted) -> str:
    """Equal for the same demonstration resubmitted with different spacing or a new event id."""
    fields = (
        event.campaign_id,
        event.contributor_id,
        event.prompt,
        event.response,
        event.correction,
    )
    joined = "\x1f".join(_normalise(field) for field in fields)
    return hashlib.sha256(joined.encode()).hexdigest()


def _describe(error: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()
    ]
    return "; ".join(parts)[:2_000]


def parse_record(record: RawRecord) -> Parsed | Malformed:
    if len(record.value) > MAX_MESSAGE_BYTES:
        detail = f"message is {len(record.value)} bytes; the limit is {MAX_MESSAGE_BYTES}"
        return Malformed(record, RejectionReason.OVERSIZE, detail)
    try:
        # Fast path: almost everything is valid, and pydantic parses bytes in one pass.
        event = FeedbackSubmitted.model_validate_json(record.value)
        return Parsed(record, event, content_hash(event))
    except ValidationError:
        pass  # below, the slow path names the precise reason
    try:
        payload = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Malformed(record, RejectionReason.BAD_JSON, f"not JSON: {exc}"[:2_000])
    if not isinstance(payload, dict):
        return Malformed(record, RejectionReason.BAD_JSON, "JSON value is not an object")
    event_type = payload.get("event_type", "feedback.submitted")
    if event_type != "feedback.submitted":
        detail = f"event_type {str(event_type)[:100]!r} does not belong on this topic"
        return Malformed(record, RejectionReason.UNKNOWN_EVENT_TYPE, detail)
    try:
        event = FeedbackSubmitted.model_validate(payload)
    except ValidationError as exc:
        return Malformed(record, RejectionReason.INVALID_FIELDS, _describe(exc))
    return Parsed(record, event, content_hash(event))


def triage(records: list[RawRecord]) -> tuple[list[Parsed], list[Malformed]]:
    parsed: list[Parsed] = []
    malformed: list[Malformed] = []
    for record in records:
        outcome = parse_record(record)
        (parsed if isinstance(outcome, Parsed) else malformed).append(outcome)  # type: ignore[arg-type]
    return parsed, malformed
