"""A reproducible stream of feedback records: valid, malformed in assorted ways, duplicated."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crowdsft.contracts import FeedbackSubmitted
from crowdsft.contracts.feedback import MAX_MESSAGE_BYTES, RejectionReason

# Filler words: any two comments share few 5-grams, so none is a near-copy of another.
WORDS = [f"{a}{b}{c}" for a in "bdfgklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")
         for c in ("n", "r", "s", "t", "ck", "ll", "mp")]  # fmt: skip


@dataclass
class Corpus:
    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    valid_ids: set[str] = field(default_factory=set)
    malformed: dict[bytes, RejectionReason] = field(default_factory=dict)
    replays: int = 0
    content_duplicates: int = 0


def feedback(
    campaign_id: str, contributor_id: str, n: int, rng: random.Random
) -> FeedbackSubmitted:
    return FeedbackSubmitted(
        event_id=str(uuid.UUID(int=rng.getrandbits(128))),
        producer="test",
        campaign_id=campaign_id,
        contributor_id=contributor_id,
        prompt="write a reddit comment.",
        response=f"comment {n} from {contributor_id}: "
        + " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 40))),
        rating=rng.choice([None, 1, 3, 5]),
        client_timestamp=datetime(2026, 1, 1, tzinfo=UTC),
    )


def _malformed_value(
    n: int, valid: dict[str, object], rng: random.Random
) -> tuple[bytes, RejectionReason]:
    """The n-th malformed record: one of ten kinds, each value unique."""
    broken = dict(valid, event_id=str(uuid.UUID(int=rng.getrandbits(128))))
    match n % 10:
        case 0:
            return json.dumps(broken).encode()[:-7], RejectionReason.BAD_JSON
        case 1:
            return b"\xff\xfe not utf-8 \x80 %d" % n, RejectionReason.BAD_JSON
        case 2:
            return b'["a list", "not an object", %d]' % n, RejectionReason.BAD_JSON
        case 3:
            return json.dumps(dict(broken, rating="five")).encode(), RejectionReason.INVALID_FIELDS
        case 4:
            broken.pop("response")
            return json.dumps(broken).encode(), RejectionReason.INVALID_FIELDS
        case 5:
            return json.dumps(dict(broken, prompt="   ")).encode(), RejectionReason.INVALID_FIELDS
        case 6:
            padding = "x" * (MAX_MESSAGE_BYTES + 10)
            return json.dumps(dict(broken, response=padding)).encode(), RejectionReason.OVERSIZE
        case 7:
            return json.dumps(dict(broken, contributor_id="no spaces allowed")).encode(), (
                RejectionReason.INVALID_FIELDS
            )
        case 8:
            value = json.dumps(dict(broken, event_type="round.decided")).encode()
            return value, RejectionReason.UNKNOWN_EVENT_TYPE
        case _:
            return json.dumps(dict(broken, campaign_id="no-such-campaign")).encode(), (
                RejectionReason.UNKNOWN_CAMPAIGN
            )


def build_corpus(campaign_id: str, total: int = 1000, seed: int = 7) -> Corpus:
    """10% malformed (ten kinds), 5% duplicates (half replays, half same content)."""
    rng = random.Random(seed)
    n_malformed, n_duplicates = total // 10, total // 20
    n_valid = total - n_malformed - n_duplicates
    corpus = Corpus()
    originals: list[tuple[bytes, FeedbackSubmitted]] = []
    for n in range(n_valid):
        event = feedback(campaign_id, f"user{n % 97}", n, rng)
        value = event.model_dump_json().encode()
        originals.append((value, event))
        corpus.records.append((event.contributor_id.encode(), value))
        corpus.valid_ids.add(event.event_id)
    template = json.loads(originals[0][0])
    for n in range(n_malformed):
        value, reason = _malformed_value(n, template, rng)
        corpus.records.append((b"bad", value))
        corpus.malformed[value] = reason
    for n in range(n_duplicates):
        value, event = originals[rng.randrange(len(originals) // 2)]
        if n % 2 == 0:
            corpus.records.append((event.contributor_id.encode(), value))
            corpus.replays += 1
        else:
            spaced = event.response.replace(" ", "  ", 1) + " "
            twin = event.model_copy(
                update={"event_id": str(uuid.UUID(int=rng.getrandbits(128))), "response": spaced}
            )
            corpus.records.append((event.contributor_id.encode(), twin.model_dump_json().encode()))
            corpus.content_duplicates += 1
    # Keep every original ahead of its duplicates, shuffle the rest of the stream.
    head, tail = corpus.records[: n_valid // 2], corpus.records[n_valid // 2 :]
    rng.shuffle(head)
    rng.shuffle(tail)
    corpus.records = head + tail
    return corpus
