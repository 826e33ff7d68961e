"""`crowdsft simulate | sweep | shapley`: the paper's crowd simulation from the command line.

Wiring only: options are parsed here, the work is done by ``crowdsft.engine`` and the files and
plots by ``crowdsft.reporting``.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import typer
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from crowdsft.cli import app
from crowdsft.cli.progress import progress_bar
from crowdsft.engine.evaluation import EVALUATIONS
from crowdsft.engine.experiment import (
    RunResult,
    ShapleySettings,
    run_experiment,
    summarize_runs,
)
from crowdsft.engine.grouping import GROUPINGS
from crowdsft.engine.protocol import PROTOCOLS, Protocol
from crowdsft.engine.shapley import CentroidGame, estimate_shapley
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.engine_data import load_population
from crowdsft.engine_shap import paper_estimate
from crowdsft.reporting.files import (
    read_matrix,
    shapley_payload,
    write_json,
    write_runs_csv,
)
from crowdsft.reporting.plots import plot_distances, plot_heatmap, plot_points_vs_shapley

console = Console(stderr=True)

METHOD_HELP = (
    "exact | permutation | stratified | kernelshap | size_strata (the centroid game's own "
    "structure: seconds at 100,000 contributors)."
)
SWEEP_USERS = (10, 25, 50, 75, 100)
SWEEP_GROUPS = (2, 3, 4, 5)


def _workers(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


def run_setting(
    config: SimulationConfig,
    population: NDArray[np.float64],
    runs: int,
    seed: int,
    shapley: ShapleySettings,
    workers: int,
    label: str = "runs",
    protocol: Protocol = "ours",
) -> list[RunResult]:
    """All runs of one setting behind a progress bar."""
    with progress_bar(runs, label, console) as tick:
        return run_experiment(
            config,
            population,
            runs=runs,
            seed=seed,
            shapley=shapley,
            workers=_workers(workers),
            on_done=tick,
            protocol=protocol,
            reference=paper_estimate if protocol == "paper" else None,
        )


PAPER_PROTOCOL = {
    "crowd": "the first N+1 rows of the population in file order, shuffled once "
    "(pandas sample(frac=1, random_state=42)); each run draws the expert from them",
    "interleaved": "interleaved_paper: each half dealt from group 0, ties in index order",
    "paper_estimate": "shap.KernelExplainer, background one zero row, nsamples=10000, "
    "l1_reg=num_features(N): pearson_paper_estimate",
}
OUR_PROTOCOL = {
    "crowd": "N+1 distinct rows drawn afresh per run from the whole population",
    "interleaved": "interleaved: dealing continues where the bottom half ended, ties at random",
    "paper_estimate": "not computed",
}


@app.command()
def simulate(
    users: int = typer.Option(100, help="Contributors per run."),
    groups: int = typer.Option(4, help="Groups per round (G)."),
    grouping: str = typer.Option("random", help=f"One of {sorted(GROUPINGS)}."),
    evaluation: str = typer.Option("l2", help=f"One of {sorted(EVALUATIONS)}."),
    points: str = typer.Option("rank", help="Points rule: rank, marginal or shapley."),
    rounds: int = typer.Option(100, help="Rounds per run (T)."),
    runs: int = typer.Option(50, help="Independent runs."),
    delta: float = typer.Option(0.1, help="Step size toward the group centroid."),
    judge_error: float = typer.Option(0.05, help="Probability the judging swaps rank 0."),
    seed: int = typer.Option(0, help="Master seed; run i uses SeedSequence(seed).spawn(runs)[i]."),
    data: str = typer.Option("synthetic", help="'synthetic' or 'movielens:PATH'."),
    shapley_method: str = typer.Option(
        "stratified", help="exact|permutation|stratified|kernelshap"
    ),
    shapley_samples: int = typer.Option(0, help="Fixed evaluation budget (0: stop at error)."),
    shapley_rel_error: float = typer.Option(0.01, help="Target relative error ||se||/||phi||."),
    workers: int = typer.Option(0, help="Processes (0: all cores)."),
    protocol: str = typer.Option(
        "ours",
        help="ours | paper: the authors' crowd draw, interleaved dealing and tie order, and "
        "fairness also against their KernelSHAP estimate (needs shap).",
    ),
    out: Path = typer.Option(Path("out/simulate"), help="Output directory."),
) -> None:
    """Run the crowd simulation; write runs.csv, summary.json and plots to --out."""
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"choose from {', '.join(PROTOCOLS)}", param_hint="--protocol")
    chosen: Protocol = "paper" if protocol == "paper" else "ours"
    if chosen == "paper" and grouping == "interleaved":
        grouping = "interleaved_paper"
    config = SimulationConfig(
        users, groups, grouping, evaluation, points, rounds, delta, judge_error
    )
    settings = ShapleySettings(shapley_method, shapley_rel_error, shapley_samples or None)
    population = load_population(data)
    started = time.perf_counter()
    results = run_setting(config, population, runs, seed, settings, workers, protocol=chosen)
    summary = summarize_runs(results)
    out.mkdir(parents=True, exist_ok=True)
    write_runs_csv(out / "runs.csv", results)
    write_json(
        out / "summary.json",
        {
            "config": asdict(config),
            "protocol": {"name": chosen, **(PAPER_PROTOCOL if chosen == "paper" else OUR_PROTOCOL)},
            "shapley": asdict(settings),
            "data": data,
            "runs": runs,
            "seed": seed,
            "wall_seconds": time.perf_counter() - started,
            "metrics": summary,
        },
    )
    plot_distances({f"{grouping}/{evaluation}/{points}": results}, out / "distance.png")
    plot_points_vs_shapley(results, out / "points_vs_shapley.png")
    _print_summary(summary)
    console.print(f"wrote {out}/runs.csv, summary.json, distance.png, points_vs_shapley.png")


def _print_summary(summary: dict[str, dict[str, float]]) -> None:
    table = Table("metric", "mean", "std", "95% CI", "n")
    for name, s in summary.items():
        table.add_row(
            name,
            f"{s['mean']:.4g}",
            f"{s['std']:.3g}",
            f"[{s['ci95_low']:.4g}, {s['ci95_high']:.4g}]",
            str(s["n"]),
        )
    Console().print(table)


@app.command()
def sweep(
    users: str = typer.Option(",".join(map(str, SWEEP_USERS)), help="Comma-separated sizes."),
    groups: str = typer.Option(",".join(map(str, SWEEP_GROUPS)), help="Comma-separated G."),
    groupings: str = typer.Option(",".join(sorted(GROUPINGS)), help="Comma-separated."),
    evaluations: str = typer.Option(",".join(EVALUATIONS), help="Comma-separated."),
    points: str = typer.Option("rank", help="Points rule."),
    rounds: int = typer.Option(100),
    runs: int = typer.Option(50),
    seed: int = typer.Option(0),
    data: str = typer.Option("synthetic"),
    shapley_method: str = typer.Option("stratified"),
    shapley_samples: int = typer.Option(0),
    shapley_rel_error: float = typer.Option(0.01),
    workers: int = typer.Option(0),
    out: Path = typer.Option(Path("out/sweep")),
) -> None:
    """The paper's grid: users x groups x grouping x evaluation; a table, JSON and heat maps."""
    user_list = [int(x) for x in users.split(",")]
    group_list = [int(x) for x in groups.split(",")]
    cells = list(
        itertools.product(groupings.split(","), evaluations.split(","), user_list, group_list)
    )
    population = load_population(data)
    settings = ShapleySettings(shapley_method, shapley_rel_error, shapley_samples or None)
    rows: list[dict[str, object]] = []
    started = time.perf_counter()
    with progress_bar(len(cells) * runs, "sweep", console) as tick:
        for grouping, evaluation, n, g in cells:
            if g > n:
                continue
            config = SimulationConfig(n, g, grouping, evaluation, points, rounds)
            results = run_experiment(
                config, population, runs=runs, seed=seed, shapley=settings,
                workers=_workers(workers), on_done=tick,
            )  # fmt: skip
            summary = summarize_runs(results)
            rows.append(
                {"grouping": grouping, "evaluation": evaluation, "users": n, "groups": g}
                | {k: v["mean"] for k, v in summary.items()}
                | {f"{k}_ci95": [v["ci95_low"], v["ci95_high"]] for k, v in summary.items()}
            )
    wall = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "sweep.json",
        {"points": points, "runs": runs, "seed": seed, "data": data,
         "shapley": asdict(settings), "wall_seconds": wall, "cells": rows},
    )  # fmt: skip
    for grouping, evaluation in itertools.product(groupings.split(","), evaluations.split(",")):
        for metric in ("final_distance", "pearson"):
            grid = np.full((len(user_list), len(group_list)), np.nan)
            for r in rows:
                if r["grouping"] == grouping and r["evaluation"] == evaluation:
                    i = user_list.index(int(str(r["users"])))
                    j = group_list.index(int(str(r["groups"])))
                    grid[i, j] = float(str(r[metric]))
            plot_heatmap(
                grid, user_list, group_list,
                out / "heatmaps" / f"{metric}_{grouping}_{evaluation}.png",
                f"{metric}: {grouping}, {evaluation}",
            )  # fmt: skip
    table = Table("grouping", "eval", "users", "G", "final dist", "rounds<=5", "Pearson")
    for r in rows:
        table.add_row(
            *(str(r[k]) for k in ("grouping", "evaluation", "users", "groups")),
            *(f"{float(str(r[k])):.3f}" for k in ("final_distance", "rounds_to_5", "pearson")),
        )
    Console().print(table)
    console.print(f"{len(rows)} cells in {wall:.0f} s; wrote {out}/sweep.json and {out}/heatmaps/")


@app.command()
def shapley(
    players: Path = typer.Option(..., help="CSV, one contributor vector per row."),
    target: Path = typer.Option(..., help="CSV with the target vector (one row)."),
    evaluation: str = typer.Option("l2", help=f"One of {sorted(EVALUATIONS)}."),
    method: str = typer.Option("stratified", help=METHOD_HELP),
    rel_error: float = typer.Option(0.01, help="Stop at ||stderr|| / ||values|| <= this."),
    samples: int = typer.Option(0, help="Fixed evaluation budget instead (0: off)."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("shapley.json")),
) -> None:
    """Shapley values, with standard errors, of the centroid game for any contributor vectors."""
    vectors = read_matrix(players)
    goal = read_matrix(target).reshape(-1)
    game = CentroidGame(vectors, goal, evaluation)
    started = time.perf_counter()
    result = estimate_shapley(
        game, method, np.random.default_rng(seed), rel_error=rel_error, n_samples=samples or None
    )
    payload = shapley_payload(result) | {"seconds": time.perf_counter() - started}
    write_json(out, payload)
    console.print(
        f"{vectors.shape[0]} players, {method}: relative error {result.relative_error:.4f} "
        f"after {result.n_evaluations} evaluations; wrote {out}"
    )
