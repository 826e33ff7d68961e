"""`crowdsft submit`: feedback from arguments or a JSONL file, through the gateway (a URL and
a token) or, for operators on the cluster, straight onto Kafka."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import answers, started_broker
from crowdsft.cli import app
from crowdsft.cli.store import unreachable
from crowdsft.client import Feedback, GatewayClient, ServiceError
from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
from crowdsft.settings import load_settings

err = Console(stderr=True)


Numbered = list[tuple[int, dict[str, Any]]]  # (line in the file, row)


def build_events(rows: Numbered, defaults: dict[str, Any]) -> list[FeedbackSubmitted]:
    """Validate every row before anything is sent, so a bad file publishes nothing."""
    events: list[FeedbackSubmitted] = []
    errors: list[str] = []
    for line, row in rows:
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


def read_jsonl(path: Path) -> Numbered:
    """Rows with their real line numbers (blank lines skipped), so errors point at the file."""
    rows: Numbered = []
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path}:{line}: not JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise typer.BadParameter(f"{path}:{line}: expected a JSON object")
        rows.append((line, row))
    return rows


async def publish(events: list[FeedbackSubmitted]) -> list[str]:
    """Straight onto Kafka; the producer is closed whatever happens."""
    settings = load_settings()
    down = unreachable("Kafka", settings.kafka_bootstrap,
                       "CROWDSFT_KAFKA_BOOTSTRAP or use --gateway URL --token TOKEN")  # fmt: skip
    if not await answers(settings):
        raise down
    try:
        async with started_broker(settings, "crowdsft-cli") as broker:
            return await FeedbackProducer(broker).submit(events)
    except KafkaError:
        raise down from None


async def through_gateway(events: list[FeedbackSubmitted], url: str, token: str) -> list[str]:
    sent = []
    async with GatewayClient(url, token) as gateway:
        for e in events:
            feedback = Feedback(e.campaign_id, e.prompt, e.response, e.rating, e.correction,
                                e.event_id)  # fmt: skip
            try:
                sent.append(await gateway.submit(feedback))
            except httpx.ConnectError:
                raise unreachable("the gateway", url, "--gateway") from None
    return sent


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
    gateway: Annotated[
        str | None, typer.Option(help="The gateway's URL: submit over HTTP with --token.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="Your token, for --gateway; default: $CROWDSFT_TOKEN.")
    ] = None,
) -> None:
    """Submit feedback; prints one event id per submission."""
    secret = token or os.environ.get("CROWDSFT_TOKEN")
    if gateway is not None and not secret:
        err.print("[red]nothing was sent:[/red] --gateway needs --token (or CROWDSFT_TOKEN)")
        raise typer.Exit(1)
    if gateway is not None:
        contributor = contributor or "token"  # the gateway takes the token's contributor
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
        rows = [(1, single)]
    try:
        events = build_events(rows, defaults)
    except typer.BadParameter as exc:
        err.print(f"[red]nothing was sent:[/red]\n{escape(str(exc))}")
        raise typer.Exit(1) from exc
    try:
        if gateway is not None and secret:
            sent = asyncio.run(through_gateway(events, gateway, secret))
        else:
            sent = asyncio.run(publish(events))
    except ServiceError as exc:
        err.print(f"[red]refused:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    for event_id in sent:
        typer.echo(event_id)
    err.print(f"submitted {len(events)} feedback event(s)")
