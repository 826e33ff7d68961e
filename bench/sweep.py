"""The paper's full sweep on MovieLens: users {10,25,50,75,100} x groups {2..5} x every grouping
x every evaluation, 50 runs per cell, converged Shapley (1%); its wall time is the benchmark.

Run: ``.venv/bin/python bench/sweep.py [--points rank|marginal|shapley] [--runs 50]``
(writes ``bench/results/sweep.json`` and ``bench/results/heatmaps/*.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crowdsft.cli.simulation import sweep

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "movielens-ml-latest-small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", default="rank")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--users", default="10,25,50,75,100")
    parser.add_argument("--groups", default="2,3,4,5")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    data = f"movielens:{DATA}" if DATA.exists() else "synthetic"
    sweep(
        users=args.users,
        groups=args.groups,
        groupings="epsilon_greedy,interleaved,random",
        evaluations="l2,l1,dot",
        points=args.points,
        rounds=100,
        runs=args.runs,
        seed=0,
        data=data,
        shapley_method="stratified",
        shapley_samples=0,
        shapley_rel_error=0.01,
        workers=0,
        out=args.out,
    )


if __name__ == "__main__":
    main()
