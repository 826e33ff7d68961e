"""Integration fixtures: a real Tansu broker and SecantusDB per test module (no mocks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient

from crowdsft.adapters import mongo
from crowdsft.adapters.kafka import ensure_topics
from crowdsft.settings import Settings, settings_from
from tests.support.stack import private_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A private stack per module: tests in different modules never see each other's topics."""
    with private_stack(tmp_path_factory.mktemp("stack"), "crowdsft") as env:
        yield env


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
