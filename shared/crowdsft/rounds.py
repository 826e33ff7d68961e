"""One Crowd-SFT round, step by step, for services that keep the state between steps.

The engine's `simulate` runs a whole campaign in one loop; here each step takes and returns the
random stream's serialised state, so selection can open a round, wait for training, and decide
later, in another process if need be, and still draw exactly the numbers the engine draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from crowdsft.campaigns import CampaignSpec, dump_rng, load_rng, streams
from crowdsft.contracts import GroupAssignment
from crowdsft.engine.crowd import Crowd, sample_crowd
from crowdsft.engine.evaluation import get_evaluation
from crowdsft.engine.grouping import get_grouping
from crowdsft.engine.points import RoundState, get_point_rule
from crowdsft.engine.simulation import SimulationConfig, Trajectory, simulate
from crowdsft.engine.tournament import (
    TournamentOutcome,
    candidate_steps,
    rank_scores,
    weighted_centroids,
)
from crowdsft.engine_data import load_population

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def group_crowd(
    spec: CampaignSpec, points: FloatArray, round_index: int, rng_state: str
) -> tuple[IntArray, str]:
    """Labels (contributor -> group) and the stream's state after grouping."""
    rng = load_rng(rng_state)
    groups = min(spec.n_groups, points.size)
    labels = get_grouping(spec.grouping)(points, groups, round_index, spec.policy.max_rounds, rng)
    return labels, dump_rng(rng)


def group_assignments(contributor_ids: list[str], labels: list[int]) -> list[GroupAssignment]:
    """Who was in which group, from a round's contributor order and labels."""
    members: dict[int, list[str]] = {}
    for contributor_id, label in zip(contributor_ids, labels, strict=True):
        members.setdefault(int(label), []).append(contributor_id)
    return [GroupAssignment(group_index=g, contributor_ids=members[g]) for g in sorted(members)]


def vector_candidate(
    base: FloatArray, members: FloatArray, weights: FloatArray, delta: float
) -> FloatArray:
    """The vector backend's training: a step toward the members' weighted centroid."""
    labels = np.zeros(members.shape[0], dtype=np.int64)
    centroid = weighted_centroids(members, weights, labels, 1)
    return np.asarray(candidate_steps(base, centroid, delta)[0])


def judge(
    spec: CampaignSpec, base: FloatArray, candidates: FloatArray, rng_state: str
) -> tuple[TournamentOutcome, str]:
    """Rank the candidates against the target with the improvement gate and judging error."""
    evaluate = get_evaluation(spec.evaluation)
    target = np.asarray(spec.target, dtype=np.float64)
    base_score = float(evaluate(base[None, :], target)[0])
    return judge_measured(spec, evaluate(candidates, target), base_score, rng_state)


def judge_measured(
    spec: CampaignSpec, scores: FloatArray, base_score: float, rng_state: str
) -> tuple[TournamentOutcome, str]:
    """The tournament on scores: computed from vectors (`judge`) or measured by the training
    workers (the lora backend)."""
    rng = load_rng(rng_state)
    outcome = rank_scores(scores, base_score, spec.judge_error, rng)
    return outcome, dump_rng(rng)


@dataclass(frozen=True)
class DecidedRound:
    """What scoring needs to apply a points rule to a decided round."""

    users: FloatArray
    points: FloatArray
    labels: IntArray
    base: FloatArray
    candidates: FloatArray
    outcome: TournamentOutcome


def awards(spec: CampaignSpec, decided: DecidedRound) -> FloatArray:
    """Points per contributor for the round: the campaign's rule if the model moved, else 0."""
    if not decided.outcome.accepted:
        return np.zeros(decided.points.size)
    state = RoundState(
        decided.users,
        decided.points,
        decided.labels,
        int(decided.candidates.shape[0]),
        decided.base,
        decided.candidates,
        decided.outcome,
        np.asarray(spec.target, dtype=np.float64),
        get_evaluation(spec.evaluation),
        spec.delta,
    )
    return np.asarray(get_point_rule(spec.points_rule)(state), dtype=np.float64)


def synthetic_crowd(n_users: int, seed: int) -> Crowd:
    """The crowd `crowdsft simulate --seed SEED --runs 1` draws from the synthetic population."""
    population = load_population("synthetic")
    return sample_crowd(population, n_users, np.random.default_rng(streams(seed)[0]))


def engine_run(spec: CampaignSpec, crowd: Crowd) -> Trajectory:
    """The whole campaign in the in-process engine: what the services must reproduce."""
    config = SimulationConfig(
        n_users=crowd.n_users,
        n_groups=spec.n_groups,
        grouping=spec.grouping,
        evaluation=spec.evaluation,
        points_rule=spec.points_rule,
        n_rounds=spec.policy.max_rounds,
        delta=spec.delta,
        judge_error=spec.judge_error,
    )
    return simulate(config, crowd, np.random.default_rng(streams(spec.seed)[1]))
