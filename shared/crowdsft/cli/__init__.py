"""The `crowdsft` command line: one Typer app, each command group in its own module."""

import typer

app = typer.Typer(no_args_is_help=True, help="Open, crowd-sourced fine-tuning with fair points.")


def main() -> None:
    from crowdsft.cli import commands  # noqa: F401  (registers the command groups)

    app()
