"""The paper's crowd simulation: rounds of grouping, candidate steps, tournament and points.

Pure and seeded: a run is a function of its config, its crowd and its random generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.crowd import Crowd
from crowdsft.engine.evaluation import get_evaluation, l2_distance
from crowdsft.engine.grouping import get_grouping
from crowdsft.engine.ledger import pay, standing
from crowdsft.engine.points import RoundState, get_point_rule
from crowdsft.engine.tournament import candidate_steps, run_tournament, weighted_centroids

FloatArray = NDArray[np.float64]

CONVERGENCE_DISTANCE = 5.0


@dataclass(frozen=True)
class SimulationConfig:
    """One setting of the simulation; defaults are the paper's main setting."""

    n_users: int = 100
    n_groups: int = 4
    grouping: str = "random"
    evaluation: str = "l2"
    points_rule: str = "rank"
    n_rounds: int = 100
    delta: float = 0.1
    judge_error: float = 0.05
    model_low: float = 0.0
    model_high: float = 5.0

    def validate(self) -> None:
        """Fail early on names or sizes that cannot run."""
        get_grouping(self.grouping)
        get_evaluation(self.evaluation)
        get_point_rule(self.points_rule)
        if not 1 <= self.n_groups <= self.n_users:
            raise ValueError("need 1 <= groups <= users")


@dataclass(frozen=True)
class Trajectory:
    """A run's history: ``distances[t]`` is the L2 distance after ``t`` rounds (0 = start)."""

    distances: FloatArray
    points: FloatArray
    accepted: NDArray[np.bool_]
    model: FloatArray

    def rounds_to(self, threshold: float = CONVERGENCE_DISTANCE) -> float:
        """First round count at which the distance is ``<= threshold``; NaN if never."""
        hit = np.flatnonzero(self.distances <= threshold)
        return float(hit[0]) if hit.size else float("nan")


def simulate(config: SimulationConfig, crowd: Crowd, rng: np.random.Generator) -> Trajectory:
    """Run ``config.n_rounds`` rounds on ``crowd``; the model starts uniform, points as the
    ledger pays them (`crowdsft.engine.ledger`)."""
    group = get_grouping(config.grouping)
    evaluate = get_evaluation(config.evaluation)
    rule = get_point_rule(config.points_rule)
    users, target = crowd.users, crowd.expert
    model = np.asarray(rng.uniform(config.model_low, config.model_high, users.shape[1]))
    balances = np.zeros(users.shape[0])
    known = np.zeros(users.shape[0], dtype=bool)
    distances = np.empty(config.n_rounds + 1)
    accepted = np.zeros(config.n_rounds, dtype=bool)
    distances[0] = l2_distance(model, target)
    for t in range(config.n_rounds):
        points = standing(balances, known)
        labels = group(points, config.n_groups, t, config.n_rounds, rng)
        centroids = weighted_centroids(users, points**2, labels, config.n_groups)
        candidates = candidate_steps(model, centroids, config.delta)
        outcome = run_tournament(model, candidates, evaluate, target, config.judge_error, rng)
        awards = np.zeros(users.shape[0])
        if outcome.accepted:
            state = RoundState(
                users,
                points,
                labels,
                config.n_groups,
                model,
                candidates,
                outcome,
                target,
                evaluate,
                config.delta,
            )
            awards = rule(state)
            model = candidates[outcome.ranking[0]]
            accepted[t] = True
        balances = balances + pay(awards, outcome.accepted, known).moves
        known[:] = True
        distances[t + 1] = l2_distance(model, target)
    return Trajectory(distances, standing(balances, known), accepted, model)
