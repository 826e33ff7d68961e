"""The round as a typed aggregate: each step adds its part, and steps out of order are refused;
the ledger's rule turns a paid round into entries and balance moves."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from crowdsft.adapters.chunks import part_columns, part_documents
from crowdsft.adapters.round_store import (
    columns_of,
    head_document,
    owner_of,
    parts_of,
    round_of,
)
from crowdsft.domain import ledger
from crowdsft.domain.ids import candidate_model_id
from crowdsft.domain.round import (
    CandidateResult,
    Decision,
    Opening,
    Round,
    RoundStatus,
    RoundStep,
    RoundStepError,
)
from crowdsft.engine import ledger as rule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RID = "c:r00003"


def opened() -> Round:
    return Round(
        round_id=RID,
        campaign_id="c",
        round_index=3,
        opening=Opening(
            base_model_id="c:r00002:g1",
            contributor_ids=["a", "b", "c"],
            contribution_ids=[["a1"], ["b1", "b2"], ["c1"]],
            positions=[[1.0], [2.0], [3.0]],
            points=[1.0, 2.5, 1.0],
            labels=[0, 1, 0],
            n_groups=2,
            rng_state="{}",
        ),
        opened_at=T0,
    )


def decision(accepted: bool = True) -> Decision:
    results = [
        CandidateResult(
            group_index=g,
            model_id=candidate_model_id(RID, g),
            position=[float(g)],
            score=-float(g),
            distance=float(g),
            artifact_ref="x",
        )
        for g in (0, 1)
    ]
    winner = results[0].model_id if accepted else None
    return Decision(
        base_position=[0.5],
        candidates=results,
        ranking=[0, 1],
        accepted=accepted,
        judged_wrong=False,
        winner_model_id=winner,
        rng_after="{}",
    )


def complete() -> Round:
    return (
        opened()
        .with_candidate(0, candidate_model_id(RID, 0))
        .with_candidate(1, candidate_model_id(RID, 1))
    )


def test_steps_in_order_add_their_parts() -> None:
    round_ = complete()
    assert round_.complete and round_.candidate_ids() == ["c:r00003:g0", "c:r00003:g1"]
    decided = round_.decide(decision(), T0)
    assert decided.status is RoundStatus.DECIDED and decided.model_after() == "c:r00003:g0"
    scored = decided.pay([0.0, 2.0, 1.0], T0)
    assert scored.status is RoundStatus.SCORED
    np.testing.assert_array_equal(scored.points_after(), [1.0, 4.5, 2.0])
    assert scored.group_contribution_ids(0) == ["a1", "c1"]
    assert [scored.group(g).contributor_ids for g in (0, 1)] == [["a", "c"], ["b"]]
    assert round_.status is RoundStatus.OPEN, "steps return a new round; the old one stays"


def test_out_of_order_steps_are_refused() -> None:
    with pytest.raises(RoundStepError, match="still waits for groups \\[1\\]"):
        opened().with_candidate(0, candidate_model_id(RID, 0)).decide(decision(), T0)
    with pytest.raises(RoundStepError, match="cannot pay round c:r00003: it is open"):
        complete().pay([0.0, 0.0, 0.0], T0)
    decided = complete().decide(decision(), T0)
    with pytest.raises(RoundStepError, match="cannot decide round c:r00003: it is decided"):
        decided.decide(decision(), T0)
    with pytest.raises(RoundStepError, match="cannot add a candidate"):
        decided.with_candidate(0, candidate_model_id(RID, 0))
    with pytest.raises(RoundStepError, match="3 members"):
        decided.pay([1.0], T0)
    with pytest.raises(RoundStepError, match="no awards to announce"):
        decided.announce(RoundStep.AWARDS)
    with pytest.raises(RoundStepError, match="is not paid"):
        decided.points_after()


def _stored_and_read(round_: Round) -> Round:
    """Through the round's document and its parts' chunk documents, as the store keeps them."""
    parts = {}
    for part in parts_of(round_):
        owner = owner_of(round_, part)
        digest, docs = part_documents(owner, part, columns_of(round_, part))
        assert all(d["_id"].startswith(f"{owner}|{part}|{digest}|") for d in docs)
        parts[part] = (digest, part_columns(docs))
    doc = head_document(round_, {part: digest for part, (digest, _) in parts.items()})
    assert "contributor_ids" not in str(doc)  # no member is in the round's own document
    return round_of(doc, {part: columns for part, (_, columns) in parts.items()})


def test_a_round_survives_its_documents() -> None:
    scored = complete().decide(decision(), T0).pay([0.0, 2.0, 1.0], T0)
    scored = scored.announce(RoundStep.OPENING).announce(RoundStep.DECISION)
    assert _stored_and_read(scored) == scored
    assert _stored_and_read(opened()) == opened()


def test_pay_starts_newcomers_at_one_and_pays_only_accepted_rounds() -> None:
    scored = complete().decide(decision(), T0).pay([0.0, 2.0, 1.0], T0)
    before = ledger.Standing(["b", "z"], np.array([5.0, 7.0]))
    settled = ledger.settle(before, scored)
    assert settled.newcomers.tolist() == [True, False, True]  # members a, b, c
    after = settled.after
    assert after.contributor_ids == ["b", "z", "a", "c"]  # newcomers join in member order
    assert after.points.tolist() == [7.0, 7.0, 1.0, 2.0]
    rows = []
    for row, contributor_id in enumerate(scored.contributor_ids):
        paid = ledger.PaidRound("camp", RID, 0, "rank", True, [0.0, 2.0, 1.0][row],
                                bool(settled.newcomers[row]), T0)  # fmt: skip
        rows += [(e.contributor_id, e.rule, e.points) for e in ledger.entries(contributor_id, paid)]
    assert rows == [
        ("a", "rank", 0.0),
        ("a", "initial", 1.0),
        ("b", "rank", 2.0),
        ("c", "rank", 1.0),
        ("c", "initial", 1.0),
    ]

    stayed = complete().decide(decision(accepted=False), T0).pay([0.0, 0.0, 0.0], T0)
    settled = ledger.settle(before, stayed)
    assert settled.after.points.tolist() == [5.0, 7.0, 1.0, 1.0]
    paid = ledger.PaidRound("camp", RID, 0, "rank", False, 0.0, True, T0)
    assert [(e.contributor_id, e.rule) for e in ledger.entries("a", paid)] == [("a", "initial")]
    assert ledger.entries("b", dataclasses.replace(paid, newcomer=False)) == []


def test_a_standing_ranks_and_orders_its_contributors() -> None:
    standing = ledger.Standing(["d", "a", "c", "b"], np.array([2.0, 5.0, 2.0, 9.0]))
    assert [standing.contributor_ids[r] for r in standing.best_first] == ["b", "a", "c", "d"]
    assert standing.above(2.0) == 2 and standing.above(9.0) == 0 and standing.above(0.0) == 4
    assert standing.balance("c") == 2.0 and standing.balance("zz") is None
    np.testing.assert_array_equal(standing.going_in(["a", "new"]), [5.0, rule.INITIAL_POINTS])


def test_the_engine_and_the_ledger_share_one_rule() -> None:
    known = np.array([True, False])
    np.testing.assert_array_equal(rule.standing(np.array([3.0, 0.0]), known), [3.0, 1.0])
    paid = rule.pay(np.array([0.5, 0.25]), accepted=True, known=known)
    np.testing.assert_array_equal(paid.moves, [0.5, 1.25])
    unpaid = rule.pay(np.array([0.5, 0.25]), accepted=False, known=known)
    assert unpaid.awards is None
    np.testing.assert_array_equal(unpaid.moves, [0.0, 1.0])
    going_in = ledger.Standing(["x"], np.array([4.0])).going_in(["x", "y"])
    assert going_in.tolist() == [4.0, rule.INITIAL_POINTS]
