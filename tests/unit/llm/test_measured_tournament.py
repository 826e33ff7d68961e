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


def test_run_tournament_equals_rank_scores_on_the_same_scores_and_rng() -> None:
    evaluate = get_evaluation("l2")
    gen = np.random.default_rng(11)
    for trial in range(30):
        target = gen.uniform(0, 5, 3)
        model = gen.uniform(0, 5, 3)
        candidates = model + gen.normal(0, 1, (4, 3))
        judge_error = [0.0, 0.5, 1.0][trial % 3]
        computed = run_tournament(
            model, candidates, evaluate, target, judge_error, np.random.default_rng(trial)
        )
        measured = rank_scores(
            evaluate(candidates, target),
            float(evaluate(model[None, :], target)[0]),
            judge_error,
            np.random.default_rng(trial),
        )
        np.testing.assert_array_equal(computed.ranking, measured.ranking)
        np.testing.assert_array_equal(computed.scores, measured.scores)
        assert computed.accepted == measured.accepted
        assert computed.judged_wrong == measured.judged_wrong


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
