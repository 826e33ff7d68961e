"""`crowdsft dlq list | replay`: what the services set aside, and sending it back after a fix.

A record is set aside when it can never succeed as things stand (an unknown campaign, a
malformed event); once the cause is fixed (the campaign created, a producer corrected), replay
sends the kept original back to the topic it came from. Consumers are idempotent on event ids, so
a replay never stores anything twice; a record that still fails is set aside again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from crowdsft.adapters import mongo
from crowdsft.adapters.dead_letter_store import DeadLetterStore
from crowdsft.adapters.kafka import answers, started_broker
from crowdsft.cli import app
from crowdsft.cli.store import on_store, unreachable
from crowdsft.contracts import utc_now
from crowdsft.domain.dead_letters import DeadLetter, Replay, replay_of
from crowdsft.settings import load_settings

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: list them, replay them.")
app.add_typer(dlq_app, name="dlq")
out = Console()
err = Console(stderr=True)
Kind = Literal["feedback", "internal"]

CampaignOption = Annotated[str | None, typer.Option(help="Only those naming this campaign.")]
ReasonOption = Annotated[str | None, typer.Option(help="Only this reason, e.g. unknown_campaign.")]


@dlq_app.command("list")
def list_letters(campaign: CampaignOption = None, limit: int = 20) -> None:
    """Counts by reason, and the newest letters."""

    async def read(db: mongo.Database) -> None:
        store = DeadLetterStore(db)
        table = Table("kind", "topic", "reason", "count", "latest")
        for c in await store.counts(campaign):
            table.add_row(c.kind, c.source_topic, c.reason, str(c.count), str(c.last_at)[:19])
        out.print(table)
        for letter in await store.recent(campaign, limit):
            where = f"{letter.source_topic}/{letter.source_partition}/{letter.source_offset}"
            out.print(f"{letter.dead_letter_id}  {where}  {letter.reason}: {letter.detail[:120]}")

    on_store(read)


async def _send(replays: list[Replay]) -> None:
    settings = load_settings()
    down = unreachable("Kafka", settings.kafka_bootstrap, "CROWDSFT_KAFKA_BOOTSTRAP")
    if not await answers(settings):
        raise down
    try:
        async with started_broker(settings, "crowdsft-dlq-replay") as broker:
            for replay in replays:
                await broker.publish(replay.value, replay.topic, key=replay.key)
    except KafkaError:
        raise down from None


@dlq_app.command("replay")
def replay(
    campaign: CampaignOption = None,
    reason: ReasonOption = None,
    kind: Annotated[str | None, typer.Option(help="feedback | internal (default: both).")] = None,
    again: Annotated[bool, typer.Option(help="Include letters replayed before.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Say what would be sent; send nothing.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many letters.")] = 10_000,
) -> None:
    """Send the matching dead letters' originals back to the topics they came from."""
    if kind not in (None, "feedback", "internal"):
        raise typer.BadParameter("choose feedback or internal", param_hint="--kind")
    chosen: Kind | None = "feedback" if kind == "feedback" else "internal" if kind else None

    async def matching(db: mongo.Database) -> list[DeadLetter]:
        return await DeadLetterStore(db).matching(campaign, reason, chosen, again, limit)

    letters = on_store(matching)
    sendable: list[Replay] = []
    for letter in letters:
        found = replay_of(letter)
        if isinstance(found, str):
            err.print(f"skipped {letter.dead_letter_id}: {found}")
        else:
            sendable.append(found)
    if dry_run:
        for item in sendable:
            out.print(f"would send {item.dead_letter_id} back to {item.topic}")
        err.print(f"{len(sendable)} of {len(letters)} dead letters would be replayed")
        return
    asyncio.run(_send(sendable))

    async def mark(db: mongo.Database) -> None:
        await DeadLetterStore(db).mark_replayed([r.dead_letter_id for r in sendable], utc_now())

    on_store(mark)
    err.print(f"replayed {len(sendable)} of {len(letters)} dead letters")
