"""Registered contributors: an id, a name and the hash of their bearer token."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo.errors import DuplicateKeyError

from crowdsft.adapters.mongo import CONTRIBUTORS, Database, Document
from crowdsft.auth import hash_token, looks_like_token, new_token


class ContributorExists(Exception):
    """The id is taken: tokens are never re-issued by creating a contributor again."""

    def __init__(self, contributor_id: str) -> None:
        super().__init__(f"contributor {contributor_id!r} already exists")
        self.contributor_id = contributor_id


@dataclass(frozen=True)
class Contributor:
    contributor_id: str
    name: str
    created_at: datetime


def _contributor(doc: Document) -> Contributor:
    return Contributor(doc["_id"], doc.get("name") or doc["_id"], doc["created_at"])


TOKENS_KEPT = 100_000  # cached tokens per process; past it the cache starts afresh


class ContributorStore:
    """`token_cache_s` > 0: a token found is trusted that long without a store round trip
    (the HTTP services' setting `http_token_cache_s`); unknown tokens are always looked up."""

    def __init__(self, db: Database, token_cache_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._contributors = db[CONTRIBUTORS]
        self._token_cache_s = token_cache_s
        self._clock = clock
        self._known: dict[str, tuple[Contributor, float]] = {}

    async def register(
        self, contributor_id: str, name: str | None = None, credit_by_name: bool = False
    ) -> tuple[Contributor, str]:
        """Store a new contributor; returns it with its token, which exists nowhere else.
        `credit_by_name`: exported datasets and models may name them (never by default)."""
        token = new_token()
        doc: Document = {
            "_id": contributor_id,
            "name": name or contributor_id,
            "token_hash": hash_token(token),
            "created_at": datetime.now(UTC),
            "credit_by_name": credit_by_name,
        }
        try:
            await self._contributors.insert_one(doc)
        except DuplicateKeyError as exc:
            key = (exc.details or {}).get("keyPattern") or {}
            if "token_hash" in key:
                raise  # 256 random bits collided: not a user error, never hide it
            raise ContributorExists(contributor_id) from exc
        return _contributor(doc), token

    async def rotate_token(self, contributor_id: str) -> str | None:
        """A new token for an existing contributor; the old one stops working in this process
        at once and in services that cache tokens within their `http_token_cache_s` (only one
        hash is kept). None if there is no such contributor."""
        token = new_token()
        updated = await self._contributors.update_one(
            {"_id": contributor_id}, {"$set": {"token_hash": hash_token(token)}}
        )
        self._known = {
            h: c for h, c in self._known.items() if c[0].contributor_id != contributor_id
        }
        return token if updated.matched_count else None

    async def find_by_token(self, token: str) -> Contributor | None:
        """One lookup on the unique token_hash index unless recently found; None for unknown
        or malformed tokens."""
        if not looks_like_token(token):
            return None
        token_hash = hash_token(token)
        now = self._clock()
        known = self._known.get(token_hash)
        if known is not None and known[1] > now:
            return known[0]
        doc = await self._contributors.find_one({"token_hash": token_hash})
        if doc is None:
            self._known.pop(token_hash, None)
            return None
        contributor = _contributor(doc)
        if self._token_cache_s > 0:
            if len(self._known) >= TOKENS_KEPT:
                self._known.clear()
            self._known[token_hash] = (contributor, now + self._token_cache_s)
        return contributor

    async def credited(self, contributor_ids: list[str]) -> dict[str, str]:
        """Of these, the contributors who opted in to be named, with their display names."""
        found = self._contributors.find(
            {"_id": {"$in": contributor_ids}, "credit_by_name": True}, {"name": 1}
        )
        return {str(doc["_id"]): str(doc.get("name") or doc["_id"]) async for doc in found}

    async def exists(self, contributor_id: str) -> bool:
        return await self._contributors.count_documents({"_id": contributor_id}, limit=1) > 0
