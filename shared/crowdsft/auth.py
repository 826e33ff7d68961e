"""Contributor tokens: generated once, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "csft_"
TOKEN_BYTES = 32


def new_token() -> str:
    """A random bearer token; the prefix makes leaked tokens easy to spot in scanners."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex of the token, the only form ever stored.

    The token carries 256 random bits, so it cannot be guessed or brute-forced from its
    hash: a slow password KDF (bcrypt, argon2) adds nothing. A fast, deterministic hash also
    lets the store find the contributor with one lookup on its unique `token_hash` index,
    instead of comparing secrets in Python.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Cheap shape check, so obvious junk is refused without a database round trip."""
    return value.startswith(TOKEN_PREFIX) and len(value) > len(TOKEN_PREFIX)


def is_operator_token(token: str, configured_sha256: str | None) -> bool:
    """Operators hold one token, configured only by its hash; none configured, none valid."""
    if configured_sha256 is None:
        return False
    return hmac.compare_digest(hash_token(token), configured_sha256.lower())
