"""The command line's way into MongoDB: an unreachable store is one clear line within
seconds, not a half-minute hang and a traceback."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from pymongo.errors import ConnectionFailure

from crowdsft.adapters import mongo
from crowdsft.settings import Settings, load_settings

T = TypeVar("T")
STORE_TIMEOUT_MS = 3_000


def settings_source() -> str:
    env_file = os.environ.get("CROWDSFT_ENV_FILE", ".run/env")
    return env_file if os.path.exists(env_file) else "the environment"


def unreachable(what: str, where: str, setting: str) -> typer.Exit:
    typer.echo(f"error: cannot reach {what} at {where}; settings from {settings_source()}; "
               f"run `make up` or set {setting}", err=True)  # fmt: skip
    return typer.Exit(1)


async def _reachable(settings: Settings) -> None:
    """One ping with a short timeout before anything is retried."""
    client = mongo.connect(settings, STORE_TIMEOUT_MS)
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


def on_store(work: Callable[[mongo.Database], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `work` against the configured database, or exit with one line if it is not there."""
    settings = settings or load_settings()

    async def run() -> T:
        await _reachable(settings)
        async with mongo.opened(settings, STORE_TIMEOUT_MS) as db:
            return await work(db)

    try:
        return asyncio.run(run())
    except ConnectionFailure:
        host = settings.mongo_uri.split("://", 1)[-1].split("@")[-1].split("/")[0]
        raise unreachable("MongoDB", host, "CROWDSFT_MONGO_URI") from None
