"""Generated contract documents: one JSON Schema per event and the AsyncAPI document.

`crowdsft schemas write` regenerates `schemas/`; a test fails when the files are stale, so
the documents consumers read can never drift from the models the services validate with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

import crowdsft
from crowdsft.contracts.topics import TOPIC_EVENTS


def event_type_of(model: type[Any]) -> str:
    return str(model.model_fields["event_type"].default)


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name (relative to schemas/) -> JSON Schema, for every event on every topic."""
    return {
        f"events/{event_type_of(model)}.schema.json": model.model_json_schema(mode="serialization")
        for model in TOPIC_EVENTS.values()
    }


def asyncapi_document() -> dict[str, Any]:
    """Every topic as a channel carrying its event, built by FastStream from the models."""
    broker = KafkaBroker("kafka:9092", description="Apache Kafka (or any Kafka-protocol broker)")
    for topic, model in TOPIC_EVENTS.items():
        broker.publisher(
            topic,
            title=topic,
            description=(model.__doc__ or "").strip(),
            schema=model,
        )
    spec = AsyncAPI(
        broker,
        title="crowdsft events",
        version=crowdsft.__version__,
        description="Events between the crowdsft services. Keys: contributor or campaign id.",
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document


def rendered() -> dict[str, str]:
    files = {name: _dump(schema) for name, schema in json_schemas().items()}
    files["asyncapi.json"] = _dump(asyncapi_document())
    return files


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> list[Path]:
    written = []
    for name, text in rendered().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """Files missing, different, or left over from events that no longer exist."""
    expected = rendered()
    problems = [
        name
        for name, text in expected.items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    ]
    on_disk = {str(p.relative_to(directory)) for p in directory.rglob("*.json")}
    problems += sorted(on_disk - set(expected))
    return problems
