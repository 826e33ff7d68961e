"""Event contracts: envelope on every event, generated documents in sync with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from crowdsft.contracts import TOPIC_EVENTS, FeedbackSubmitted, derive_event_id, export, utc_now

REPO = Path(__file__).resolve().parents[2]
ENVELOPE = {"event_id", "event_type", "schema_version", "occurred_at", "producer"}


def test_generated_schemas_are_in_sync() -> None:
    assert export.stale(REPO / "schemas") == [], "run `crowdsft schemas write` and commit"


def test_stale_check_notices_an_edit(tmp_path: Path) -> None:
    export.write(tmp_path)
    assert export.stale(tmp_path) == []
    (tmp_path / "asyncapi.json").write_text("{}")
    (tmp_path / "events" / "gone.schema.json").write_text("{}")
    assert export.stale(tmp_path) == ["asyncapi.json", "events/gone.schema.json"]


@pytest.mark.parametrize("topic", sorted(TOPIC_EVENTS))
def test_every_event_carries_the_envelope(topic: str) -> None:
    model: type[BaseModel] = TOPIC_EVENTS[topic]
    assert topic.startswith("crowdsft.")
    assert set(model.model_fields) >= ENVELOPE
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"


def test_asyncapi_lists_every_topic_with_its_payload() -> None:
    document = export.asyncapi_document()
    assert set(document["channels"]) == set(TOPIC_EVENTS)
    assert {m.__name__ for m in TOPIC_EVENTS.values()} <= set(document["components"]["schemas"])


def test_round_and_campaign_ids_where_they_apply() -> None:
    from crowdsft.contracts import PointsAwarded, RoundDecided

    assert {"campaign_id", "round_id"} <= set(RoundDecided.model_fields)
    assert {"campaign_id", "round_id"} <= set(PointsAwarded.model_fields)
    assert "campaign_id" in FeedbackSubmitted.model_fields


def test_events_round_trip_and_are_immutable() -> None:
    event = FeedbackSubmitted(
        event_id="e-1",
        producer="cli",
        campaign_id="camp",
        contributor_id="alice",
        prompt="p",
        response="r",
        client_timestamp=utc_now(),
    )
    assert FeedbackSubmitted.model_validate_json(event.model_dump_json()) == event
    with pytest.raises(ValidationError):
        event.prompt = "changed"  # type: ignore[misc]


def test_derived_ids_are_deterministic_and_distinct() -> None:
    assert derive_event_id("accepted", "e-1") == derive_event_id("accepted", "e-1")
    assert derive_event_id("accepted", "e-1") != derive_event_id("accepted", "e-2")
    assert derive_event_id("a", "bc") != derive_event_id("ab", "c")
