"""The tournament on measured scores (the lora backend): ranking, improvement gate, errors."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsft.domain.campaign import CampaignSpec, dump_rng, load_rng
from crowdsft.domain.steps import judge_measured
from crowdsft.engine.evaluation import get_evaluation
from crowdsft.engine.tournament import rank_scores, run_tournament


def test_ranking_is_best_first_and_accepts_an_improvement() -> None:
    scores = np.array([-3.0, -1.0, -2.0, -4.0])
    outcome = rank_scores(scores, -2.5, 0.0, np.random.default_rng(0))
    assert outcome.ranking.tolist() == [1, 2, 0, 3]
    assert outcome.accepted
    assert not outcome.judged_wrong
    np.testing.assert_array_equal(outcome.scores, scores)


@pytest.mark.parametrize("model_score", [-1.0, -0.5, 0.0])
def test_no_acceptance_unless_best_beats_the_model(model_score: float) -> None:
    """A tie with the model is not an improvement; judging error never forces acceptance."""
    scores = np.array([-3.0, -1.0, -2.0])
    for seed in range(20):
        outcome = rank_scores(scores, model_score, 1.0, np.random.default_rng(seed))
        assert not outcome.accepted
        assert not outcome.judged_wrong
        assert outcome.ranking.tolist() == [1, 2, 0]


def test_judging_error_swaps_the_winner_with_another_rank() -> None:
    scores = np.array([-3.0, -1.0, -2.0, -4.0])
    seen: set[int] = set()
    for seed in range(40):
        outcome = rank_scores(scores, -10.0, 1.0, np.random.default_rng(seed))
        assert outcome.accepted
        assert outcome.judged_wrong
        assert outcome.ranking[0] != 1
        assert sorted(outcome.ranking.tolist()) == [0, 1, 2, 3]
        # exactly two ranks swapped: rank 0 and the rank where the true winner now sits
        true = np.array([1, 2, 0, 3])
        moved = np.flatnonzero(outcome.ranking != true)
        assert moved.size == 2
        assert moved[0] == 0
        seen.add(int(outcome.ranking[0]))
    assert seen == {0, 2, 3}


def test_single_candidate_is_never_misjudged() -> None:
    outcome = rank_scores(np.array([1.0]), 0.0, 1.0, np.random.default_rng(0))
    assert outcome.accepted
    assert not outcome.judged_wrong
    assert outcome.ranking.tolist() == [0]


def test_random_stream_advances_the_same_whatever_the_outcome() -> None:
    """Two draws every round, accepted or not, so later rounds see the same numbers."""
    after = []
    for model_score in (-10.0, 10.0):
        rng = np.random.default_rng(5)
        rank_scores(np.array([-1.0, -2.0, -3.0]), model_score, 0.3, rng)
        after.append(rng.random())
    assert after[0] == after[1]


TARGET = np.array([3.0, 4.0, 0.0])
MODEL = np.zeros(3)  # 5 from the target in l2, 7 in l1
CANDIDATES = np.array([
    [3.0, 0.0, 0.0],  # l2 4,    l1 4
    [3.0, 4.0, 6.0],  # l2 6,    l1 6
    [3.0, 3.0, 0.0],  # l2 1,    l1 1
    [0.0, 4.0, 0.0],  # l2 3,    l1 3
])  # fmt: skip


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_run_tournament_ranks_by_distance_to_the_target_worked_by_hand(metric: str) -> None:
    outcome = run_tournament(
        MODEL, CANDIDATES, get_evaluation(metric), TARGET, 0.0, np.random.default_rng(0)
    )
    assert outcome.ranking.tolist() == [2, 3, 0, 1]
    np.testing.assert_allclose(-outcome.scores, [4.0, 6.0, 1.0, 3.0])
    assert outcome.accepted and not outcome.judged_wrong


def test_run_tournament_refuses_when_no_candidate_is_closer_than_the_model() -> None:
    near = TARGET + np.array([0.0, 0.5, 0.0])  # 0.5 from the target: every candidate is worse
    for seed in range(10):
        outcome = run_tournament(
            near, CANDIDATES, get_evaluation("l2"), TARGET, 1.0, np.random.default_rng(seed)
        )
        assert not outcome.accepted and not outcome.judged_wrong
        assert outcome.ranking.tolist() == [2, 3, 0, 1]


def test_run_tournament_misjudges_at_the_rate_asked_and_never_picks_the_true_best() -> None:
    """With judge_error 0.3 about 30% of accepted rounds crown another candidate, each of the
    three others about equally often (binomial bounds at about 4.5 standard deviations)."""
    rounds, crowned = 4_000, {0: 0, 1: 0, 3: 0}
    wrong = 0
    for seed in range(rounds):
        outcome = run_tournament(
            MODEL, CANDIDATES, get_evaluation("l2"), TARGET, 0.3, np.random.default_rng(seed)
        )
        assert outcome.accepted
        if outcome.judged_wrong:
            wrong += 1
            crowned[int(outcome.ranking[0])] += 1
            assert 2 in outcome.ranking[1:]  # the true best keeps a place, lower down
    assert abs(wrong / rounds - 0.3) < 0.033
    assert all(abs(n / wrong - 1 / 3) < 0.06 for n in crowned.values())


def test_judge_measured_replays_from_the_serialised_stream() -> None:
    spec = CampaignSpec(campaign_id="c", target=[1.0, 2.0], judge_error=0.5)
    scores = np.array([-0.4, -0.1, -0.9])
    state = dump_rng(np.random.default_rng(3))

    outcome, new_state = judge_measured(spec, scores, -0.5, state)

    rng = np.random.default_rng(3)
    expected = rank_scores(scores, -0.5, 0.5, rng)
    np.testing.assert_array_equal(outcome.ranking, expected.ranking)
    assert outcome.accepted and outcome.judged_wrong == expected.judged_wrong
    assert load_rng(new_state).random() == rng.random()
    assert new_state != state
    # deterministic: the same state gives the same decision
    again, again_state = judge_measured(spec, scores, -0.5, state)
    np.testing.assert_array_equal(again.ranking, outcome.ranking)
    assert again_state == new_state


def test_judge_measured_gate_uses_the_base_score() -> None:
    spec = CampaignSpec(campaign_id="c", target=[1.0], judge_error=0.0)
    state = dump_rng(np.random.default_rng(0))
    scores = np.array([-0.4, -0.2])
    assert judge_measured(spec, scores, -0.3, state)[0].accepted
    assert not judge_measured(spec, scores, -0.2, state)[0].accepted
    assert not judge_measured(spec, scores, -0.1, state)[0].accepted
