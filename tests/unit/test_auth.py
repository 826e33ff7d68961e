"""Tokens: random, recognisable, and stored only as a deterministic hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.adapters.mongo import CONTRIBUTORS
from crowdsft.auth import TOKEN_PREFIX, hash_token, looks_like_token, new_token


def test_tokens_are_prefixed_and_unique() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(token.startswith(TOKEN_PREFIX) for token in tokens)
    # 32 random bytes in urlsafe base64 are 43 characters.
    assert all(len(token) == len(TOKEN_PREFIX) + 43 for token in tokens)


def test_hash_is_sha256_hex_and_never_the_token() -> None:
    token = new_token()
    digest = hash_token(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert digest == hash_token(token)
    assert token not in digest and len(digest) == 64
    assert hash_token(token + "x") != digest


def test_shape_check_refuses_junk() -> None:
    assert looks_like_token(new_token())
    assert not looks_like_token("")
    assert not looks_like_token(TOKEN_PREFIX)
    assert not looks_like_token("Bearer abc")


class Contributors:
    """The contributors collection as `find_one` sees it, counting the store's round trips."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.lookups = 0

    async def find_one(self, query: dict[str, str]) -> dict[str, Any] | None:
        self.lookups += 1
        return next((d for d in self.docs.values() if d["token_hash"] == query["token_hash"]),
                    None)  # fmt: skip


async def test_a_found_token_is_trusted_for_the_cache_time_then_asked_again() -> None:
    collection, now = Contributors(), [0.0]
    store = ContributorStore({CONTRIBUTORS: collection}, token_cache_s=2.0,  # type: ignore[arg-type]
                             clock=lambda: now[0])  # fmt: skip
    token = new_token()
    collection.docs["ann"] = {"_id": "ann", "token_hash": hash_token(token),
                              "created_at": datetime.now(UTC)}  # fmt: skip
    assert (await store.find_by_token(token)).contributor_id == "ann"  # type: ignore[union-attr]
    now[0] = 1.9
    assert (await store.find_by_token(token)) is not None and collection.lookups == 1
    collection.docs["ann"]["token_hash"] = hash_token(new_token())  # rotated elsewhere
    now[0] = 2.1
    assert await store.find_by_token(token) is None and collection.lookups == 2
    # Unknown tokens are never cached: each is a lookup (and the anonymous limit's business).
    unknown = new_token()
    assert await store.find_by_token(unknown) is None
    assert await store.find_by_token(unknown) is None and collection.lookups == 4


async def test_without_a_cache_time_every_request_asks_the_store() -> None:
    collection = Contributors()
    store = ContributorStore({CONTRIBUTORS: collection})  # type: ignore[arg-type]
    token = new_token()
    collection.docs["bo"] = {"_id": "bo", "token_hash": hash_token(token),
                             "created_at": datetime.now(UTC)}  # fmt: skip
    for _ in range(3):
        assert await store.find_by_token(token) is not None
    assert collection.lookups == 3
