"""The large-crowd estimator and the dot game's closed form, against exact enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsft.engine.crowd import sample_crowd, synthetic_population
from crowdsft.engine.shapley import (
    CentroidGame,
    RelativeError,
    estimate_shapley,
    exact_shapley,
    relative_error,
    stratified_shapley,
)
from crowdsft.engine.shapley.large import (
    FAST_PATHS,
    _Marginals,
    dot_shapley,
    interpolation_weights,
    size_nodes,
    size_strata_shapley,
    subsets,
)
from services.shapley.handler import LARGE_CROWD, LARGE_CROWD_OTHERWISE, method_for


def game(n: int, evaluation: str, seed: int = 0) -> CentroidGame:
    population = synthetic_population(np.random.default_rng(seed), n_people=n + 1)
    crowd = sample_crowd(population, n, np.random.default_rng(seed + 1))
    return CentroidGame(crowd.users, crowd.expert, evaluation)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 12])
def test_the_dot_closed_form_is_exact(n: int) -> None:
    g = game(n, "dot", seed=n)
    np.testing.assert_allclose(dot_shapley(g).values, exact_shapley(g).values, atol=1e-12)


@pytest.mark.parametrize("evaluation", sorted(FAST_PATHS))
def test_fast_paths_equal_the_generic_one_on_the_same_draws(evaluation: str) -> None:
    g = game(150, evaluation)
    fast, generic = FAST_PATHS[evaluation](g), _Marginals(g)
    members = subsets(np.random.default_rng(0), 150, 4, 6)
    np.testing.assert_allclose(fast.drawn(4, members, 3), generic.drawn(4, members, 3),
                               atol=1e-12)  # fmt: skip
    ks = size_nodes(150, 6, 8)
    weights = interpolation_weights(150, 6, ks)
    unit = np.random.default_rng(1).standard_normal((6, g.vectors.shape[1]))
    np.testing.assert_allclose(
        fast.gaussian(ks, weights, unit, 3), generic.gaussian(ks, weights, unit, 3), atol=1e-9
    )


def test_interpolation_weights_sum_every_size_exactly_for_linear_g() -> None:
    n, small = 500, 5
    ks = size_nodes(n, small, 12)
    assert ks[0] == small + 1 and ks[-1] == n - 1 and np.all(np.diff(ks) > 0)
    weights = interpolation_weights(n, small, ks)
    every = np.arange(small + 1, n)
    for slope, offset in ((0.0, 1.0), (0.3, -2.0)):
        exact = np.sum((slope * every + offset) / (every + 1))
        assert weights @ (slope * ks + offset) == pytest.approx(exact, rel=1e-12)


def test_subsets_are_distinct_members_in_range_and_cover_everyone() -> None:
    rows = subsets(np.random.default_rng(3), 40, 6, 2_000)
    assert rows.shape == (2_000, 6) and rows.min() >= 0 and rows.max() < 40
    assert all(len(set(row)) == 6 for row in rows)
    counts = np.bincount(rows.ravel(), minlength=40)
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


@pytest.mark.parametrize("evaluation", ["l2", "l1", "dot"])
def test_size_strata_is_close_to_exact_and_its_error_report_is_honest(evaluation: str) -> None:
    g = game(16, evaluation, seed=4)
    exact = exact_shapley(g).values
    result = size_strata_shapley(g, np.random.default_rng(5))
    measured = relative_error(result.values, exact)
    assert measured < 0.03
    assert measured < 4 * result.relative_error + 0.002  # the report is not wildly optimistic


def test_size_strata_agrees_with_a_long_sampling_run_at_a_few_hundred() -> None:
    g = game(200, "l2", seed=6)
    reference = stratified_shapley(g, np.random.default_rng(7), RelativeError(0.007))
    result = estimate_shapley(g, "size_strata", np.random.default_rng(8), rel_error=0.01)
    assert result.method == "size_strata" and result.relative_error <= 0.01
    assert relative_error(result.values, reference.values) < 0.025


def test_efficiency_nearly_holds_without_being_forced() -> None:
    g = game(3_000, "l2", seed=9)
    result = size_strata_shapley(g, np.random.default_rng(10))
    grand = float(g.values_from_sums(g.vectors.sum(axis=0), np.asarray(3_000)))
    empty = float(g.values_from_sums(np.zeros(g.vectors.shape[1]), np.asarray(0)))
    assert abs(result.values.sum() - (grand - empty)) < 0.03 * abs(grand - empty)


def test_estimate_by_name_is_exact_for_dot_and_small_crowds() -> None:
    big = game(500, "dot")
    by_name = estimate_shapley(big, "size_strata", np.random.default_rng(0))
    np.testing.assert_array_equal(by_name.values, dot_shapley(big).values)
    small = game(8, "l2")
    np.testing.assert_allclose(
        estimate_shapley(small, "size_strata", np.random.default_rng(0)).values,
        exact_shapley(small).values,
    )


def test_the_shapley_service_switches_estimator_for_large_crowds() -> None:
    for evaluation, large in [*LARGE_CROWD.items(), ("l1", LARGE_CROWD_OTHERWISE)]:
        assert method_for(large - 1, evaluation) == "stratified"
        assert method_for(large, evaluation) == "size_strata"
    assert max(LARGE_CROWD.values()) < LARGE_CROWD_OTHERWISE
