"""Many seeded runs of one setting: crowd draw, simulation, Shapley values and metrics.

Run ``i`` uses ``SeedSequence(seed).spawn(runs)[i]``, so runs are independent of each other and of
how they are spread over processes: parallel and serial execution give identical numbers. The crowd
and Shapley streams are spawned separately from the dynamics stream, so two settings with the same
seed see the same crowds (and the same Shapley values when the evaluation matches).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.crowd import Crowd
from crowdsft.engine.protocol import Protocol, draw_crowd
from crowdsft.engine.shapley import CentroidGame, ShapleyResult, estimate_shapley
from crowdsft.engine.simulation import SimulationConfig, Trajectory, simulate
from crowdsft.engine.stats import pearson, spearman, summarize

FloatArray = NDArray[np.float64]
# Another Shapley estimate to measure fairness against: (game, run index) -> values.
ReferenceEstimate = Callable[[CentroidGame, int], FloatArray]


@dataclass(frozen=True)
class ShapleySettings:
    """How each run's Shapley values are estimated (``n_samples`` fixes a KernelSHAP budget)."""

    method: str = "stratified"
    rel_error: float = 0.01
    n_samples: int | None = None


@dataclass(frozen=True)
class RunResult:
    """One run's metrics (a row of ``runs.csv``) plus the arrays behind them."""

    run: int
    start_distance: float
    final_distance: float
    rounds_to_5: float
    pearson: float
    spearman: float
    shapley_rel_error: float
    distances: FloatArray
    points: FloatArray
    shapley: FloatArray
    # Against a second estimate, e.g. the authors' own (NaN when none was asked for).
    pearson_paper_estimate: float = float("nan")

    def metrics(self) -> dict[str, float]:
        """The scalar metrics only."""
        d = asdict(self)
        return {k: float(d[k]) for k in METRICS}


METRICS = (
    "start_distance",
    "final_distance",
    "rounds_to_5",
    "pearson",
    "spearman",
    "shapley_rel_error",
    "pearson_paper_estimate",
)


def run_streams(seed: int, runs: int) -> list[tuple[np.random.SeedSequence, ...]]:
    """Per run: (crowd, dynamics, Shapley) seed sequences."""
    return [tuple(s.spawn(3)) for s in np.random.SeedSequence(seed).spawn(runs)]


def run_once(
    config: SimulationConfig,
    population: FloatArray,
    shapley: ShapleySettings,
    seed: int,
    run: int,
    runs: int,
    protocol: Protocol = "ours",
    reference: ReferenceEstimate | None = None,
) -> RunResult:
    """Run number ``run`` of ``runs`` for this seed (picklable, for worker processes). The
    paper protocol draws the authors' crowd; `reference` (e.g. the authors' own KernelSHAP
    estimate) is a second estimate that fairness is also measured against."""
    crowd_ss, sim_ss, shap_ss = run_streams(seed, runs)[run]
    crowd = draw_crowd(protocol, population, config.n_users, np.random.default_rng(crowd_ss))
    trajectory = simulate(config, crowd, np.random.default_rng(sim_ss))
    values = shapley_of_crowd(crowd, config.evaluation, shapley, np.random.default_rng(shap_ss))
    result = run_result(run, trajectory, values)
    if reference is not None:
        theirs = reference(CentroidGame(crowd.users, crowd.expert, config.evaluation), run)
        result = replace(result, pearson_paper_estimate=pearson(trajectory.points, theirs))
    return result


def shapley_of_crowd(
    crowd: Crowd, evaluation: str, settings: ShapleySettings, rng: np.random.Generator
) -> ShapleyResult:
    """Shapley values of the paper's centroid game for this crowd."""
    game = CentroidGame(crowd.users, crowd.expert, evaluation)
    return estimate_shapley(
        game, settings.method, rng, rel_error=settings.rel_error, n_samples=settings.n_samples
    )


def run_result(run: int, trajectory: Trajectory, values: ShapleyResult) -> RunResult:
    """Metrics of one run from its trajectory and its crowd's Shapley estimate."""
    return RunResult(
        run=run,
        start_distance=float(trajectory.distances[0]),
        final_distance=float(trajectory.distances[-1]),
        rounds_to_5=trajectory.rounds_to(),
        pearson=pearson(trajectory.points, values.values),
        spearman=spearman(trajectory.points, values.values),
        shapley_rel_error=values.relative_error,
        distances=trajectory.distances,
        points=trajectory.points,
        shapley=values.values,
    )


def run_experiment(
    config: SimulationConfig,
    population: FloatArray,
    *,
    runs: int = 50,
    seed: int = 0,
    shapley: ShapleySettings | None = None,
    workers: int = 1,
    on_done: Callable[[RunResult], None] | None = None,
    protocol: Protocol = "ours",
    reference: ReferenceEstimate | None = None,
) -> list[RunResult]:
    """All runs of one setting, in run order, optionally spread over ``workers`` processes."""
    config.validate()
    shapley = shapley or ShapleySettings()
    results: list[RunResult] = []
    if workers <= 1:
        for i in range(runs):
            results.append(
                run_once(config, population, shapley, seed, i, runs, protocol, reference)
            )
            if on_done:
                on_done(results[-1])
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(run_once, config, population, shapley, seed, i, runs, protocol, reference)
            for i in range(runs)
        ]
        for f in futures:
            results.append(f.result())
            if on_done:
                on_done(results[-1])
    return results


def summarize_runs(results: list[RunResult]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation and 95% interval of every metric (NaNs left out and counted)."""
    out = {m: summarize(np.array([getattr(r, m) for r in results])) for m in METRICS}
    reached = np.array([np.isfinite(r.rounds_to_5) for r in results], dtype=float)
    out["reached_5"] = summarize(reached)
    return out
