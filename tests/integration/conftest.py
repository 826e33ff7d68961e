"""Integration fixtures: a real Tansu broker and SecantusDB per test module (no mocks)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from crowdsft.adapters import mongo
from crowdsft.adapters.kafka import ensure_topics
from crowdsft.settings import Settings, settings_from
from tests.support.stack import localstack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private stack per module: tests in different modules never see each other's topics."""
    run_dir: Path = tmp_path_factory.mktemp("stack")
    stack = localstack()
    env = stack.up(run_dir)
    env = {**env, "CROWDSFT_MONGO_DB": f"crowdsft_{uuid.uuid4().hex[:8]}", "CROWDSFT_ENV_FILE": ""}
    try:
        yield env
    finally:
        stack.down(run_dir, quiet=True)


@pytest.fixture(scope="module")
def settings(stack_env: dict[str, str]) -> Settings:
    return settings_from(stack_env)


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[mongo.Database]:
    client: AsyncMongoClient[mongo.Document] = mongo.connect(settings)
    database = mongo.database(client, settings)
    await mongo.ensure_indexes(database)
    await ensure_topics(settings)
    yield database
    await client.close()
