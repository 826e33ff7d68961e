"""`crowdsft schemas write|check`: the generated contract documents under schemas/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crowdsft.cli import app
from crowdsft.contracts import export

schemas_app = typer.Typer(no_args_is_help=True, help="Generated JSON Schemas and AsyncAPI.")
app.add_typer(schemas_app, name="schemas")

Directory = Annotated[Path, typer.Option(help="Where the documents live.")]


@schemas_app.command("write")
def write(directory: Directory = Path("schemas")) -> None:
    """Regenerate every schema file from the event models."""
    for path in export.write(directory):
        typer.echo(path)


@schemas_app.command("check")
def check(directory: Directory = Path("schemas")) -> None:
    """Exit 1 when any generated file is stale."""
    problems = export.stale(directory)
    for name in problems:
        typer.echo(f"stale: {name}", err=True)
    raise typer.Exit(1 if problems else 0)
