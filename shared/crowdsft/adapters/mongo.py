"""MongoDB connection and the indexes that make every consumer idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from crowdsft.settings import Settings

Document = dict[str, Any]
Database = AsyncDatabase[Document]

CONTRIBUTIONS = "contributions"
SUBMISSIONS = "submissions"
REJECTIONS = "rejections"
CAMPAIGNS = "campaigns"
CONTRIBUTORS = "contributors"
BALANCES = "balances"
LEDGER = "ledger"
ROUNDS = "rounds"
MODELS = "models"
ARTIFACTS = "artifacts"
SHAPLEY = "shapley"

INDEXES: dict[str, list[IndexModel]] = {
    # Keyed by content hash and event id through `_id` alone: see contribution_store.
    CONTRIBUTIONS: [],
    SUBMISSIONS: [],
    REJECTIONS: [IndexModel([("reason", ASCENDING)], name="by_reason")],
    CONTRIBUTORS: [IndexModel([("token_hash", ASCENDING)], unique=True, name="by_token_hash")],
    BALANCES: [
        IndexModel(
            [("campaign_id", ASCENDING), ("contributor_id", ASCENDING)],
            unique=True,
            name="one_per_campaign_contributor",
        ),
        IndexModel([("campaign_id", ASCENDING), ("points", DESCENDING)], name="leaderboard"),
    ],
    LEDGER: [
        # A replayed round decision never pays twice.
        IndexModel(
            [
                ("campaign_id", ASCENDING),
                ("round_id", ASCENDING),
                ("contributor_id", ASCENDING),
                ("rule", ASCENDING),
            ],
            unique=True,
            name="one_entry_per_round_rule",
        ),
        IndexModel(
            [("contributor_id", ASCENDING), ("recorded_at", DESCENDING)], name="by_contributor"
        ),
    ],
    CAMPAIGNS: [],
    # Rounds ("<campaign>:<index>"), models (lineage; model ids) and Shapley values (per
    # campaign) are keyed by deterministic `_id`s, so replays overwrite nothing new.
    ROUNDS: [IndexModel([("campaign_id", ASCENDING), ("round_index", ASCENDING)], name="by_round")],
    MODELS: [IndexModel([("campaign_id", ASCENDING), ("round_index", ASCENDING)], name="by_round")],
    SHAPLEY: [],
    ARTIFACTS: [],
}


def connect(settings: Settings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(settings.mongo_uri, tz_aware=True)


def database(client: AsyncMongoClient[Document], settings: Settings) -> Database:
    return client[settings.mongo_db]


async def ensure_indexes(db: Database) -> None:
    """Idempotent: every service calls it at start-up, so no deploy step can be forgotten."""
    existing = set(await db.list_collection_names())
    for name, indexes in INDEXES.items():
        if name not in existing:
            await db.create_collection(name)
        if indexes:
            await db[name].create_indexes(indexes)


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Database]:
    """The database with every collection and index in place; the client closes on exit."""
    client = connect(settings)
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        yield db
    finally:
        await client.close()
