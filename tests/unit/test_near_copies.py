"""Near-copies: MinHash estimates the Jaccard similarity of character 5-grams, LSH bands find
similar texts by key, and the later of two similar texts is the copy, whichever side meets
the pair; selection's screening flags a copy and tells its sender, and a replay says the same."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from crowdsft.contracts import FeedbackAccepted, FeedbackRejected, topics
from crowdsft.contracts.feedback import RejectionReason
from crowdsft.domain import near_copies
from crowdsft.domain.crowd import Contribution
from crowdsft.domain.near_copies import Fingerprint, band_keys, judge, signature, similarity
from crowdsft.domain.text import canonical
from services.selection.screening import Screening
from tests.support.corpus import WORDS
from tests.support.fakes import FakeBus, FakeContributions, FakeNearCopies

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def shingle_jaccard(a: str, b: str) -> float:
    def grams(text: str) -> set[bytes]:
        data = text.encode()
        return {data[i : i + 5] for i in range(len(data) - 4)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(n)]


def edited(text: str, changes: int, rng: random.Random) -> str:
    out = text.split()
    for _ in range(changes):
        out[rng.randrange(len(out))] = rng.choice(WORDS)
    return " ".join(out)


def sig(text: str) -> np.ndarray:
    found = signature(near_copies.demonstration_text(canonical(text), ""), min_chars=16)
    assert found is not None
    return found


def test_the_signature_estimates_jaccard_without_bias() -> None:
    rng = random.Random(5)
    errors = []
    for _ in range(300):
        text = " ".join(words(rng, 30))
        other = edited(text, rng.randint(0, 12), rng)
        errors.append(similarity(sig(text), sig(other)) - shingle_jaccard(text, other))
    # 64 minima: the standard error of one estimate is at most 0.5 / 8 = 0.0625.
    assert abs(np.mean(errors)) < 0.01
    assert np.std(errors) < 0.0625


def test_disguises_do_not_change_the_signature_and_short_texts_get_none() -> None:
    text = "Thank you so much for sharing this, it made my whole week brighter than before"
    disguised = text.upper().replace(",", "!").replace("e", "e\u200b", 1)
    assert np.array_equal(sig(text), sig(disguised))
    assert signature(near_copies.demonstration_text(canonical("thanks, lovely!"), "")) is None


def test_a_near_copy_shares_a_band_and_strangers_do_not() -> None:
    rng = random.Random(9)
    shared = strangers = 0
    for _ in range(100):
        text = " ".join(words(rng, 40))
        copy, stranger = edited(text, 1, rng), " ".join(words(rng, 40))
        keys = set(band_keys("c", sig(text)))
        shared += bool(keys & set(band_keys("c", sig(copy))))
        strangers += bool(keys & set(band_keys("c", sig(stranger))))
    assert shared >= 95 and strangers == 0
    assert not set(band_keys("c", sig(text))) & set(band_keys("d", sig(text)))


def test_the_later_of_two_similar_texts_is_the_copy_from_either_side() -> None:
    text = "this is a long enough demonstration that somebody wrote first, with care"
    first = Fingerprint("a", "c", T0, sig(text))
    later = Fingerprint("b", "c", T0 + timedelta(seconds=1), sig(text + " indeed"))
    for pair in ((first, later), (later, first)):
        verdict = judge(*pair, threshold=0.7)
        assert verdict is not None and (verdict.copy_id, verdict.original_id) == ("b", "a")
    assert judge(first, first, 0.7) is None
    elsewhere = Fingerprint("b", "other", later.submitted_at, later.signature)
    assert judge(first, elsewhere, 0.7) is None
    stranger = Fingerprint("s", "c", T0, sig("an entirely unrelated sentence about trains"))
    assert judge(first, stranger, 0.7) is None


ORIGINAL = (
    "I am so glad you shared this with us, it sounds like a wonderful day for the whole family"
)


def accepted(contributor_id: str, text: str, at: datetime, n: int) -> FeedbackAccepted:
    signature_ = signature(near_copies.demonstration_text(canonical(text), ""))
    assert signature_ is not None
    return FeedbackAccepted(
        event_id=f"{n:032x}", producer="test", campaign_id="camp",
        submission_event_id=f"s{n}", contribution_id=f"c{n}", contributor_id=contributor_id,
        submitted_at=at, near_copy_signature=near_copies.encode(signature_),
    )  # fmt: skip


@pytest.fixture
def screening() -> tuple[Screening, FakeNearCopies, FakeContributions, FakeBus]:
    contributions, bus = FakeContributions(), FakeBus()
    store = FakeNearCopies(contributions)
    return Screening(store, contributions, bus, threshold=0.7), store, contributions, bus


def stored(contributions: FakeContributions, events: list[FeedbackAccepted]) -> None:
    for event in events:
        item = Contribution(event.contribution_id, event.contributor_id, "p", "r")
        contributions.add(event.campaign_id, item)
        contributions.owners[event.contribution_id] = event.submission_event_id


async def test_a_near_copy_is_flagged_told_and_a_replay_says_the_same(
    screening: tuple[Screening, FakeNearCopies, FakeContributions, FakeBus],
) -> None:
    screen, store, contributions, bus = screening
    batch = [
        accepted("alice", ORIGINAL, T0, 1),
        accepted("mallory", ORIGINAL.replace("so glad", "so happy"), T0 + timedelta(1), 2),
        accepted(
            "bob", "Something else entirely, about the weather and the trains, at length", T0, 3
        ),
    ]
    stored(contributions, batch)
    assert await screen.screen(batch) == 1
    assert store.flags.keys() == {"c2"} and store.flags["c2"].original_id == "c1"
    [rejected] = bus.on(topics.FEEDBACK_REJECTED)
    assert isinstance(rejected, FeedbackRejected)
    assert rejected.reason is RejectionReason.NEAR_DUPLICATE
    assert (rejected.contributor_id, rejected.submission_event_id) == ("mallory", "s2")
    assert rejected.duplicate_of == "c1" and len(contributions.rejections) == 1
    first = [(t, e.event_id) for t, _, e in bus.take()]
    assert await screen.screen(batch) == 1
    assert [(t, e.event_id) for t, _, e in bus.take()] == first
    assert len(store.fingerprints) == 3 and len(contributions.rejections) == 1


async def test_an_original_met_late_flags_the_stored_copy_and_a_restart_remembers(
    screening: tuple[Screening, FakeNearCopies, FakeContributions, FakeBus],
) -> None:
    """The later submission is the copy, whichever arrives first; a new replica (an empty
    index) rebuilds from the stored fingerprints and still finds an earlier text."""
    screen, store, contributions, bus = screening
    copy = accepted("mallory", ORIGINAL + " truly", T0 + timedelta(1), 1)
    original = accepted("alice", ORIGINAL, T0, 2)
    stored(contributions, [copy, original])
    assert await screen.screen([copy]) == 0
    again = Screening(store, contributions, bus, threshold=0.7)
    assert await again.screen([original]) == 1
    [rejected] = bus.on(topics.FEEDBACK_REJECTED)
    assert isinstance(rejected, FeedbackRejected) and rejected.contributor_id == "mallory"
    assert rejected.duplicate_of == "c2"


async def test_events_without_a_usable_signature_are_not_judged(
    screening: tuple[Screening, FakeNearCopies, FakeContributions, FakeBus],
) -> None:
    screen, store, _, _ = screening
    short = accepted("alice", ORIGINAL, T0, 1).model_copy(update={"near_copy_signature": None})
    forged = accepted("bob", ORIGINAL, T0, 2).model_copy(update={"near_copy_signature": "QUJD"})
    assert await screen.screen([short, forged]) == 0 and not store.fingerprints


async def test_with_crowd_versions_a_replica_reloads_only_after_another_moved_the_crowd(
    screening: tuple[Screening, FakeNearCopies, FakeContributions, FakeBus],
) -> None:
    """A replica that left the crowd at version v trusts its fingerprints while the version
    is still v (no scan of the stored ones); if another replica moved it, it reloads them and
    still finds a copy of a text that replica screened."""
    screen, store, contributions, bus = screening
    other = Screening(store, contributions, bus, threshold=0.7)
    original = accepted("alice", ORIGINAL, T0, 1)
    copy = accepted("mallory", ORIGINAL + " truly", T0 + timedelta(1), 2)
    stored(contributions, [original, copy])
    other_text = "Something else entirely, about the weather and the trains, at length"
    assert await screen.screen([accepted("bob", other_text, T0, 3)], 0) == 0
    screen.left("camp", 0, 1)
    counted = 0
    count = store.count

    async def counting(campaign_id: str) -> int:
        nonlocal counted
        counted += 1
        return await count(campaign_id)

    store.count = counting  # type: ignore[method-assign]
    assert await other.screen([original], 1) == 0  # another replica, at version 1 ...
    other.left("camp", 1, 2)  # ... moves the crowd to version 2
    assert await screen.screen([copy], 2) == 1  # reloaded at 2: the original is known
    assert counted == 0  # versions, not scans, decided when to reload
