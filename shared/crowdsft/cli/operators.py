"""`crowdsft operator token`: a token for the gateway's operator endpoints, shown once."""

from __future__ import annotations

import typer

from crowdsft.auth import hash_token, new_token
from crowdsft.cli import app

operator_app = typer.Typer(no_args_is_help=True, help="Operator credentials.")
app.add_typer(operator_app, name="operator")


@operator_app.command("token")
def token() -> None:
    """Print a new operator token alone on stdout (`TOKEN=$(crowdsft operator token)`); the
    setting that makes the services accept it goes to stderr."""
    secret = new_token()
    typer.echo(secret)
    typer.echo("operator token above (shown once, keep it secret); services accept it with",
               err=True)  # fmt: skip
    typer.echo(f"CROWDSFT_GATEWAY_OPERATOR_TOKEN_SHA256={hash_token(secret)}", err=True)
