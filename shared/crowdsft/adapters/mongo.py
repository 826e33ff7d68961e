"""MongoDB connection and the indexes that make every consumer idempotent."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, BulkWriteError, CollectionInvalid, OperationFailure
from pymongo.write_concern import WriteConcern

from crowdsft.settings import Settings

log = structlog.get_logger("crowdsft.mongo")

Document = dict[str, Any]
DUPLICATE_KEY = 11000
ENSURE_ATTEMPTS = 8
Database = AsyncDatabase[Document]

CONTRIBUTIONS = "contributions"
SUBMISSIONS = "submissions"
REJECTIONS = "rejections"
CAMPAIGNS = "campaigns"
CONTRIBUTORS = "contributors"
ROUNDS = "rounds"
MODELS = "models"
ARTIFACTS = "artifacts"
SHAPLEY = "shapley"
FINGERPRINTS = "fingerprints"
RATE_LIMITS = "rate_limits"
RATE_LIMIT_SHARES = "rate_limit_shares"  # one per gateway replica and window (synced counts)
DEAD_LETTERS = "dead_letters"
CHUNKS = "chunks"

INDEXES: dict[str, list[IndexModel]] = {
    # Keyed by content hash and event id through `_id` alone: see contribution_store. No
    # secondary index: on SecantusDB each one made intake's inserts 2-3 times as slow
    # (2,000 documents: 0.28 s bare, 0.65 s with a campaign index, 0.9 s with two), and a
    # campaign's contributions are read again only when its crowd changed.
    CONTRIBUTIONS: [],
    # A contributor's own submissions and refusals, for their status page.
    SUBMISSIONS: [IndexModel([("contributor_id", ASCENDING)], name="by_contributor")],
    REJECTIONS: [
        IndexModel([("reason", ASCENDING)], name="by_reason"),
        IndexModel(
            [("contributor_id", ASCENDING), ("recorded_at", DESCENDING)], name="by_contributor"
        ),
    ],
    CONTRIBUTORS: [IndexModel([("token_hash", ASCENDING)], unique=True, name="by_token_hash")],
    CAMPAIGNS: [],
    # Rounds ("<campaign>:<index>"), models (lineage; model ids) and Shapley values (per
    # campaign) are keyed by deterministic `_id`s, so replays overwrite nothing new.
    ROUNDS: [IndexModel([("campaign_id", ASCENDING), ("round_index", ASCENDING)], name="by_round")],
    MODELS: [IndexModel([("campaign_id", ASCENDING), ("round_index", ASCENDING)], name="by_round")],
    SHAPLEY: [],
    # Per-member columns of rounds, standings and Shapley values, read by `_id` range.
    CHUNKS: [],
    ARTIFACTS: [],
    # Keyed by contribution id; read back a campaign at a time.
    FINGERPRINTS: [IndexModel([("campaign_id", ASCENDING)], name="by_campaign")],
    RATE_LIMITS: [IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl")],
    RATE_LIMIT_SHARES: [
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl"),
        IndexModel([("window", ASCENDING)], name="by_window"),
    ],
    # Keyed by the dead letter's event id; counted by reason, listed per campaign.
    DEAD_LETTERS: [
        IndexModel(
            [("kind", ASCENDING), ("source_topic", ASCENDING), ("reason", ASCENDING)],
            name="by_reason",
        ),
        IndexModel([("campaign_id", ASCENDING), ("recorded_at", DESCENDING)], name="by_campaign"),
    ],
}


def connect(settings: Settings, timeout_ms: int | None = None) -> AsyncMongoClient[Document]:
    """`timeout_ms` bounds server selection: an HTTP service answers 503 rather than hang."""
    options: dict[str, Any] = {"tz_aware": True}
    if timeout_ms is not None:
        options["serverSelectionTimeoutMS"] = timeout_ms
    return AsyncMongoClient(settings.mongo_uri, **options)


# An acknowledged write survives a crash of the store: on SecantusDB a SIGKILL lost 600 of
# 42,000 acknowledged inserts with the default and none of 35,500 with this
# (bench/store_crash.py); on a MongoDB replica set it waits for a majority's journals.
DURABLE = WriteConcern("majority", j=True)


def database(client: AsyncMongoClient[Document], settings: Settings) -> Database:
    db = client[settings.mongo_db]
    return db.with_options(write_concern=DURABLE) if settings.mongo_durable_writes else db


async def _create_missing(db: Database) -> None:
    existing = set(await db.list_collection_names())
    for name, indexes in INDEXES.items():
        if name not in existing:
            with contextlib.suppress(CollectionInvalid):  # another service made it first
                await db.create_collection(name)
        if indexes:
            await db[name].create_indexes(indexes)


async def ensure_indexes(db: Database, attempts: int = ENSURE_ATTEMPTS) -> None:
    """Idempotent and retried: every service calls it at start-up, all at once on a fresh
    database, and a store creating the same collection or index for two clients can refuse
    one of them; so no deploy step can be forgotten and no start order matters."""
    for attempt in range(1, attempts + 1):
        try:
            await _create_missing(db)
            return
        except (OperationFailure, CollectionInvalid, AutoReconnect) as exc:
            if attempt == attempts:
                raise
            log.warning("creating collections and indexes failed; retrying",
                        attempt=attempt, error=str(exc)[:200])  # fmt: skip
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + random.random()))


@asynccontextmanager
async def opened(settings: Settings, timeout_ms: int | None = None) -> AsyncIterator[Database]:
    """The database with every collection and index in place; the client closes on exit."""
    client = connect(settings, timeout_ms)
    try:
        db = database(client, settings)
        await ensure_indexes(db)
        yield db
    finally:
        await client.close()


async def insert_new(collection: Any, docs: list[Document]) -> set[int]:
    """Bulk insert; returns the indexes whose `_id` already existed (any other error raises)."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return {int(error["index"]) for error in errors}
    return set()
