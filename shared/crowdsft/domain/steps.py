"""One Crowd-SFT round, step by step, for services that keep the state between steps.

The engine's `simulate` runs a whole campaign in one loop; here each step takes and returns the
random stream's serialised state, so selection can open a round, wait for training, and decide
later, in another process if need be, and still draw exactly the numbers the engine draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from crowdsft.domain.campaign import CampaignSpec, dump_rng, load_rng, streams
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.round import CandidateResult, Decision, Round
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


def decision_of(
    outcome: TournamentOutcome,
    rng_after: str,
    base: Measurement,
    candidates: Sequence[Measurement],
    distances: FloatArray,
    *,
    measured: bool = False,
    positions: list[list[float]] | None = None,
) -> Decision:
    """The tournament's outcome as a round's decision. `measured`: training measured the
    models' distances, so its figures (held-out distance, metrics, the base's distance) go to
    the lineage too."""
    results = [
        CandidateResult(
            group_index=g,
            model_id=c.model_id,
            position=c.position,
            score=float(outcome.scores[g]),
            distance=float(distances[g]),
            heldout_distance=c.heldout_distance if measured else None,
            artifact_ref=c.artifact_ref,
            metrics=c.metrics if measured else {},
        )
        for g, c in enumerate(candidates)
    ]
    return Decision(
        base_position=base.position,
        base_distance=base.distance if measured else None,
        candidates=results,
        positions=positions,
        ranking=[int(g) for g in outcome.ranking],
        accepted=outcome.accepted,
        judged_wrong=outcome.judged_wrong,
        winner_model_id=results[int(outcome.ranking[0])].model_id if outcome.accepted else None,
        rng_after=rng_after,
    )


def awards(spec: CampaignSpec, decided: Round) -> FloatArray:
    """Points per contributor for a decided round: the campaign's rule if the model moved,
    else 0. Everything the rule looks at was stored with the round, so any replay agrees."""
    decision = decided.decision
    if decision is None:
        raise ValueError(f"{decided.round_id} is not decided")
    n = len(decided.contributor_ids)
    if not decision.accepted:
        return np.zeros(n)
    outcome = TournamentOutcome(
        ranking=np.asarray(decision.ranking, dtype=np.int64),
        scores=np.asarray([c.score for c in decision.candidates]),
        accepted=decision.accepted,
        judged_wrong=decision.judged_wrong,
    )
    state = RoundState(
        np.asarray(decided.positions, dtype=np.float64),
        np.asarray(decided.opening.points, dtype=np.float64),
        np.asarray(decided.opening.labels, dtype=np.int64),
        len(decision.candidates),
        np.asarray(decision.base_position, dtype=np.float64),
        np.asarray([c.position for c in decision.candidates], dtype=np.float64),
        outcome,
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
