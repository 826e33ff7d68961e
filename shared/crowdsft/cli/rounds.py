"""`crowdsft round start`: ask selection to open a campaign's next (or a given) round."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.kafka import announcer, started_broker
from crowdsft.cli import app
from crowdsft.cli.store import on_store
from crowdsft.contracts import StartRound
from crowdsft.domain.campaign import CampaignSpec, CampaignState
from crowdsft.settings import load_settings

round_app = typer.Typer(no_args_is_help=True, help="Run a campaign's rounds.")
app.add_typer(round_app, name="round")
err = Console(stderr=True)


async def _campaign(
    db: mongo.Database, campaign_id: str
) -> tuple[CampaignSpec | None, CampaignState | None]:
    store = CampaignStore(db)
    return await store.spec(campaign_id), await store.state(campaign_id)


def start_command(campaign_id: str, round_index: int) -> StartRound:
    return StartRound.asking(campaign_id, round_index, producer="cli")


async def _publish(command: StartRound) -> None:
    async with started_broker(load_settings(), "crowdsft-cli") as broker:
        await announcer(broker)([(command.campaign_id, command)])


@round_app.command("start")
def start(
    campaign: Annotated[str, typer.Option(help="Campaign id.")],
    round_index: Annotated[
        int | None,
        typer.Option("--round", min=0, help="Round to open; default: the campaign's next one."),
    ] = None,
) -> None:
    """Publish StartRound; selection opens the round if it is the next one."""
    spec, state = on_store(lambda db: _campaign(db, campaign))
    if spec is None or state is None:
        err.print(
            f"[red]campaign {escape(repr(campaign))} runs no rounds[/red] (unknown, or "
            "created without --target; see `crowdsft campaign create --help`)"
        )
        raise typer.Exit(1)
    index = state.next_round if round_index is None else round_index
    if index != state.next_round:
        err.print(
            f"[yellow]round {index} is not the next one ({state.next_round}): "
            "selection will ignore it[/yellow]"
        )
    elif index >= spec.policy.max_rounds:
        err.print(
            f"[yellow]the campaign's {spec.policy.max_rounds} rounds are done: "
            "selection will ignore it[/yellow]"
        )
    command = start_command(campaign, index)
    asyncio.run(_publish(command))
    typer.echo(command.event_id)
    err.print(f"asked to start round {index} of {campaign}")
