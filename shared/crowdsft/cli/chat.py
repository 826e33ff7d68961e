"""`crowdsft chat`: talk to a campaign's current model in the terminal (through serving)."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from crowdsft.cli import app
from crowdsft.cli.store import unreachable
from crowdsft.client import ChatClient, ServiceError
from crowdsft.settings import load_settings

err = Console(stderr=True)


@app.command()
def chat(
    campaign: Annotated[str, typer.Option(help="Campaign id (its current model) or a model id.")],
    token: Annotated[str | None, typer.Option(help="Your token; default: $CROWDSFT_TOKEN.")] = None,
    url: Annotated[str | None, typer.Option(help="Serving's URL; default from settings.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1)] = 200,
    temperature: Annotated[float, typer.Option(min=0, max=2)] = 0.7,
) -> None:
    """A terminal chat; an empty line or Ctrl-D ends it. The conversation is kept per session."""
    settings = load_settings()
    base = url or f"http://{settings.http_host}:{settings.serving_port}"
    secret = token or os.environ.get("CROWDSFT_TOKEN")
    if not secret:
        err.print("[red]a token is needed: --token or CROWDSFT_TOKEN[/red]")
        raise typer.Exit(1)
    asyncio.run(converse(ChatClient(base, secret, timeout_s=600), base, campaign,
                         {"max_tokens": max_tokens, "temperature": temperature}))  # fmt: skip


async def converse(client: ChatClient, base: str, campaign: str, options: dict[str, Any]) -> None:
    messages: list[dict[str, str]] = []
    async with client:
        while True:
            try:
                line = (await asyncio.to_thread(input, "you> ")).strip()
            except EOFError:
                break
            if not line:
                break
            messages.append({"role": "user", "content": line})
            typer.echo("model> ", nl=False)
            answer = ""
            try:
                async for text in client.stream(campaign, messages, **options):
                    answer += text
                    typer.echo(text, nl=False)
            except ServiceError as exc:
                err.print(f"\n[red]{exc}[/red]")
                raise typer.Exit(1) from None
            except httpx.ConnectError:
                raise unreachable("serving", base, "--url or CROWDSFT_SERVING_PORT") from None
            typer.echo()
            messages.append({"role": "assistant", "content": answer})
