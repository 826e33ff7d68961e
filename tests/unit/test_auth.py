"""Tokens: random, recognisable, and stored only as a deterministic hash."""

from __future__ import annotations

import hashlib

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
