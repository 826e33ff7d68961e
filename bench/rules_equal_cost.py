"""Points rules at equal cost under evaluation noise, beside the trivial baselines.

Every evaluation a rule makes is a model measured (in a real campaign, a fine-tune plus samples),
so rules are compared at the same number of evaluations and with noise on each of them. Setting:
MovieLens ml-latest-small, 100 users + 1 expert per run (our crowd draw), 4 random groups,
l2, T = 100, delta = 0.1, judging error 0.05, 50 runs (seed 0). Noise: every evaluation a run
makes (the tournament's included) gets independent N(0, sigma^2), sigma in SIGMAS, in the l2
distance's units. The LLM runs measure a 50-sample score to about 0.01 at distances of 0.1-0.3
(3-10% of the distance); at MovieLens's distances of 4-10 the same fraction is sigma 0.2-0.5.

Arms, each at one of two budgets measured in the same run (evaluations over the whole campaign):
- the rank budget (what the `rank` rule's tournaments cost: G candidates + the model per round):
  `rank`, `marginal` (it reuses the tournament's scores), and static baselines spending the same
  number of evaluations: own score `eval(u_j, e)`, leave-one-out `v(N) - v(N \\ j)` (each
  measured as often as the budget allows and averaged), KernelSHAP (ours) on the noisy game;
- the shapley budget (what our `shapley` rule costs in the same run: about 121 per accepted
  round): the `shapley` rule and the same three baselines at that budget.
Fairness: Pearson of a rule's final points (a baseline's estimate) with the converged Shapley
values of the paper's static game (noise-free; stratified to 1%). Each arm's mean with a 95%
t-interval over the runs, and each arm's paired difference from the `shapley` rule on the same
crowds. Not measured here: the game actually played (a coalition's value is what the whole
multi-round process reaches with only its members).

Run: ``.venv/bin/python bench/rules_equal_cost.py`` (writes
``bench/results/rules_equal_cost.json``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress

from crowdsft.engine.crowd import Crowd, sample_crowd
from crowdsft.engine.evaluation import EVALUATIONS, neg_l2
from crowdsft.engine.experiment import run_streams
from crowdsft.engine.shapley import (
    CentroidGame,
    MaxEvaluations,
    RelativeError,
    kernel_shapley,
    stratified_shapley,
)
from crowdsft.engine.simulation import SimulationConfig, simulate
from crowdsft.engine.stats import pearson, summarize
from crowdsft.engine_data import load_movielens
from crowdsft.reporting.plots import plot_series_with_intervals

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "movielens-ml-latest-small"
SIGMAS = (0.0, 0.01, 0.05, 0.2, 0.5)
RUNS = 50
FloatArray = NDArray[np.float64]


class NoisyL2:
    """minus l2 with N(0, sigma^2) on every row it scores, counting the rows: one evaluation
    each. Registered as an evaluation so the engine's rules and tournament use it unchanged."""

    def __init__(self) -> None:
        self.sigma, self.count = 0.0, 0
        self.rng = np.random.default_rng(0)

    def reset(self, sigma: float, seed: int) -> None:
        self.sigma, self.count, self.rng = sigma, 0, np.random.default_rng(seed)

    def __call__(self, points: FloatArray, target: FloatArray) -> FloatArray:
        clean = neg_l2(points, target)
        self.count += int(np.size(clean))
        return clean + self.rng.normal(0.0, self.sigma, np.shape(clean)) if self.sigma else clean


NOISY = NoisyL2()
EVALUATIONS.register("l2_noisy")(NOISY)


@dataclass(frozen=True)
class NoisyGame:
    """The centroid game, each coalition's value measured with noise."""

    game: CentroidGame
    sigma: float
    rng: np.random.Generator

    @property
    def n_players(self) -> int:
        return self.game.n_players

    def values(self, masks: NDArray[np.bool_]) -> FloatArray:
        clean = self.game.values(masks)
        return clean + self.rng.normal(0.0, self.sigma, clean.shape) if self.sigma else clean


def own_scores(crowd: Crowd, sigma: float, budget: int, rng: np.random.Generator) -> FloatArray:
    repeats = max(1, budget // crowd.n_users)
    clean = neg_l2(crowd.users, crowd.expert)
    noise = rng.normal(0.0, sigma, (repeats, crowd.n_users)).mean(axis=0) if sigma else 0.0
    return np.asarray(clean + noise)


def leave_one_out(game: CentroidGame, sigma: float, budget: int,
                  rng: np.random.Generator) -> FloatArray:  # fmt: skip
    n = game.n_players
    repeats = max(1, budget // (n + 1))
    masks = ~np.eye(n, dtype=bool)
    full = game.values(np.ones((1, n), dtype=bool))[0]
    without = game.values(masks)
    if sigma:
        full = full + rng.normal(0.0, sigma, repeats).mean()
        without = without + rng.normal(0.0, sigma, (repeats, n)).mean(axis=0)
    return np.asarray(full - without)


def one_run(population: FloatArray, run: int, sigma: float) -> dict[str, Any]:
    crowd_ss, sim_ss, shap_ss = run_streams(0, RUNS)[run]
    crowd = sample_crowd(population, 100, np.random.default_rng(crowd_ss))
    game = CentroidGame(crowd.users, crowd.expert, "l2")
    truth = stratified_shapley(game, np.random.default_rng(shap_ss), RelativeError(0.01)).values
    found: dict[str, Any] = {"run": run, "sigma": sigma}
    budgets: dict[str, int] = {}
    for rule in ("rank", "marginal", "shapley"):
        NOISY.reset(sigma, run * 1_000 + 7)
        config = SimulationConfig(evaluation="l2_noisy", points_rule=rule)
        trajectory = simulate(config, crowd, np.random.default_rng(sim_ss))
        found[f"{rule}@{rule if rule != 'marginal' else 'rank'}"] = pearson(
            trajectory.points, truth
        )
        found[f"distance:{rule}"] = float(trajectory.distances[-1])
        budgets[rule] = NOISY.count
    found["budget:rank"], found["budget:shapley"] = budgets["rank"], budgets["shapley"]
    rng = np.random.default_rng(run * 1_000 + 11)
    for label in ("rank", "shapley"):
        budget = budgets[label]
        found[f"own score@{label}"] = pearson(own_scores(crowd, sigma, budget, rng), truth)
        found[f"leave-one-out@{label}"] = pearson(leave_one_out(game, sigma, budget, rng), truth)
        noisy = NoisyGame(game, sigma, rng)
        kernel = kernel_shapley(noisy, rng, MaxEvaluations(budget), max(1, budget // 100))
        found[f"KernelSHAP@{label}"] = pearson(kernel.values, truth)
    return found


ARMS = ("rank@rank", "marginal@rank", "own score@rank", "leave-one-out@rank", "KernelSHAP@rank",
        "shapley@shapley", "own score@shapley", "leave-one-out@shapley",
        "KernelSHAP@shapley")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/rules_equal_cost.json")
    parser.add_argument("--img", type=Path, default=ROOT / "docs/img/rules_equal_cost.png")
    args = parser.parse_args()
    population = load_movielens(DATA)
    started = time.perf_counter()
    jobs = list(itertools.product(SIGMAS, range(RUNS)))
    rows: list[dict[str, Any]] = []
    with Progress() as bar, ProcessPoolExecutor(args.workers) as pool:
        task = bar.add_task("runs", total=len(jobs))
        futures = [pool.submit(one_run, population, run, sigma) for sigma, run in jobs]
        for future in futures:
            rows.append(future.result())
            bar.advance(task)
    table: list[dict[str, Any]] = []
    for sigma in SIGMAS:
        mine = [r for r in rows if r["sigma"] == sigma]
        reference = np.array([r["shapley@shapley"] for r in mine])
        for arm in ARMS:
            values = np.array([r[arm] for r in mine])
            rule, budget = arm.split("@")
            table.append({
                "sigma": sigma, "arm": rule, "budget": budget,
                "evaluations": summarize(np.array([r[f"budget:{budget}"] for r in mine])),
                "pearson": summarize(values),
                "minus_shapley_rule": summarize(values - reference),
                "final_distance": summarize(np.array([r[f"distance:{rule}"] for r in mine]))
                if f"distance:{rule}" in mine[0] else None,
            })  # fmt: skip
    payload = {"protocol": __doc__, "runs": RUNS, "sigmas": SIGMAS,
               "wall_seconds": time.perf_counter() - started, "cells": table,
               "raw": rows}  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    series = {
        arm.replace("@", " @ ") + " budget": [
            next((c["pearson"]["mean"], c["pearson"]["ci95_low"], c["pearson"]["ci95_high"])
                 for c in table if c["sigma"] == sigma and f"{c['arm']}@{c['budget']}" == arm)
            for sigma in SIGMAS
        ]
        for arm in ARMS
    }  # fmt: skip
    plot_series_with_intervals(SIGMAS, series, args.img, "evaluation noise sigma (l2 units)",
                               "Pearson with converged Shapley (static game)",
                               "points rules and baselines at equal cost")  # fmt: skip
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
