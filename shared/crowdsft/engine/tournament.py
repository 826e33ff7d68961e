"""One round's tournament: candidate steps, ranking, improvement gate and judging error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.evaluation import Evaluation

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def weighted_centroids(
    users: FloatArray, weights: FloatArray, labels: IntArray, n_groups: int
) -> FloatArray:
    """Per-group centroid of ``users`` weighted by ``weights``; unweighted if a group's weights
    are all zero (so a group of zero-point members still proposes something)."""
    onehot = np.zeros((n_groups, users.shape[0]))
    onehot[labels, np.arange(users.shape[0])] = 1.0
    w = onehot * weights[None, :]
    totals = w.sum(axis=1, keepdims=True)
    w = np.where(totals > 0, w, onehot)
    return np.asarray((w @ users) / w.sum(axis=1, keepdims=True))


def candidate_steps(model: FloatArray, centroids: FloatArray, delta: float) -> FloatArray:
    """``cand_g = m + delta (c_g - m)``: each group moves the model part way to its centroid."""
    return model + delta * (centroids - model)


@dataclass(frozen=True)
class TournamentOutcome:
    """``ranking[r]`` is the group placed at rank ``r`` (after any judging error)."""

    ranking: IntArray
    scores: FloatArray
    accepted: bool
    judged_wrong: bool


def run_tournament(
    model: FloatArray,
    candidates: FloatArray,
    evaluate: Evaluation,
    target: FloatArray,
    judge_error: float,
    rng: np.random.Generator,
) -> TournamentOutcome:
    """Rank candidates best first; accept only if the true best beats the current model."""
    scores = evaluate(candidates, target)
    return rank_scores(scores, float(evaluate(model[None, :], target)[0]), judge_error, rng)


def rank_scores(
    scores: FloatArray, model_score: float, judge_error: float, rng: np.random.Generator
) -> TournamentOutcome:
    """The tournament on measured scores (an LLM candidate's is measured, not computed).

    With probability ``judge_error`` (drawn every round, for a stable random stream) rank 0 is
    swapped with a uniformly chosen other rank; the model then moves to the misjudged winner.
    """
    ranking = np.argsort(-scores, kind="stable").astype(np.int64)
    accepted = bool(scores[ranking[0]] > model_score)
    errs = rng.random() < judge_error
    other = int(rng.integers(1, max(2, ranking.size)))
    judged_wrong = bool(accepted and errs and ranking.size > 1)
    if judged_wrong:
        ranking = ranking.copy()
        ranking[[0, other]] = ranking[[other, 0]]
    return TournamentOutcome(ranking, scores, accepted, judged_wrong)
