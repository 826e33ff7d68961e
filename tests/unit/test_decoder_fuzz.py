"""Property-based fuzz of every event decoder: whatever bytes arrive, decoding answers with an
event or a reasoned refusal (a rejection or a dead letter), never an exception."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crowdsft.adapters.consuming import EventReader
from crowdsft.contracts import TOPIC_EVENTS, EventDeadLettered, FeedbackSubmitted
from crowdsft.domain.text import canonical, unicode_canonical
from crowdsft.feedback import Malformed, Parsed, RawRecord, parse_record
from tests.support.fakes import FakeBus, FakeRecord

EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)
TIMESTAMPS = st.sampled_from(
    ["9999-12-31T23:00:00-12:00", "0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00",
     "1970-01-01T00:00:00Z", "not a time", "2026-06-01T12:00:00+00:00"]
)  # fmt: skip


def valid_payload() -> dict[str, Any]:
    return json.loads(
        FeedbackSubmitted(
            event_id="e-1", producer="fuzz", campaign_id="c", contributor_id="u",
            prompt="p", response="r", client_timestamp="2026-06-01T12:00:00+00:00",
        ).model_dump_json()
    )  # fmt: skip


@st.composite
def mutated_feedback(draw: st.DrawFn) -> bytes:
    """A valid submission with some fields replaced by anything JSON can carry."""
    payload = valid_payload()
    for key in draw(st.lists(st.sampled_from([*payload, "extra"]), max_size=4)):
        payload[key] = draw(json_values | TIMESTAMPS)
    return json.dumps(payload).encode()


def feedback_record(value: bytes) -> RawRecord:
    return RawRecord("crowdsft.feedback.submitted", 0, 1, None, value)


@FUZZ
@given(st.binary(max_size=2_000) | mutated_feedback())
def test_intake_triage_never_raises(value: bytes) -> None:
    outcome = parse_record(feedback_record(value))
    assert isinstance(outcome, Parsed | Malformed)
    if isinstance(outcome, Malformed):
        assert outcome.detail  # every refusal says why


@FUZZ
@given(st.integers(min_value=1, max_value=5_000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_refused_not_recursed(depth: int, opener: str) -> None:
    outcome = parse_record(feedback_record((opener * depth).encode()))
    assert isinstance(outcome, Malformed)


@FUZZ
@given(st.text(max_size=500))
def test_canonical_text_never_raises_and_is_idempotent(text: str) -> None:
    once = canonical(text)
    assert canonical(once) == once


@FUZZ
@given(st.sampled_from(sorted(TOPIC_EVENTS)), st.binary(max_size=2_000) | json_values.map(
    lambda v: json.dumps(v).encode()
))  # fmt: skip
def test_every_internal_decoder_answers_with_an_event_or_a_dead_letter(
    topic: str, value: bytes
) -> None:
    bus = FakeBus()
    reader = EventReader(bus, "fuzz", pause=lambda attempt: 0.0)
    event = asyncio.run(reader.parse_record(FakeRecord(topic, 0, 7, value), TOPIC_EVENTS[topic]))
    if event is None:
        [(dlq, _, letter)] = bus.published
        assert dlq == "crowdsft.dlq" and isinstance(letter, EventDeadLettered)
        assert letter.original.length == len(value)
    else:
        assert isinstance(event, TOPIC_EVENTS[topic]) and bus.published == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200))
def test_the_ascii_fast_path_equals_the_general_path(text: str) -> None:
    assert canonical(text) == unicode_canonical(text)
