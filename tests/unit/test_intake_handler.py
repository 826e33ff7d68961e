"""Intake's handler on in-memory ports: every record ends in exactly one place, and a batch
replayed after a crash announces the same events (same ids) and stores nothing new."""

from __future__ import annotations

from crowdsft.contracts import FeedbackAccepted, FeedbackDeadLettered, FeedbackRejected, topics
from crowdsft.contracts.feedback import RejectionReason
from crowdsft.feedback import RawRecord
from services.intake.handler import IntakeHandler
from tests.support.corpus import Corpus, build_corpus
from tests.support.fakes import FakeBus, FakeCampaigns, FakeContributions

TOTAL = 400


def records() -> tuple[list[RawRecord], Corpus]:
    corpus = build_corpus("camp", total=TOTAL, seed=3)
    raw = [
        RawRecord(topics.FEEDBACK_SUBMITTED, 0, offset, key, value)
        for offset, (key, value) in enumerate(corpus.records)
    ]
    return raw, corpus


def intake() -> tuple[IntakeHandler, FakeContributions, FakeBus]:
    campaigns, store, bus = FakeCampaigns(), FakeContributions(), FakeBus()
    campaigns.feedback_only.add("camp")
    return IntakeHandler(store, campaigns, bus), store, bus


async def test_every_record_ends_in_exactly_one_place() -> None:
    handler, store, bus = intake()
    raw, corpus = records()
    report = await handler.handle(raw)
    assert report.stored == len(corpus.valid_ids)
    assert report.replayed == corpus.replays
    assert report.duplicates == corpus.content_duplicates
    assert report.malformed == len(corpus.malformed)
    assert report.stored + report.replayed + report.duplicates + report.malformed == TOTAL
    assert len(store.contributions) == len(corpus.valid_ids)
    letters = bus.on(topics.FEEDBACK_DLQ)
    assert all(isinstance(letter, FeedbackDeadLettered) for letter in letters)
    reasons = {letter.reason for letter in letters}
    assert RejectionReason.UNKNOWN_CAMPAIGN in reasons and RejectionReason.OVERSIZE in reasons
    rejected = bus.on(topics.FEEDBACK_REJECTED)
    duplicates = [r for r in rejected if r.reason is RejectionReason.DUPLICATE_CONTENT]
    assert len(duplicates) == report.duplicates and all(r.duplicate_of for r in duplicates)
    assert len(store.rejections) == len(rejected)


async def test_a_replayed_batch_announces_the_same_events_and_stores_nothing_new() -> None:
    handler, store, bus = intake()
    raw, _ = records()
    await handler.handle(raw)
    first = [(t, e.event_id) for t, _, e in bus.take()]
    stored, rejections = dict(store.contributions), dict(store.rejections)
    report = await handler.handle(raw)
    again = [(t, e.event_id) for t, _, e in bus.take()]
    assert report.stored == 0
    assert sorted(again) == sorted(first)
    assert store.contributions == stored and store.rejections == rejections


async def test_accepted_feedback_is_keyed_by_campaign_and_names_its_contribution() -> None:
    handler, store, bus = intake()
    raw, _ = records()
    await handler.handle(raw[:50])
    for topic, key, event in bus.published:
        if topic == topics.FEEDBACK_ACCEPTED:
            assert isinstance(event, FeedbackAccepted)
            assert key == event.campaign_id == "camp"
            assert event.contribution_id in store.contributions
        else:
            assert isinstance(event, FeedbackRejected | FeedbackDeadLettered)
