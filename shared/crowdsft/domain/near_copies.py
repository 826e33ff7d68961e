"""Near-copies: a demonstration that is mostly someone else's earlier text earns nothing.

Exact copies (after `text.canonical`) share a content hash and are refused at once. A copy with
a few words changed does not, so each long enough text gets a MinHash signature of its
character 5-grams, whose agreement estimates their Jaccard similarity, and its locality-
sensitive band keys: two texts whose similarity passes the threshold share a band key with
high probability (16 bands of 4 rows: 0.7 similar, 98.8% of pairs; 0.3 similar, 12%; 0.1,
0.2%), so a candidate is found by key, never by comparing with every stored text, and its
full signature then decides. One word changed in a 90-character text leaves 0.72-0.84.

Pure and vectorised: a text costs one numpy pass over its shingles (tens of microseconds),
which is why the hash is multiply-shift in numpy rather than a per-shingle Python hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

SHINGLE = 5
# Shorter canonical texts are judged only as exact copies: two people may well write the same
# short phrase.
MIN_CHARS = 64
BANDS = 16
ROWS = 4
NUM_PERM = BANDS * ROWS
# Fixed, so that every intake replica and every restart computes the same signatures.
_RANDOM = np.random.default_rng(0x5EED_C0DE)
_MULTIPLIERS = _RANDOM.integers(1, 2**63, NUM_PERM, dtype=np.uint64) | np.uint64(1)
_OFFSETS = _RANDOM.integers(0, 2**63, NUM_PERM, dtype=np.uint64)

Signature = NDArray[np.uint32]


@dataclass(frozen=True)
class Fingerprint:
    """What deciding which of two texts is the copy needs: the later submission is."""

    contribution_id: str
    campaign_id: str
    submitted_at: datetime
    signature: Signature

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.submitted_at, self.contribution_id)


@dataclass(frozen=True)
class NearCopy:
    copy_id: str
    original_id: str
    similarity: float


@dataclass(frozen=True)
class FlaggedCopy:
    """A near-copy and the submission behind it: who is told, and about which event."""

    verdict: NearCopy
    campaign_id: str
    contributor_id: str
    submission_event_id: str


def demonstration_text(canonical_response: str, canonical_correction: str) -> str:
    """What is compared: the answer and its correction, already canonical."""
    return " ".join(part for part in (canonical_response, canonical_correction) if part)


def encode(sig: Signature) -> str:
    return base64.b64encode(sig.astype("<u4").tobytes()).decode()


def decode(text: str) -> Signature | None:
    """None for anything that is not a signature (an event may come from anywhere)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != NUM_PERM * 4:
        return None
    return np.frombuffer(raw, dtype="<u4").astype(np.uint32)


def signature(text: str, min_chars: int = MIN_CHARS) -> Signature | None:
    """MinHash of a canonical text's byte 5-grams; None when it is too short to tell a
    near-copy from two people writing the same short phrase."""
    data = np.frombuffer(text.encode(), dtype=np.uint8).astype(np.uint64)
    if len(text) < min_chars or len(data) < SHINGLE:
        return None
    n = len(data) - SHINGLE + 1
    shingles = np.zeros(n, dtype=np.uint64)
    for k in range(SHINGLE):
        shingles = (shingles << np.uint64(8)) | data[k : k + n]
    # Multiply-shift hashing (wrapping uint64 arithmetic), the top 32 bits kept; a repeated
    # shingle repeats its hash, which leaves every minimum as it is, so no dedup pass.
    hashed = (shingles[:, None] * _MULTIPLIERS[None, :] + _OFFSETS[None, :]) >> np.uint64(32)
    minima: Signature = hashed.min(axis=0).astype(np.uint32)
    return minima


def band_keys(campaign_id: str, sig: Signature) -> list[str]:
    """One key per band; scoped to the campaign, where copying pays."""
    keys = []
    for band in range(BANDS):
        rows = sig[band * ROWS : (band + 1) * ROWS].tobytes()
        digest = hashlib.blake2b(rows, digest_size=8).hexdigest()
        keys.append(f"{campaign_id}:{band}:{digest}")
    return keys


def similarity(a: Signature, b: Signature) -> float:
    """The share of agreeing minima: an unbiased estimate of the Jaccard similarity."""
    return float(np.mean(a == b))


def judge(a: Fingerprint, b: Fingerprint, threshold: float) -> NearCopy | None:
    """The later of two similar texts is the copy of the earlier, whichever was seen first."""
    if a.contribution_id == b.contribution_id or a.campaign_id != b.campaign_id:
        return None
    score = similarity(a.signature, b.signature)
    if score < threshold:
        return None
    original, copy = sorted((a, b), key=lambda f: f.order)
    return NearCopy(copy.contribution_id, original.contribution_id, score)


class CampaignIndex:
    """One campaign's band keys in memory, for the one consumer that owns the campaign's
    partition: each band names the first text that reached it, so a new text meets every
    earlier text it shares a band with in a few dictionary lookups."""

    def __init__(self, threshold: float, known: Iterable[Fingerprint] = ()) -> None:
        self._threshold = threshold
        self._owners: dict[str, str] = {}
        self._fingerprints: dict[str, Fingerprint] = {}
        for fingerprint in sorted(known, key=lambda f: f.order):
            self.add(fingerprint)

    def __len__(self) -> int:
        return len(self._fingerprints)

    def add(self, fingerprint: Fingerprint) -> list[NearCopy]:
        """The near-copies this text takes part in (as the copy, or as an earlier original
        met late); adding a known text again judges it again, the same way."""
        mine = self._fingerprints.setdefault(fingerprint.contribution_id, fingerprint)
        candidates = {
            self._owners.setdefault(key, mine.contribution_id)
            for key in band_keys(mine.campaign_id, mine.signature)
        } - {mine.contribution_id}
        verdicts = (
            judge(mine, self._fingerprints[owner], self._threshold) for owner in sorted(candidates)
        )
        return [verdict for verdict in verdicts if verdict is not None]
