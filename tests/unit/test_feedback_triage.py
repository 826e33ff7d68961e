"""Triage sorts raw bytes into usable feedback or a precise rejection reason."""

from __future__ import annotations

import json

import pytest

from crowdsft.contracts import FeedbackSubmitted, RejectionReason, utc_now
from crowdsft.contracts.feedback import MAX_MESSAGE_BYTES
from crowdsft.feedback import Malformed, Parsed, RawRecord, content_hash, parse_record, triage


def valid_payload(**changes: object) -> dict[str, object]:
    event = FeedbackSubmitted(
        event_id="e-1",
        producer="test",
        campaign_id="camp",
        contributor_id="alice",
        prompt="write a reddit comment.",
        response="so happy today!",
        client_timestamp=utc_now(),
    )
    return {**json.loads(event.model_dump_json()), **changes}


def record(value: bytes) -> RawRecord:
    return RawRecord("crowdsft.feedback.submitted", 1, 42, b"k", value)


def test_valid_feedback_parses() -> None:
    outcome = parse_record(record(json.dumps(valid_payload()).encode()))
    assert isinstance(outcome, Parsed)
    assert outcome.event.contributor_id == "alice"
    assert outcome.content_hash == content_hash(outcome.event)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", RejectionReason.BAD_JSON),
        (b"\xff\xfe", RejectionReason.BAD_JSON),
        (b"[1, 2]", RejectionReason.BAD_JSON),
        (b"[" * 30_000 + b"]" * 30_000, RejectionReason.BAD_JSON),  # deeper than any parser
        (b'{"prompt": "caf\xe9"}', RejectionReason.BAD_JSON),  # Latin-1, not UTF-8
        (
            json.dumps(valid_payload(client_timestamp="9999-12-31T23:00:00-12:00")).encode(),
            RejectionReason.INVALID_FIELDS,  # year 10000 in UTC: no store could keep it
        ),
        (
            json.dumps(valid_payload(client_timestamp="1970-01-01T00:00:00Z")).encode(),
            RejectionReason.INVALID_FIELDS,
        ),
        (json.dumps(valid_payload(rating=9)).encode(), RejectionReason.INVALID_FIELDS),
        (json.dumps(valid_payload(rating="five")).encode(), RejectionReason.INVALID_FIELDS),
        (json.dumps(valid_payload(prompt=" ")).encode(), RejectionReason.INVALID_FIELDS),
        (json.dumps(valid_payload(extra_field=1)).encode(), RejectionReason.INVALID_FIELDS),
        (
            json.dumps(valid_payload(client_timestamp="2026-01-01T00:00:00")).encode(),
            RejectionReason.INVALID_FIELDS,
        ),
        (
            json.dumps(valid_payload(event_type="round.decided")).encode(),
            RejectionReason.UNKNOWN_EVENT_TYPE,
        ),
        (
            json.dumps(valid_payload(response="x" * MAX_MESSAGE_BYTES)).encode(),
            RejectionReason.OVERSIZE,
        ),
    ],
)
def test_malformed_feedback_gets_its_reason(value: bytes, reason: RejectionReason) -> None:
    outcome = parse_record(record(value))
    assert isinstance(outcome, Malformed)
    assert outcome.reason is reason
    assert outcome.detail
    assert outcome.record.value == value


def test_missing_field_is_named_in_the_detail() -> None:
    payload = valid_payload()
    del payload["response"]
    outcome = parse_record(record(json.dumps(payload).encode()))
    assert isinstance(outcome, Malformed)
    assert "response" in outcome.detail


def test_content_hash_ignores_spacing_and_author_but_not_words() -> None:
    """A copy from a second account is the same demonstration: it must not earn twice."""
    base = FeedbackSubmitted.model_validate(valid_payload())
    spaced = base.model_copy(update={"event_id": "e-2", "response": "so  happy\ttoday! "})
    other_words = base.model_copy(update={"response": "so sad today!"})
    other_author = base.model_copy(update={"contributor_id": "bob"})
    assert content_hash(spaced) == content_hash(base)
    assert content_hash(other_words) != content_hash(base)
    assert content_hash(other_author) == content_hash(base)


@pytest.mark.parametrize(
    "disguise",
    [
        "SO HAPPY TODAY",  # case
        "so, happy... today?!",  # punctuation
        "so hap\u200bpy to\u2060day",  # zero-width space and word joiner
        "\u0455\u043e \u04bb\u0430\u0440\u0440\u0443 t\u043ed\u0430\u0443",  # Cyrillic homoglyphs
        "\uff53\uff4f \uff48\uff41\uff50\uff50\uff59 \uff54\uff4f\uff44\uff41\uff59",
    ],
)
def test_content_hash_sees_through_disguised_copies(disguise: str) -> None:
    base = FeedbackSubmitted.model_validate(valid_payload(response="so happy today"))
    copy = base.model_copy(update={"event_id": "e-9", "contributor_id": "mallory",
                                   "response": disguise})  # fmt: skip
    assert content_hash(copy) == content_hash(base)


def test_triage_keeps_every_record() -> None:
    values = [json.dumps(valid_payload(event_id=f"e-{i}")).encode() for i in range(5)] + [b"?"]
    parsed, malformed = triage([record(v) for v in values])
    assert len(parsed) == 5 and len(malformed) == 1
