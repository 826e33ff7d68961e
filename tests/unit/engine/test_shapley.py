"""Shapley engine: known values, axioms, and every estimator against exact enumeration."""

from math import factorial

import numpy as np
import pytest

from crowdsft.engine.shapley import (
    CentroidGame,
    FunctionGame,
    MaxSamples,
    RelativeError,
    TableGame,
    estimate_shapley,
    exact_shapley,
    kernel_shapley,
    permutation_shapley,
    relative_error,
    stratified_shapley,
)

SAMPLERS = ("permutation", "stratified", "kernelshap")


def _bits(n: int) -> np.ndarray:
    idx = np.arange(2**n)
    return ((idx[:, None] >> np.arange(n)) & 1).astype(bool)


def random_game(n: int, seed: int) -> TableGame:
    rng = np.random.default_rng(seed)
    bits = _bits(n)
    # A supermodular-ish random game: additive part plus random pair synergies plus noise.
    w = rng.normal(1.0, 1.0, n)
    pairs = rng.normal(0.0, 0.3, (n, n))
    x = bits.astype(float)
    table = x @ w + np.einsum("bi,ij,bj->b", x, np.triu(pairs, 1), x) + rng.normal(0, 0.2, 2**n)
    table[0] = 0.0
    return TableGame(table)


def test_exact_known_values_glove_game() -> None:
    # Players 0,1 hold left gloves, 2 holds a right glove; a pair is worth 1.
    bits = _bits(3)
    table = np.minimum(bits[:, :2].sum(axis=1), bits[:, 2]).astype(float)
    phi = exact_shapley(TableGame(table)).values
    np.testing.assert_allclose(phi, [1 / 6, 1 / 6, 2 / 3])


def test_exact_unanimity_and_additive() -> None:
    n = 5
    bits = _bits(n)
    unanimity = TableGame(bits[:, [1, 3]].all(axis=1).astype(float))
    np.testing.assert_allclose(exact_shapley(unanimity).values, [0, 0.5, 0, 0.5, 0])
    w = np.arange(1.0, n + 1)
    np.testing.assert_allclose(exact_shapley(TableGame(bits @ w)).values, w)


def test_exact_matches_brute_force_formula() -> None:
    n = 4
    game = random_game(n, 3)
    phi = np.zeros(n)
    for mask in range(2**n):
        s = bin(mask).count("1")
        for i in range(n):
            if not mask >> i & 1:
                weight = factorial(s) * factorial(n - s - 1) / factorial(n)
                phi[i] += weight * (game.table[mask | 1 << i] - game.table[mask])
    np.testing.assert_allclose(exact_shapley(game).values, phi)


@pytest.mark.parametrize("method", ("exact", *SAMPLERS))
def test_efficiency(method: str) -> None:
    game = random_game(8, 1)
    res = estimate_shapley(game, method, np.random.default_rng(0), rel_error=0.05)
    assert res.values.sum() == pytest.approx(game.table[-1] - game.table[0], abs=1e-9)


def test_symmetry_null_player_linearity() -> None:
    n = 6
    bits = _bits(n)
    x = bits.astype(float)
    # Players 0 and 1 symmetric, player 5 null.
    table = (x[:, 0] + x[:, 1]) * (1 + x[:, 2]) + x[:, 3] * x[:, 4] + 0.5 * x[:, 2]
    phi = exact_shapley(TableGame(table)).values
    assert phi[0] == pytest.approx(phi[1])
    assert phi[5] == pytest.approx(0.0)
    a, b = random_game(n, 5), random_game(n, 6)
    combo = exact_shapley(TableGame(2 * a.table - 3 * b.table)).values
    np.testing.assert_allclose(combo, 2 * exact_shapley(a).values - 3 * exact_shapley(b).values)


@pytest.mark.parametrize("method", SAMPLERS)
def test_sampler_symmetry_and_null_player(method: str) -> None:
    n = 6
    x = _bits(n).astype(float)
    table = (x[:, 0] + x[:, 1]) * (1 + x[:, 2]) + x[:, 3] * x[:, 4]
    res = estimate_shapley(TableGame(table), method, np.random.default_rng(1), rel_error=0.01)
    assert abs(res.values[0] - res.values[1]) < 4 * np.hypot(res.stderr[0], res.stderr[1]) + 1e-9
    assert abs(res.values[5]) < 4 * res.stderr[5] + 1e-9


@pytest.mark.parametrize("method", SAMPLERS)
@pytest.mark.parametrize(("n", "seed"), [(4, 0), (7, 1), (10, 2), (12, 3)])
def test_estimator_within_reported_error_of_exact(method: str, n: int, seed: int) -> None:
    game = random_game(n, seed)
    exact = exact_shapley(game).values
    res = estimate_shapley(game, method, np.random.default_rng(seed), rel_error=0.02)
    assert res.relative_error <= 0.02
    z = np.abs(res.values - exact) / np.maximum(res.stderr, 1e-12)
    assert np.all(z < 4.5), (z.max(), method)
    assert relative_error(res.values, exact) < 3 * res.relative_error + 1e-9


@pytest.mark.parametrize("evaluation", ("l2", "l1", "dot"))
def test_centroid_fast_paths_match_mask_path(evaluation: str) -> None:
    rng = np.random.default_rng(4)
    game = CentroidGame(rng.uniform(0, 5, (9, 20)), rng.uniform(0, 5, 20), evaluation)
    slow = FunctionGame(9, game.values)
    for fn in (permutation_shapley, stratified_shapley):
        fast_res = fn(game, np.random.default_rng(7), MaxSamples(5))
        slow_res = fn(slow, np.random.default_rng(7), MaxSamples(5))
        np.testing.assert_allclose(fast_res.values, slow_res.values, atol=1e-10)
    assert game.values(np.zeros((1, 9), dtype=bool))[0] == pytest.approx(
        {"l2": -np.linalg.norm(game.target), "l1": -np.abs(game.target).sum(), "dot": 0.0}[
            evaluation
        ]
    )


def test_centroid_game_l2_converges_to_exact_at_12_players() -> None:
    rng = np.random.default_rng(5)
    game = CentroidGame(rng.uniform(0, 5, (12, 20)), rng.uniform(0, 5, 20), "l2")
    exact = exact_shapley(game).values
    res = stratified_shapley(game, np.random.default_rng(0), RelativeError(0.005))
    assert relative_error(res.values, exact) < 0.015


def test_same_seed_same_numbers_and_stop_rules() -> None:
    game = random_game(8, 9)
    a = kernel_shapley(game, np.random.default_rng(11), MaxSamples(40))
    b = kernel_shapley(game, np.random.default_rng(11), MaxSamples(40))
    np.testing.assert_array_equal(a.values, b.values)
    assert a.n_samples >= 40
    res = estimate_shapley(game, "kernelshap", np.random.default_rng(1), n_samples=1000)
    assert res.n_evaluations == 1000 and res.n_samples == 50


def test_exact_refuses_large_games() -> None:
    with pytest.raises(ValueError):
        exact_shapley(FunctionGame(30, lambda m: m.sum(axis=1).astype(float)))
