"""What the dead-letter keeper makes of each record it reads."""

from __future__ import annotations

import base64
import json

from crowdsft.contracts import EventDeadLettered, FeedbackDeadLettered, OriginalCopy, topics
from crowdsft.contracts.feedback import DEAD_LETTER_COPY_BYTES, RejectionReason
from crowdsft.domain.dead_letters import Replay, campaign_hint, dead_letter_of, replay_of


def original(body: object) -> OriginalCopy:
    return OriginalCopy.of(json.dumps(body).encode())


def test_a_feedback_letter_keeps_its_reason_source_and_campaign() -> None:
    letter = FeedbackDeadLettered(
        event_id="dl-1", producer="intake", source_topic=topics.FEEDBACK_SUBMITTED,
        source_partition=2, source_offset=41, reason=RejectionReason.INVALID_FIELDS,
        detail="response: field required", original=original({"campaign_id": "c-1"}),
    )  # fmt: skip
    kept = dead_letter_of(topics.FEEDBACK_DLQ, 0, 7, letter.model_dump_json().encode())
    assert kept.dead_letter_id == "dl-1" and kept.kind == "feedback"
    assert (kept.source_topic, kept.source_partition, kept.source_offset) == (
        topics.FEEDBACK_SUBMITTED, 2, 41,
    )  # fmt: skip
    assert kept.reason == "invalid_fields" and kept.campaign_id == "c-1"
    assert kept.original == letter.original and kept.dead_lettered_at == letter.occurred_at


def test_an_internal_letter_keeps_its_attempts() -> None:
    letter = EventDeadLettered(
        event_id="dl-2", producer="selection", source_topic=topics.CANDIDATE_TRAINED,
        source_partition=0, source_offset=3, reason="refused: LookupError", detail="no round",
        attempts=5, original=original({"campaign_id": "c-2", "round_id": "r"}),
    )  # fmt: skip
    kept = dead_letter_of(topics.DEAD_LETTERS, 1, 9, letter.model_dump_json().encode())
    assert kept.kind == "internal" and kept.attempts == 5 and kept.producer == "selection"
    assert kept.reason == "refused: LookupError" and kept.campaign_id == "c-2"


def test_a_record_that_is_no_letter_is_kept_by_its_own_position() -> None:
    first = dead_letter_of(topics.DEAD_LETTERS, 0, 5, b"\xff not json")
    again = dead_letter_of(topics.DEAD_LETTERS, 0, 5, b"\xff not json")
    other = dead_letter_of(topics.DEAD_LETTERS, 0, 6, b"\xff not json")
    assert first.kind == "unreadable" and first.reason == "not a dead letter"
    assert (first.source_topic, first.source_offset) == (topics.DEAD_LETTERS, 5)
    assert first.dead_letter_id == again.dead_letter_id != other.dead_letter_id
    assert first.original.value() == b"\xff not json" and first.campaign_id is None


def test_the_campaign_hint_trusts_only_well_formed_ids() -> None:
    assert campaign_hint(original({"campaign_id": "ok-1"})) == "ok-1"
    assert campaign_hint(original({"campaign_id": {"$ne": None}})) is None
    assert campaign_hint(original({"campaign_id": "bad id with spaces"})) is None
    assert campaign_hint(original([1, 2])) is None
    assert campaign_hint(OriginalCopy.of(b"\xfe\xff")) is None
    huge = json.dumps({"campaign_id": "ok-1", "pad": "x" * DEAD_LETTER_COPY_BYTES}).encode()
    assert campaign_hint(OriginalCopy.of(huge)) is None  # a prefix is not JSON to trust


def test_a_replay_sends_the_original_bytes_and_key_back_where_they_came_from() -> None:
    body = json.dumps({"campaign_id": "c-1", "prompt": "p"}).encode()
    letter = FeedbackDeadLettered(
        event_id="dl-3", producer="intake", source_topic=topics.FEEDBACK_SUBMITTED,
        source_partition=0, source_offset=1, reason=RejectionReason.UNKNOWN_CAMPAIGN,
        detail="campaign 'c-1' does not exist", original=OriginalCopy.of(body),
        original_key_b64=base64.b64encode(b"alice").decode(),
    )  # fmt: skip
    found = replay_of(dead_letter_of(topics.FEEDBACK_DLQ, 0, 2, letter.model_dump_json().encode()))
    assert isinstance(found, Replay)
    assert (found.topic, found.key, found.value) == (topics.FEEDBACK_SUBMITTED, b"alice", body)


def test_what_cannot_be_replayed_says_why() -> None:
    unreadable = dead_letter_of(topics.DEAD_LETTERS, 0, 5, b"junk")
    assert "not a dead letter" in str(replay_of(unreadable))
    huge = b"x" * (DEAD_LETTER_COPY_BYTES + 10)
    letter = EventDeadLettered(
        event_id="dl-4", producer="selection", source_topic=topics.ROUND_START,
        source_partition=0, source_offset=0, reason="not a valid StartRound", detail="",
        original=OriginalCopy.of(huge),
    )  # fmt: skip
    kept = dead_letter_of(topics.DEAD_LETTERS, 0, 6, letter.model_dump_json().encode())
    assert "bytes were kept" in str(replay_of(kept))
