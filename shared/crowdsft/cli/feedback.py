"""`crowdsft submit`: publish feedback to Kafka from arguments or a JSONL file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.cli import app
from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
from crowdsft.settings import load_settings

err = Console(stderr=True)


def build_events(rows: list[dict[str, Any]], defaults: dict[str, Any]) -> list[FeedbackSubmitted]:
    """Validate every row before anything is sent, so a bad file publishes nothing."""
    events: list[FeedbackSubmitted] = []
    errors: list[str] = []
    for line, row in enumerate(rows, start=1):
        fields = {**defaults, **{k: v for k, v in row.items() if v is not None}}
        fields.setdefault("event_id", new_event_id())
        fields.setdefault("client_timestamp", utc_now())
        fields.setdefault("producer", "cli")
        try:
            events.append(FeedbackSubmitted.model_validate(fields))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            errors.append(f"line {line}: {problems}")
    if errors:
        raise typer.BadParameter("\n".join(errors))
    return events


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path}:{line}: not JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise typer.BadParameter(f"{path}:{line}: expected a JSON object")
        rows.append(row)
    return rows


async def publish(events: list[FeedbackSubmitted]) -> list[str]:
    async with started_broker(load_settings(), "crowdsft-cli") as broker:
        return await FeedbackProducer(broker).submit(events)


@app.command()
def submit(
    campaign: Annotated[
        str | None, typer.Option(help="Campaign id (default for file rows).")
    ] = None,
    contributor: Annotated[str | None, typer.Option(help="Your contributor id.")] = None,
    prompt: Annotated[str | None, typer.Option()] = None,
    response: Annotated[str | None, typer.Option(help="Your demonstration.")] = None,
    rating: Annotated[int | None, typer.Option(min=1, max=5)] = None,
    correction: Annotated[str | None, typer.Option()] = None,
    file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="JSONL rows.")
    ] = None,
) -> None:
    """Submit feedback; prints one event id per submission."""
    defaults = {"campaign_id": campaign, "contributor_id": contributor}
    defaults = {k: v for k, v in defaults.items() if v is not None}
    if file is not None:
        rows = read_jsonl(file)
    else:
        single = {
            "prompt": prompt,
            "response": response,
            "rating": rating,
            "correction": correction,
        }
        rows = [single]
    try:
        events = build_events(rows, defaults)
    except typer.BadParameter as exc:
        err.print(f"[red]nothing was sent:[/red]\n{escape(str(exc))}")
        raise typer.Exit(1) from exc
    for event_id in asyncio.run(publish(events)):
        typer.echo(event_id)
    err.print(f"submitted {len(events)} feedback event(s)")
