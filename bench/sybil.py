"""What a sybil gains by copying a contributor, under Shapley values and under the points rules.

Intake refuses exact and disguised copies (`domain/text.py`), so a determined sybil must submit
near-copies that are different text. This bench asks what such copies are worth: for each of
SEEDS crowds (the paper's synthetic population, n = 30, l2 centroid game), the contributor with
the largest Shapley value gets k = 1, 2, 4 copies (exact vectors, and copies with Gaussian noise
of 0.05 per genre). Reported, as means with 95% t-intervals over the seeds:
- Shapley: the original's value after copying plus the copies' values, over its value before
  (1 = copying moves no value to the original's owner; the game splits it among the copies);
- points: the original's plus its copies' points after 30 rounds of the rank and shapley rules,
  over the original's points without copies (same seeds, 4 random groups).

Run: ``.venv/bin/python bench/sybil.py`` (writes ``bench/results/sybil.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from crowdsft.engine.crowd import Crowd, sample_crowd, synthetic_population
from crowdsft.engine.experiment import ShapleySettings, shapley_of_crowd
from crowdsft.engine.simulation import SimulationConfig, simulate

OUT = Path(__file__).parent / "results" / "sybil.json"
SEEDS = 10
N_USERS = 30
COPIES = (1, 2, 4)
NOISE = {"exact": 0.0, "noisy": 0.05}
SHAPLEY = ShapleySettings("stratified", 0.01)


def with_copies(crowd: Crowd, j: int, k: int, noise: float, rng: np.random.Generator) -> Crowd:
    copies = crowd.users[j] + noise * rng.standard_normal((k, crowd.users.shape[1]))
    return Crowd(users=np.vstack([crowd.users, np.clip(copies, 0, None)]), expert=crowd.expert)


def interval(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    half = float(stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / np.sqrt(a.size))
    return {"mean": round(float(a.mean()), 4), "ci95": round(half, 4)}


def points_of(crowd: Crowd, rule: str, seed: int, owned: list[int]) -> float:
    config = SimulationConfig(n_users=crowd.n_users, n_rounds=30, points_rule=rule)
    trajectory = simulate(config, crowd, np.random.default_rng(seed))
    return float(trajectory.points[owned].sum())


def main() -> None:
    population = synthetic_population(np.random.default_rng(0))
    shapley_ratio: dict[str, list[float]] = {}
    points_ratio: dict[str, list[float]] = {}
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        crowd = sample_crowd(population, N_USERS, rng)
        before = shapley_of_crowd(crowd, "l2", SHAPLEY, np.random.default_rng(seed)).values
        j = int(np.argmax(before))
        alone = {rule: points_of(crowd, rule, seed, [j]) for rule in ("rank", "shapley")}
        for name, noise in NOISE.items():
            for k in COPIES:
                copied = with_copies(crowd, j, k, noise, np.random.default_rng(100 + seed))
                owned = [j, *range(N_USERS, N_USERS + k)]
                after = shapley_of_crowd(copied, "l2", SHAPLEY, np.random.default_rng(seed))
                key = f"{name}_k{k}"
                shapley_ratio.setdefault(key, []).append(
                    float(after.values[owned].sum() / before[j])
                )
                for rule in ("rank", "shapley"):
                    total = points_of(copied, rule, seed, owned)
                    points_ratio.setdefault(f"{rule}_{key}", []).append(total / alone[rule])
        print(f"seed {seed} done", flush=True)
    result: dict[str, Any] = {
        "protocol": __doc__,
        "seeds": SEEDS,
        "n_users": N_USERS,
        "shapley_owned_over_original": {k: interval(v) for k, v in shapley_ratio.items()},
        "points_owned_over_original": {k: interval(v) for k, v in points_ratio.items()},
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in list(result)[3:]}, indent=2))


if __name__ == "__main__":
    main()
