"""`crowdsft campaign ...`: campaigns feedback can be submitted to."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.cli import app
from crowdsft.settings import load_settings

campaign_app = typer.Typer(no_args_is_help=True, help="Create and inspect campaigns.")
app.add_typer(campaign_app, name="campaign")


async def _create(campaign_id: str, name: str | None) -> bool:
    async with mongo.opened(load_settings()) as db:
        return await CampaignStore(db).create(campaign_id, name)


@campaign_app.command("create")
def create(
    campaign_id: Annotated[str, typer.Option("--id", help="Campaign id.")],
    name: Annotated[str | None, typer.Option(help="Human-readable name.")] = None,
) -> None:
    """Create a campaign (creating it twice is harmless)."""
    created = asyncio.run(_create(campaign_id, name))
    typer.echo(f"campaign {campaign_id} {'created' if created else 'already exists'}")
