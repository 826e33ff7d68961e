"""Poison and forgeries on the round topics, through every real round service: each is
dead-lettered with its reason, no partition stalls, and the campaign that shares their
partitions ends exactly where the undisturbed engine run ends (model, points, Shapley)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crowdsft.adapters.mongo import Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.contracts import (
    CandidateTrained,
    PointsAwarded,
    RoundDecided,
    TrainingRequested,
    new_event_id,
    topics,
)
from crowdsft.domain.ids import candidate_model_id, round_id
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.settings import Settings
from tests.integration.campaign_runs import (
    assert_matches_engine,
    launch,
    reference,
    spec_for,
    start_service,
    start_services,
    wait_finished,
)
from tests.support.kafka_io import produce_raw, read_topic

CONFIG = SimulationConfig(
    n_users=12, n_groups=3, grouping="interleaved", points_rule="rank", n_rounds=4
)
CAMPAIGN = "poisoned"


def forged_candidate(index: int, group: int, parent: str) -> CandidateTrained:
    rid = round_id(CAMPAIGN, index)
    return CandidateTrained(
        event_id=new_event_id(),
        producer="forged",
        campaign_id=CAMPAIGN,
        round_id=rid,
        group_index=group,
        model_id=candidate_model_id(rid, group),
        parent_model_id=parent,
        artifact_ref="artifacts:forged",
    )


def unknown_round_events() -> dict[str, list[bytes]]:
    decided = RoundDecided(
        event_id=new_event_id(), producer="forged", campaign_id=CAMPAIGN,
        round_id=round_id(CAMPAIGN, 999), round_index=999, ranking=[0], scores=[9.0],
        base_model_id=f"{CAMPAIGN}:base", winner_model_id=None, improved=True, group_sizes=[],
    )  # fmt: skip
    awarded = PointsAwarded(
        event_id=new_event_id(), producer="forged", campaign_id=CAMPAIGN,
        round_id=round_id(CAMPAIGN, 999), round_index=999, rule="rank", accepted=True, members=0,
        paid=0, total=0.0,
    )  # fmt: skip
    request = TrainingRequested(
        event_id=new_event_id(), producer="forged", campaign_id=CAMPAIGN,
        round_id=round_id(CAMPAIGN, 999), group_index=0, base_model_id=f"{CAMPAIGN}:base",
        backend="no-such-backend", members=0,
    )  # fmt: skip
    return {
        topics.ROUND_DECIDED: [
            decided.model_dump_json().encode(),
            b"\x00 not json",
            b"[" * 100_000 + b"]" * 100_000,
            "d\xe9cid\xe9".encode("latin-1"),
        ],
        topics.POINTS_AWARDED: [awarded.model_dump_json().encode()],
        topics.CANDIDATE_TRAINED: [
            forged_candidate(0, 0, f"{CAMPAIGN}:base").model_dump_json().encode(),
        ],
        topics.TRAINING_REQUESTED: [request.model_dump_json().encode()],
    }


async def wait_open(db: Database, index: int) -> str:
    while True:
        opened = await RoundStore(db).get(CAMPAIGN, index)
        if opened is not None:
            return opened.base_model_id
        await asyncio.sleep(0.02)


async def wait_refused(bootstrap: str, detail: str, count: int, timeout_s: float = 120) -> None:
    """Until `count` dead letters of candidates carry `detail`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        letters = await read_topic(bootstrap, topics.DEAD_LETTERS, idle_s=0.5)
        if sum(detail in str(letter["detail"]) for letter in letters) >= count:
            return
    raise AssertionError(f"fewer than {count} candidates refused with {detail!r}")


async def test_poison_and_forgeries_are_dead_lettered_and_change_nothing(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    ref = reference(CONFIG, 21)
    spec = spec_for(CAMPAIGN, CONFIG, ref.crowd, 21)
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    key = CAMPAIGN.encode()  # the partition the campaign's own events use
    poison = unknown_round_events()
    headers = [("content-type", b"application/json")]
    for topic, values in poison.items():
        if topic != topics.POINTS_AWARDED:
            await produce_raw(bootstrap, topic, [(key, v) for v in values], headers=headers)
    # Training starts only after the forgeries below are refused, so none of them can
    # name a candidate training has measured (that would make it a mere replay).
    services = start_services(stack_env, tmp_path, training=0)
    try:
        await launch(db, settings, spec, ref.crowd)
        # Shapley ignores points of a campaign it does not know: send these once it exists.
        awards = [(key, v) for v in poison[topics.POINTS_AWARDED]]
        await produce_raw(bootstrap, topics.POINTS_AWARDED, awards, headers=headers)
        # While round 0 is open, candidates for all its groups under the ids selection
        # expects, with the right parent: refused, since training measured none of them;
        # and one for a group the round does not have.
        base = await asyncio.wait_for(wait_open(db, 0), 120)
        forged = [forged_candidate(0, g, base).model_dump_json().encode() for g in [0, 1, 2, 99]]
        await produce_raw(bootstrap, topics.CANDIDATE_TRAINED, [(key, v) for v in forged])
        await wait_refused(bootstrap, "no measurement of poisoned:r00000", 3)
        await wait_refused(bootstrap, "groups 0-2, not 99", 1)
        services["training"] = start_service("training", stack_env, tmp_path)
        await wait_finished(db, spec, services)
        await assert_matches_engine(db, spec, ref)
        for name, service in services.items():
            assert service.alive, name
            assert len(service.log()) < 500_000, f"{name} logged its failures over and over"
    finally:
        for service in services.values():
            service.stop()

    letters = await read_topic(bootstrap, topics.DEAD_LETTERS)
    by_topic: dict[str, list[dict[str, object]]] = {}
    for letter in letters:
        by_topic.setdefault(str(letter["source_topic"]), []).append(letter)
    decided = by_topic[topics.ROUND_DECIDED]
    assert len(decided) == 4 and {str(d["producer"]) for d in decided} == {"crowdsft-scoring"}
    assert sum(str(d["reason"]).startswith("not a valid") for d in decided) == 3
    [refused] = [d for d in decided if d["reason"] == "refused: LookupError"]
    assert "r00999" in str(refused["detail"])
    awarded = by_topic[topics.POINTS_AWARDED]  # selection and shapley each refuse it
    assert {str(a["producer"]) for a in awarded} == {"crowdsft-selection", "crowdsft-shapley"}
    candidates = by_topic[topics.CANDIDATE_TRAINED]
    assert any("groups 0-2, not 99" in str(c["detail"]) for c in candidates)
    [request] = by_topic[topics.TRAINING_REQUESTED]
    assert "no-such-backend" in str(request["detail"])
