"""Simulation and experiments: seeded, reproducible across processes, and actually converging."""

from pathlib import Path

import numpy as np
import pytest

from crowdsft.engine.crowd import sample_crowd, synthetic_population
from crowdsft.engine.experiment import ShapleySettings, run_experiment, summarize_runs
from crowdsft.engine.grouping import GROUPINGS
from crowdsft.engine.points import POINT_RULES
from crowdsft.engine.simulation import SimulationConfig, simulate
from crowdsft.engine.stats import summarize
from crowdsft.engine_data import load_movielens

POP = synthetic_population(np.random.default_rng(0))
MOVIELENS = Path(__file__).resolve().parents[4] / "shared" / "data" / "movielens-ml-latest-small"
FAST = ShapleySettings(method="stratified", rel_error=0.05)


@pytest.mark.parametrize("grouping", sorted(GROUPINGS))
@pytest.mark.parametrize("rule", sorted(POINT_RULES))
def test_every_grouping_and_rule_runs_and_improves(grouping: str, rule: str) -> None:
    config = SimulationConfig(
        n_users=20, n_groups=3, grouping=grouping, points_rule=rule, n_rounds=40
    )
    crowd = sample_crowd(POP, 20, np.random.default_rng(1))
    traj = simulate(config, crowd, np.random.default_rng(2))
    assert traj.distances.shape == (41,)
    assert traj.distances[-1] < traj.distances[0]
    assert traj.points.shape == (20,)
    if rule in ("rank", "shapley"):
        assert np.all(traj.points >= 1.0)


def test_model_only_moves_on_accepted_rounds() -> None:
    config = SimulationConfig(n_users=20, n_groups=4, n_rounds=60, judge_error=0.0)
    traj = simulate(
        config, sample_crowd(POP, 20, np.random.default_rng(3)), np.random.default_rng(4)
    )
    moved = np.diff(traj.distances) != 0
    np.testing.assert_array_equal(moved[~traj.accepted], False)
    assert np.all(np.diff(traj.distances)[traj.accepted] < 0)  # no judging error: always better


def test_seeded_and_parallel_equals_serial() -> None:
    config = SimulationConfig(n_users=15, n_groups=3, n_rounds=30, points_rule="shapley")
    serial = run_experiment(config, POP, runs=4, seed=7, shapley=FAST)
    again = run_experiment(config, POP, runs=4, seed=7, shapley=FAST)
    parallel = run_experiment(config, POP, runs=4, seed=7, shapley=FAST, workers=2)
    for a, b, c in zip(serial, again, parallel, strict=True):
        np.testing.assert_equal([a.metrics(), b.metrics()], [c.metrics(), c.metrics()])
        np.testing.assert_array_equal(a.points, c.points)
    other = run_experiment(config, POP, runs=1, seed=8, shapley=FAST)
    assert other[0].final_distance != serial[0].final_distance


def test_summary_and_metrics() -> None:
    config = SimulationConfig(n_users=20, n_groups=4, n_rounds=50, points_rule="shapley")
    results = run_experiment(config, POP, runs=3, seed=1, shapley=FAST)
    summary = summarize_runs(results)
    assert summary["pearson"]["mean"] > 0.5
    assert summary["shapley_rel_error"]["mean"] <= 0.05
    assert summary["final_distance"]["ci95_low"] <= summary["final_distance"]["mean"]
    s = summarize(np.array([1.0, 2.0, 3.0, np.nan]))
    assert s["mean"] == 2.0 and s["n"] == 3 and s["std"] == 1.0


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SimulationConfig(grouping="bogus").validate()
    with pytest.raises(ValueError):
        SimulationConfig(n_users=3, n_groups=4).validate()


@pytest.mark.skipif(not MOVIELENS.exists(), reason="MovieLens data not present")
def test_movielens_matrix() -> None:
    matrix = load_movielens(MOVIELENS)
    assert matrix.shape == (610, 20)
    assert matrix.min() == 0.0 and matrix.max() <= 5.0
    assert 0.1 < (matrix == 0).mean() < 0.3
