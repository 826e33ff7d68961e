"""Fairness against the game actually played, not the paper's static game.

A coalition's value is what the whole campaign reaches with only its members: for a crowd and a
points rule, ``v(S) = d_0 - d_T(S)``, where ``d_T(S)`` is the final L2 distance of the full
multi-round process (T rounds, G groups, or |S| groups when fewer members, that rule, the same
starting model and the same random streams) run with the members of S alone, ``d_0`` the
starting distance, and ``v(empty) = 0``. The rule changes the process (its points weight the
centroids), so each rule has its own played game.

Setting (smaller than the paper's, so that every coalition can be a whole campaign): MovieLens,
N_USERS = 20 users + 1 expert per crowd (our draw), 4 random groups, l2, T = 100, delta = 0.1,
judging error 0.05, no evaluation noise, CROWDS crowds (seed 0). Values by antithetic permutation
sampling (``crowdsft.engine.shapley.permutation_shapley``, UNITS units of 2 orders each, with its
standard errors). Reported per rule: Pearson of the rule's final points with the played game's
values and with the static game's exact values, and the same for the static baselines (own score,
leave-one-out, exact static Shapley) against the played game; means with 95% t-intervals over
the crowds, plus the estimate's relative error.

Run: ``.venv/bin/python bench/played_game.py`` (writes ``bench/results/played_game.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from rich.progress import Progress

from crowdsft.engine.crowd import Crowd, sample_crowd
from crowdsft.engine.evaluation import neg_l2
from crowdsft.engine.experiment import run_streams
from crowdsft.engine.shapley import (
    CentroidGame,
    FunctionGame,
    MaxSamples,
    exact_shapley,
    permutation_shapley,
)
from crowdsft.engine.simulation import SimulationConfig, simulate
from crowdsft.engine.stats import pearson, summarize
from crowdsft.engine_data import load_movielens

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "movielens-ml-latest-small"
N_USERS, GROUPS, CROWDS, UNITS = 20, 4, 10, 120
RULES = ("rank", "shapley")
FloatArray = NDArray[np.float64]


def campaign_value(crowd: Crowd, config: SimulationConfig, seed: np.random.SeedSequence,
                   members: NDArray[np.bool_]) -> float:  # fmt: skip
    """How much closer the campaign run by these members alone ends than it started."""
    size = int(members.sum())
    if size == 0:
        return 0.0
    alone = Crowd(users=crowd.users[members], expert=crowd.expert)
    run = replace(config, n_users=size, n_groups=min(config.n_groups, size))
    trajectory = simulate(run, alone, np.random.default_rng(seed))
    return float(trajectory.distances[0] - trajectory.distances[-1])


def one_crowd(population: FloatArray, index: int, rule: str) -> dict[str, Any]:
    crowd_ss, sim_ss, shap_ss = run_streams(0, CROWDS)[index]
    crowd = sample_crowd(population, N_USERS, np.random.default_rng(crowd_ss))
    config = SimulationConfig(n_users=N_USERS, n_groups=GROUPS, points_rule=rule)
    points = simulate(config, crowd, np.random.default_rng(sim_ss)).points

    def values(masks: NDArray[np.bool_]) -> FloatArray:
        return np.array([campaign_value(crowd, config, sim_ss, m) for m in masks])

    started = time.perf_counter()
    played = permutation_shapley(
        FunctionGame(N_USERS, values), np.random.default_rng(shap_ss), MaxSamples(UNITS)
    )
    seconds = time.perf_counter() - started
    static = exact_shapley(CentroidGame(crowd.users, crowd.expert, "l2")).values
    game = CentroidGame(crowd.users, crowd.expert, "l2")
    everyone = game.values(np.ones((1, N_USERS), dtype=bool))[0]
    leave_one_out = everyone - game.values(~np.eye(N_USERS, dtype=bool))
    own = neg_l2(crowd.users, crowd.expert)
    truth = played.values
    return {
        "crowd": index, "rule": rule, "seconds": seconds,
        "played_relative_error": played.relative_error,
        "points_vs_played": pearson(points, truth),
        "points_vs_static": pearson(points, static),
        "static_shapley_vs_played": pearson(static, truth),
        "leave_one_out_vs_played": pearson(leave_one_out, truth),
        "own_score_vs_played": pearson(own, truth),
        "played_values": truth.tolist(), "played_std_errors": played.stderr.tolist(),
    }  # fmt: skip


FIGURES = ("points_vs_played", "points_vs_static", "static_shapley_vs_played",
           "leave_one_out_vs_played", "own_score_vs_played", "played_relative_error",
           "seconds")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/played_game.json")
    args = parser.parse_args()
    population = load_movielens(DATA)
    started = time.perf_counter()
    jobs = [(rule, index) for rule in RULES for index in range(CROWDS)]
    rows: list[dict[str, Any]] = []
    with Progress() as bar, ProcessPoolExecutor(args.workers) as pool:
        task = bar.add_task("crowds x rules", total=len(jobs))
        for future in [pool.submit(one_crowd, population, i, rule) for rule, i in jobs]:
            rows.append(future.result())
            bar.advance(task)
    summary = {
        rule: {f: summarize(np.array([r[f] for r in rows if r["rule"] == rule])) for f in FIGURES}
        for rule in RULES
    }
    payload = {"protocol": __doc__, "n_users": N_USERS, "groups": GROUPS, "crowds": CROWDS,
               "units": UNITS, "wall_seconds": time.perf_counter() - started,
               "summary": summary, "raw": rows}  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
