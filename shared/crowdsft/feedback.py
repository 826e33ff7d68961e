"""Triage of raw feedback records: pure parsing, validation and content keys (no I/O).

Intake keeps every record it cannot use, with the reason, so nothing sent is ever lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pydantic import ValidationError
from pydantic_core import from_json

from crowdsft.contracts import FeedbackSubmitted, RejectionReason
from crowdsft.contracts.feedback import MAX_MESSAGE_BYTES
from crowdsft.domain import near_copies
from crowdsft.domain.text import canonical


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
    near_copy_signature: str | None = None  # base64, for long enough texts


@dataclass
class StoreOutcome:
    """What storing a batch did to each submission; every input lands in exactly one list."""

    stored: list[Parsed] = field(default_factory=list)
    replayed: list[Parsed] = field(default_factory=list)
    # An event id already taken by other content or by another contributor: a conflict.
    conflicting_ids: list[Parsed] = field(default_factory=list)
    duplicates: list[tuple[Parsed, str]] = field(default_factory=list)  # (item, owner's id)


def _canonical_fields(event: FeedbackSubmitted) -> list[str]:
    fields = (event.campaign_id, event.prompt, event.response, event.correction)
    return [canonical(field) for field in fields]


def _hash(fields: list[str]) -> str:
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def content_hash(event: FeedbackSubmitted) -> str:
    """Equal for the same demonstration in a campaign, whoever sends it and however it is
    cased, spaced or disguised (`domain.text.canonical`): a copy earns nothing."""
    return _hash(_canonical_fields(event))


def _parsed(record: RawRecord, event: FeedbackSubmitted) -> Parsed:
    """The content hash and the near-copy signature from one canonical pass over the text."""
    fields = _canonical_fields(event)
    text = near_copies.demonstration_text(fields[2], fields[3])
    sig = near_copies.signature(text)
    encoded = near_copies.encode(sig) if sig is not None else None
    return Parsed(record, event, _hash(fields), encoded)


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
        return _parsed(record, event)
    except ValidationError:
        pass  # below, the slow path names the precise reason
    try:
        # pydantic-core's parser bounds nesting depth; the stdlib's would raise RecursionError.
        payload = from_json(record.value)
    except ValueError as exc:
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
    return _parsed(record, event)


def _judged(record: RawRecord) -> Parsed | Malformed:
    """No record's content can make triage raise: whatever is unforeseen is still malformed."""
    try:
        return parse_record(record)
    except Exception as exc:  # a defect's last line: the record is kept, its batch goes on
        detail = f"could not be read: {type(exc).__name__}: {exc}"[:2_000]
        return Malformed(record, RejectionReason.INVALID_FIELDS, detail)


def triage(records: list[RawRecord]) -> tuple[list[Parsed], list[Malformed]]:
    parsed: list[Parsed] = []
    malformed: list[Malformed] = []
    for record in records:
        outcome = _judged(record)
        (parsed if isinstance(outcome, Parsed) else malformed).append(outcome)  # type: ignore[arg-type]
    return parsed, malformed
