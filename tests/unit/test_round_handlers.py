"""The round handlers on in-memory ports: a campaign replayed event by event, with duplicates,
replays and events out of order. Milliseconds per campaign; the integration suite runs the
same handlers as processes against the real broker and store."""

from __future__ import annotations

import copy
from datetime import timedelta

import numpy as np
import pytest

from crowdsft.contracts import (
    CandidateTrained,
    PointsAwarded,
    RoundDecided,
    RoundOpened,
    ShapleyComputed,
    TrainingRequested,
    derive_event_id,
    topics,
)
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy, streams
from crowdsft.domain.crowd import Contribution
from crowdsft.domain.ids import candidate_model_id, round_id
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.round import RoundStatus, RoundStep, RoundStepError
from crowdsft.domain.steps import engine_run, synthetic_crowd
from crowdsft.engine.experiment import ShapleySettings, shapley_of_crowd
from tests.support.world import World

N_USERS, SEED = 16, 4
IDS = [f"c{i:02d}" for i in range(N_USERS)]


def spec_of(mode: str = "auto", rounds: int = 8, rule: str = "shapley") -> CampaignSpec:
    crowd = synthetic_crowd(N_USERS, SEED)
    return CampaignSpec(
        campaign_id="camp",
        target=[float(x) for x in crowd.expert],
        n_groups=3,
        grouping="epsilon_greedy",
        points_rule=rule,
        policy=RoundPolicy(mode=mode, min_contributions=N_USERS, max_rounds=rounds),  # type: ignore[arg-type]
        seed=SEED,
    )


def world_with(spec: CampaignSpec) -> World:
    world = World()
    world.create(spec)
    world.submit_points(spec.campaign_id, IDS, synthetic_crowd(N_USERS, SEED).users)
    return world


def state_of(world: World) -> object:
    """Everything the handlers keep, to compare before and after a replay."""
    return copy.deepcopy(
        (
            world.campaigns.states,
            world.rounds.rounds,
            world.measurements.stored,
            world.lineage.entries,
            world.ledger.entries,
            world.ledger.balances,
            world.shapley_values.records,
        )
    )


async def test_an_auto_campaign_on_fakes_equals_the_engine() -> None:
    spec = spec_of()
    world = world_with(spec)
    await world.pump()
    engine = engine_run(spec, synthetic_crowd(N_USERS, SEED))
    state = world.campaigns.states["camp"]
    assert state.next_round == spec.policy.max_rounds and state.open_round is None
    model = world.measurements.stored[state.model_id].position
    np.testing.assert_allclose(model, engine.model, rtol=0, atol=1e-12)
    np.testing.assert_allclose(await world.ledger.points("camp", IDS), engine.points, atol=1e-12)
    crowd = synthetic_crowd(N_USERS, SEED)
    reference = shapley_of_crowd(
        crowd, "l2", ShapleySettings("stratified", 0.01), np.random.default_rng(streams(SEED)[2])
    )
    record = world.shapley_values.records["camp"]
    np.testing.assert_allclose(record.values, reference.values, atol=1e-12)
    assert sorted(record.fairness) == list(range(spec.policy.max_rounds))
    # Ledger sums equal balances, and no ledger key twice.
    for contributor_id in IDS:
        total = sum(e.points for e in world.ledger.entries if e.contributor_id == contributor_id)
        assert total == pytest.approx(world.ledger.balances[("camp", contributor_id)], abs=1e-12)
    keys = [(e.round_id, e.contributor_id, e.rule) for e in world.ledger.entries]
    assert len(keys) == len(set(keys))
    assert len(world.of_type(ShapleyComputed)) == spec.policy.max_rounds


async def test_replaying_every_event_changes_nothing_and_announces_nothing() -> None:
    world = world_with(spec_of(rounds=4))
    await world.pump()
    before, delivered = state_of(world), list(world.delivered)
    for topic, event in delivered:
        await world.deliver(topic, event)
    # Training answers a repeated request with its stored candidate; every other duplicate
    # stops at the first service that sees it, and so does that answer.
    answers = world.bus.take()
    assert answers and {type(e) for _, _, e in answers} == {CandidateTrained}
    for topic, _, event in answers:
        await world.deliver(topic, event)
    assert world.bus.published == []
    assert state_of(world) == before


async def test_a_round_waits_for_every_group_whatever_the_order() -> None:
    world = world_with(spec_of(mode="manual", rounds=2))
    await world.pump()  # feedback accepted: a manual campaign opens nothing
    assert world.rounds.rounds == {}
    await world.selection.on_start_round(world.start("camp", 0))
    requests = [e for _, _, e in world.bus.take() if isinstance(e, TrainingRequested)]
    assert [r.group_index for r in requests] == [0, 1, 2]
    for request in reversed(requests):
        await world.training.on_training_requested(request)
    trained = [e for _, _, e in world.bus.take()]
    assert all(isinstance(e, CandidateTrained) for e in trained)
    for i, event in enumerate(trained):
        await world.selection.on_candidate_trained(event)
        opened = world.rounds.rounds[round_id("camp", 0)]
        if i < len(trained) - 1:
            assert opened.status is RoundStatus.OPEN and world.bus.published == []
    decided = world.rounds.rounds[round_id("camp", 0)]
    assert decided.status is RoundStatus.DECIDED
    assert [type(e).__name__ for _, _, e in world.bus.published][-1] == "RoundDecided"
    assert world.campaigns.states["camp"].next_round == 1


async def test_stale_early_and_late_commands_and_events_are_ignored_or_refused() -> None:
    world = world_with(spec_of(mode="manual", rounds=2))
    await world.pump()
    await world.selection.on_start_round(world.start("camp", 1))  # round 0 comes first
    assert world.rounds.rounds == {} and world.bus.published == []
    await world.selection.on_start_round(world.start("camp", 0))
    opened = [e for _, _, e in world.bus.published if isinstance(e, RoundOpened)]
    await world.selection.on_start_round(world.start("camp", 0))  # repeated: announced already
    assert len([e for _, _, e in world.bus.published if isinstance(e, RoundOpened)]) == 1
    assert opened and opened[0].round_index == 0

    # Scoring and Shapley before their step is stored: refused (selection stores every step
    # before it announces it, so such an event is forged; its record is dead-lettered).
    early = RoundDecided(
        event_id="x",
        producer="forged",
        campaign_id="camp",
        round_id=round_id("camp", 0),
        round_index=0,
        ranking=[0, 1, 2],
        scores=[0.0] * 3,
        base_model_id="camp:base",
        winner_model_id=None,
        improved=False,
        group_sizes=[],
    )
    with pytest.raises(LookupError, match="not decided in the store yet"):
        await world.scoring.on_round_decided(early)
    awarded = PointsAwarded(
        event_id="y",
        producer="forged",
        campaign_id="camp",
        round_id=round_id("camp", 0),
        round_index=0,
        rule="shapley",
        accepted=True,
        members=0,
        paid=0,
        total=0.0,
    )
    with pytest.raises(LookupError, match="not scored in the store yet"):
        await world.shapley.on_points_awarded(awarded)

    # A candidate for an unknown round, under another model id or parent, for a group the
    # round does not have, or that training never measured: refused, and the round unchanged.
    ghost = CandidateTrained(
        event_id="z",
        producer="forged",
        campaign_id="camp",
        round_id=round_id("camp", 7),
        group_index=0,
        model_id=candidate_model_id(round_id("camp", 7), 0),
        parent_model_id="camp:base",
        artifact_ref="x",
    )
    with pytest.raises(LookupError, match="not in the store"):
        await world.selection.on_candidate_trained(ghost)
    assert round_id("camp", 7) not in world.rounds.rounds
    first = round_id("camp", 0)
    unmeasured = ghost.model_copy(
        update={"round_id": first, "model_id": candidate_model_id(first, 0)}
    )
    with pytest.raises(LookupError, match="no measurement of camp:r00000:g0"):
        await world.selection.on_candidate_trained(unmeasured)
    orphan = unmeasured.model_copy(update={"parent_model_id": "camp:r00000:g1"})
    with pytest.raises(RoundStepError, match="the round's base is camp:base"):
        await world.selection.on_candidate_trained(orphan)
    assert world.rounds.rounds[round_id("camp", 0)].candidates == {}
    forged = ghost.model_copy(update={"round_id": round_id("camp", 0), "model_id": "camp:evil"})
    with pytest.raises(RoundStepError, match="candidate is camp:r00000:g0, not camp:evil"):
        await world.selection.on_candidate_trained(forged)
    wrong_group = forged.model_copy(update={"group_index": 9})
    with pytest.raises(RoundStepError, match="has groups 0-2, not 9"):
        await world.selection.on_candidate_trained(wrong_group)


async def test_a_duplicate_decision_pays_once_and_announces_once() -> None:
    world = world_with(spec_of(mode="manual", rounds=1, rule="rank"))
    await world.pump()
    await world.selection.on_start_round(world.start("camp", 0))
    await world.pump()
    decided = [e for _, e in world.delivered if isinstance(e, RoundDecided)]
    assert len(decided) == 1
    entries = list(world.ledger.entries)
    await world.scoring.on_round_decided(decided[0])
    await world.scoring.on_round_decided(decided[0])
    assert world.ledger.entries == entries and world.bus.published == []
    scored = world.rounds.rounds[round_id("camp", 0)]
    assert scored.status is RoundStatus.SCORED and scored.announced_step(RoundStep.AWARDS)
    # Every contributor got their starting point once, and the round's awards if it moved.
    initial = [e for e in entries if e.rule == "initial"]
    assert sorted(e.contributor_id for e in initial) == IDS
    paid = [e for e in entries if e.rule == "rank"]
    assert len(paid) == (N_USERS if scored.decision and scored.decision.accepted else 0)


async def test_announcements_go_to_their_event_types_topics() -> None:
    world = world_with(spec_of(rounds=1))
    await world.pump()
    by_topic = {topic for topic, _ in world.delivered}
    assert {
        topics.ROUND_OPENED,
        topics.TRAINING_REQUESTED,
        topics.CANDIDATE_TRAINED,
        topics.ROUND_DECIDED,
        topics.POINTS_AWARDED,
    } <= by_topic


async def test_a_lost_training_request_is_asked_again_and_the_outcome_is_the_engines() -> None:
    spec = spec_of(rounds=3, rule="rank")
    world = world_with(spec)
    lost = 0
    while world.bus.published:  # the pump, except that round 1's group 2 request is lost
        topic, _, event = world.bus.published.pop(0)
        lose = isinstance(event, TrainingRequested) and not lost and event.group_index == 2
        if lose and event.round_id == round_id("camp", 1):  # type: ignore[attr-defined]
            lost += 1
            continue
        await world.deliver(topic, event)
    stuck = world.rounds.rounds[round_id("camp", 1)]
    assert lost == 1 and stuck.status is RoundStatus.OPEN and stuck.missing_groups() == [2]
    assert stuck.opened_at is not None
    assert await world.selection.request_overdue(stuck.opened_at) == 0  # not overdue yet
    assert await world.selection.request_overdue(stuck.opened_at + timedelta(seconds=1)) == 1
    [(_, _, again)] = world.bus.published
    assert isinstance(again, TrainingRequested) and again.group_index == 2
    assert again.event_id == derive_event_id("training.requested", stuck.round_id, 2)
    await world.pump()
    engine = engine_run(spec, synthetic_crowd(N_USERS, SEED))
    state = world.campaigns.states["camp"]
    assert state.next_round == spec.policy.max_rounds
    np.testing.assert_allclose(
        world.measurements.stored[state.model_id].position, engine.model, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(await world.ledger.points("camp", IDS), engine.points, atol=1e-12)
    assert await world.selection.request_overdue(stuck.opened_at + timedelta(days=1)) == 0


async def test_a_vector_candidate_measured_anywhere_but_training_is_refused() -> None:
    """Even a measurement written straight into the store (the target itself, which would
    win) is refused: selection recomputes every vector candidate from the stored crowd."""
    spec = spec_of(mode="manual", rounds=1)
    world = world_with(spec)
    await world.pump()
    await world.selection.on_start_round(world.start("camp", 0))
    requests = [e for _, _, e in world.bus.take() if isinstance(e, TrainingRequested)]
    forged_id = candidate_model_id(round_id("camp", 0), 1)
    world.measurements.stored[forged_id] = Measurement(
        model_id=forged_id, campaign_id="camp", artifact_ref="artifacts:forged",
        position=list(spec.target),
    )  # fmt: skip
    for request in requests:
        await world.training.on_training_requested(request)
    trained = [e for _, _, e in world.bus.take()]
    for event in trained[:-1]:
        await world.selection.on_candidate_trained(event)
    with pytest.raises(RoundStepError, match="is not what the vector backend computes"):
        await world.selection.on_candidate_trained(trained[-1])
    assert world.rounds.rounds[round_id("camp", 0)].status is RoundStatus.OPEN
    assert world.ledger.entries == []


async def test_a_round_reads_the_crowd_again_only_when_accepted_feedback_moved_it() -> None:
    """Selection keeps a campaign's placed crowd between rounds and reads the contributions
    again only after an accepted batch moved the crowd's version, so a newcomer who arrives
    between rounds is in the next one, and an unchanged crowd is not read at all."""
    spec = spec_of(mode="manual", rounds=3)
    world = world_with(spec)
    await world.pump()
    reads = 0
    stored = world.contributions.of_campaign

    async def counted(campaign_id: str) -> list[Contribution]:
        nonlocal reads
        reads += 1
        return await stored(campaign_id)

    world.contributions.of_campaign = counted  # type: ignore[method-assign]
    for index in (0, 1):
        await world.selection.open_round("camp", index)
        await world.pump()
    assert reads == 1  # the second round found the crowd's version where the first left it
    newcomer = synthetic_crowd(N_USERS + 1, SEED + 1).users[:1]
    world.submit_points("camp", ["zz-new"], newcomer)
    await world.pump()
    await world.selection.open_round("camp", 2)
    assert reads == 2
    third = world.rounds.rounds[round_id("camp", 2)]
    assert "zz-new" in third.contributor_ids and len(third.contributor_ids) == N_USERS + 1
