"""Point rules and the tournament that feeds them."""

from itertools import permutations

import numpy as np
import pytest

from crowdsft.engine.evaluation import EVALUATIONS, get_evaluation
from crowdsft.engine.points import (
    POINT_RULES,
    RoundState,
    get_point_rule,
    group_game_shares,
    leave_one_out_effects,
)
from crowdsft.engine.tournament import candidate_steps, run_tournament, weighted_centroids


def make_state(evaluation: str = "l2", seed: int = 0, n: int = 12, g: int = 3) -> RoundState:
    rng = np.random.default_rng(seed)
    users = rng.uniform(0, 5, (n, 4))
    target = rng.uniform(0, 5, 4)
    points = rng.uniform(0.5, 3.0, n)
    labels = np.arange(n) % g
    model = rng.uniform(0, 5, 4)
    evaluate = get_evaluation(evaluation)
    cands = candidate_steps(model, weighted_centroids(users, points**2, labels, g), 0.1)
    outcome = run_tournament(model, cands, evaluate, target, 0.0, rng)
    return RoundState(users, points, labels, g, model, cands, outcome, target, evaluate, 0.1)


def test_evaluations_higher_is_better() -> None:
    e = np.array([1.0, 2.0])
    near, far = np.array([[1.0, 2.1]]), np.array([[3.0, 5.0]])
    for name in ("l2", "l1"):
        assert EVALUATIONS[name](near, e)[0] > EVALUATIONS[name](far, e)[0]
    assert EVALUATIONS["l2"](far, e)[0] == pytest.approx(-np.hypot(2, 3))
    assert EVALUATIONS["l1"](far, e)[0] == pytest.approx(-5)
    assert EVALUATIONS["dot"](far, e)[0] == pytest.approx(13)


def test_weighted_centroid_uses_points_squared() -> None:
    users = np.array([[0.0], [3.0], [10.0]])
    c = weighted_centroids(users, np.array([1.0, 2.0, 0.0]) ** 2, np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(c, [[12.0 / 5], [10.0]])  # zero-weight group falls back to mean


def test_rank_rule_totals() -> None:
    state = make_state()
    awards = get_point_rule("rank")(state)
    rank_of = {int(g): r for r, g in enumerate(state.outcome.ranking)}
    for i, lab in enumerate(state.labels):
        assert awards[i] == 3 - rank_of[int(lab)]
    assert awards.sum() == 4 * (3 + 2 + 1)


def test_marginal_rule_is_candidate_gain() -> None:
    state = make_state()
    awards = get_point_rule("marginal")(state)
    base = state.evaluate(state.model[None, :], state.target)[0]
    np.testing.assert_allclose(awards, state.outcome.scores[state.labels] - base)


@pytest.mark.parametrize("evaluation", sorted(EVALUATIONS))
def test_shapley_rule_efficiency_and_sign(evaluation: str) -> None:
    state = make_state(evaluation, seed=3)
    shares = group_game_shares(state)
    # Group shares add up to the pooled step's gain (exact Shapley over groups).
    pooled = weighted_centroids(state.users, state.weights, np.zeros(12, dtype=np.int64), 1)
    base = state.evaluate(state.model[None, :], state.target)[0]
    gain = state.evaluate(candidate_steps(state.model, pooled, 0.1), state.target)[0] - base
    assert shares.sum() == pytest.approx(gain)
    awards = get_point_rule("shapley")(state)
    assert awards.min() == pytest.approx(0.0)
    # Undo the scale (n) and the common shift: before it the awards add up to the gain.
    n = 12
    shift = (gain - awards.sum() / n) / n
    unshifted = awards / n + shift
    effects = leave_one_out_effects(state)
    for g in range(3):
        members = state.labels == g
        # The group's members together receive exactly its Shapley share, worked out by hand
        # over the 3! orders in which the groups can join ...
        assert unshifted[members].sum() == pytest.approx(by_hand_group_share(state, g))
        # ... and split it by their leave-one-out effects, centred within the group.
        spread = unshifted[members]
        centred = effects[members] - effects[members].mean()
        np.testing.assert_allclose(spread - spread.mean(), centred, atol=1e-12)


def by_hand_group_share(state: RoundState, group: int) -> float:
    """Group `group`'s Shapley value of the pooled-step game, averaged over join orders."""

    def value(groups: set[int]) -> float:
        if not groups:
            return 0.0
        members = np.isin(state.labels, sorted(groups))
        w = state.weights[members]
        centroid = (w[:, None] * state.users[members]).sum(axis=0) / w.sum()
        step = state.model + state.delta * (centroid - state.model)
        model = state.evaluate(state.model[None, :], state.target)[0]
        return float(state.evaluate(step[None, :], state.target)[0] - model)

    orders = list(permutations(range(state.n_groups)))
    total = 0.0
    for order in orders:
        before = set(order[: order.index(group)])
        total += value(before | {group}) - value(before)
    return total / len(orders)


def test_every_rule_registered() -> None:
    assert set(POINT_RULES) >= {"rank", "marginal", "shapley"}


def test_tournament_gate_and_judging_error() -> None:
    e = np.zeros(2)
    model = np.zeros(2)
    cands = np.array([[1.0, 0.0], [2.0, 0.0]])
    out = run_tournament(model, cands, EVALUATIONS["l2"], e, 1.0, np.random.default_rng(0))
    assert not out.accepted and not out.judged_wrong
    model = np.array([3.0, 0.0])
    out = run_tournament(model, cands, EVALUATIONS["l2"], e, 0.0, np.random.default_rng(0))
    assert out.accepted and list(out.ranking) == [0, 1]
    out = run_tournament(model, cands, EVALUATIONS["l2"], e, 1.0, np.random.default_rng(0))
    assert out.accepted and out.judged_wrong and list(out.ranking) == [1, 0]
