"""`crowdsft contributor ...`: register contributors and hand out their token once."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from crowdsft.adapters import mongo
from crowdsft.adapters.contributor_store import ContributorExists, ContributorStore
from crowdsft.cli import app
from crowdsft.cli.store import on_store
from crowdsft.contracts.envelope import ID_PATTERN

contributor_app = typer.Typer(no_args_is_help=True, help="Register contributors, rotate tokens.")
app.add_typer(contributor_app, name="contributor")


async def _create(db: mongo.Database, contributor_id: str, name: str | None,
                  credit_by_name: bool) -> str:  # fmt: skip
    _, token = await ContributorStore(db).register(contributor_id, name, credit_by_name)
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
    credit_by_name: Annotated[
        bool,
        typer.Option(help="Name them in exported datasets and model cards (opt-in)."),
    ] = False,
) -> None:
    """Register a contributor and print their API token (shown this once only)."""
    try:
        token = on_store(lambda db: _create(db, contributor_id, name, credit_by_name))
    except ContributorExists:
        typer.echo(
            f"error: contributor {contributor_id} already exists; no new token was issued",
            err=True,
        )
        raise typer.Exit(1) from None
    typer.echo(f"contributor {contributor_id} created", err=True)
    typer.echo(token)  # alone on stdout: TOKEN=$(crowdsft contributor create --id ...)
    typer.echo(
        "Store this token now: it will not be shown again (only its hash is kept).", err=True
    )


@contributor_app.command("rotate-token")
def rotate_token(
    contributor_id: Annotated[
        str, typer.Option("--id", help="Contributor id.", callback=_valid_id)
    ],
) -> None:
    """Issue a new API token (printed this once only); the old one stops working within the
    services' token cache time (`http_token_cache_s`, 30 s by default)."""
    token = on_store(lambda db: ContributorStore(db).rotate_token(contributor_id))
    if token is None:
        typer.echo(f"error: no contributor {contributor_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"contributor {contributor_id}: new token issued; the old one no longer works "
               "(services that cache tokens refuse it within http_token_cache_s)",
               err=True)  # fmt: skip
    typer.echo(token)
