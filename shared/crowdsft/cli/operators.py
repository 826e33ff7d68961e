"""`crowdsft operator token`: a token for the gateway's operator endpoints, shown once."""

from __future__ import annotations

import typer

from crowdsft.auth import hash_token, new_token
from crowdsft.cli import app

operator_app = typer.Typer(no_args_is_help=True, help="Operator credentials.")
app.add_typer(operator_app, name="operator")


@operator_app.command("token")
def token() -> None:
    """Print a new operator token and the setting that makes the gateway accept it."""
    secret = new_token()
    typer.echo(f"token (shown once, keep it secret): {secret}")
    typer.echo(f"gateway setting: CROWDSFT_GATEWAY_OPERATOR_TOKEN_SHA256={hash_token(secret)}")
