"""The `crowdsft` command line: one Typer app, each command group in its own module."""

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Open, crowd-sourced fine-tuning with fair points.")


def _version(shown: bool) -> None:
    if shown:
        from importlib.metadata import version

        typer.echo(f"crowdsft {version('crowdsft')}")
        raise typer.Exit()


@app.callback()
def _plugins(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Backends named in CROWDSFT_BACKEND_MODULES register before any spec is read."""
    from crowdsft.domain.backends import load_plugins
    from crowdsft.settings import load_settings

    load_plugins(load_settings().backend_modules)


def main() -> None:
    from crowdsft.cli import commands  # noqa: F401  (registers the command groups)

    app()
