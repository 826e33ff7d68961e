"""The authors' protocol: their crowd draw, their interleaved dealing, their Shapley estimate."""

from __future__ import annotations

import numpy as np
import pytest

from crowdsft.engine.experiment import ShapleySettings, run_experiment
from crowdsft.engine.grouping import get_grouping
from crowdsft.engine.protocol import draw_crowd, paper_crowd, paper_pool
from crowdsft.engine.shapley import CentroidGame, exact_shapley
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.engine_shap import paper_estimate, paper_kernelshap

POPULATION = np.arange(40 * 3, dtype=np.float64).reshape(40, 3)  # row i starts at 3 i


def test_the_pool_is_the_first_rows_in_pandas_shuffled_order() -> None:
    pandas = pytest.importorskip("pandas")
    pool = paper_pool(POPULATION, 10)
    theirs = pandas.DataFrame(POPULATION[:11]).sample(frac=1, random_state=42).to_numpy()
    np.testing.assert_array_equal(pool, theirs)
    with pytest.raises(ValueError, match="too small"):
        paper_pool(POPULATION, 40)


def test_each_run_draws_its_expert_from_the_same_pool() -> None:
    pool = paper_pool(POPULATION, 10)
    experts = set()
    for seed in range(30):
        crowd = paper_crowd(pool, np.random.default_rng(seed))
        rows = {tuple(r) for r in crowd.users} | {tuple(crowd.expert)}
        assert rows == {tuple(r) for r in pool}  # the same 11 users every run
        assert tuple(crowd.expert) not in {tuple(r) for r in crowd.users}
        experts.add(tuple(crowd.expert))
    assert len(experts) > 5  # the runs differ in the expert
    ours = draw_crowd("ours", POPULATION, 10, np.random.default_rng(0))
    assert ours.users.shape == (10, 3)
    assert not {tuple(r) for r in ours.users} <= {tuple(r) for r in pool}  # afresh from all 40


def test_their_interleaving_deals_each_half_from_group_zero_with_stable_ties() -> None:
    deal = get_grouping("interleaved_paper")
    points = np.array([5.0, 1.0, 1.0, 1.0, 9.0, 7.0, 1.0, 8.0, 6.0, 2.0])
    for seed in range(20):
        labels = deal(points, 3, 0, 10, np.random.default_rng(seed))
        order = np.argsort(points, kind="stable")  # ties (four at 1.0) in index order
        bottom, top = set(order[:5].tolist()), set(order[5:].tolist())
        assert bottom == {1, 2, 3, 6, 9}
        for half in (bottom, top):  # 5 members into 3 groups from group 0: sizes 2, 2, 1
            sizes = np.bincount(labels[sorted(half)], minlength=3)
            assert sizes.tolist() == [2, 2, 1]
    # ours continues from where the bottom half stopped: group sizes 4, 3, 3 overall
    ours = get_grouping("interleaved")(points, 3, 0, 10, np.random.default_rng(0))
    assert sorted(np.bincount(ours, minlength=3).tolist()) == [3, 3, 4]


def test_the_paper_protocol_also_measures_fairness_against_their_estimate() -> None:
    pytest.importorskip("shap")
    config = SimulationConfig(n_users=8, n_groups=2, n_rounds=5)
    settings = ShapleySettings("exact")
    [run] = run_experiment(config, POPULATION, runs=1, shapley=settings, protocol="paper",
                           reference=paper_estimate)  # fmt: skip
    assert np.isfinite(run.pearson_paper_estimate)
    [ours] = run_experiment(config, POPULATION, runs=1, shapley=settings)
    assert np.isnan(ours.pearson_paper_estimate)


def test_their_estimate_is_kernelshap_with_every_player_kept() -> None:
    pytest.importorskip("shap")
    rng = np.random.default_rng(3)
    game = CentroidGame(rng.uniform(0, 5, (8, 3)), rng.uniform(0, 5, 3), "l2")
    exact = exact_shapley(game).values
    # 8 players: 10,000 samples enumerate every coalition, so the estimate is exact.
    np.testing.assert_allclose(paper_kernelshap(game, seed=0), exact, atol=1e-8)
