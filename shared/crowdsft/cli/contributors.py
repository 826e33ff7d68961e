"""`crowdsft contributor ...`: register contributors and hand out their token once."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

import typer

from crowdsft.adapters import mongo
from crowdsft.adapters.contributor_store import ContributorExists, ContributorStore
from crowdsft.cli import app
from crowdsft.contracts.envelope import ID_PATTERN
from crowdsft.settings import load_settings

contributor_app = typer.Typer(no_args_is_help=True, help="Register contributors.")
app.add_typer(contributor_app, name="contributor")


async def _create(contributor_id: str, name: str | None) -> str:
    async with mongo.opened(load_settings()) as db:
        _, token = await ContributorStore(db).register(contributor_id, name)
        return token


def _valid_id(value: str) -> str:
    if re.fullmatch(ID_PATTERN, value) is None:
        raise typer.BadParameter("letters, digits and _ . : @ - only; at most 64 characters")
    return value


@contributor_app.command("create")
def create(
    contributor_id: Annotated[
        str, typer.Option("--id", help="Contributor id.", callback=_valid_id)
    ],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Register a contributor and print their API token (shown this once only)."""
    try:
        token = asyncio.run(_create(contributor_id, name))
    except ContributorExists:
        typer.echo(
            f"error: contributor {contributor_id} already exists; no new token was issued",
            err=True,
        )
        raise typer.Exit(1) from None
    typer.echo(f"contributor {contributor_id} created")
    typer.echo(token)
    typer.echo(
        "Store this token now: it will not be shown again (only its hash is kept).", err=True
    )
