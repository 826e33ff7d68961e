"""Point rules: how an accepted round's outcome turns into points per contributor.

Rules are called only for accepted rounds and return each contributor's award for the round.
``rank`` and ``marginal`` are the paper's; ``shapley`` is ours (see :func:`shapley_points`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.evaluation import Evaluation
from crowdsft.engine.registry import Registry
from crowdsft.engine.shapley import TableGame, exact_shapley
from crowdsft.engine.tournament import TournamentOutcome, candidate_steps

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]


@dataclass(frozen=True)
class RoundState:
    """Everything a rule may look at: the crowd, the groups and the round's tournament."""

    users: FloatArray
    points: FloatArray
    labels: IntArray
    n_groups: int
    model: FloatArray
    candidates: FloatArray
    outcome: TournamentOutcome
    target: FloatArray
    evaluate: Evaluation
    delta: float

    @property
    def weights(self) -> FloatArray:
        """The method's centroid weights: points squared."""
        return self.points**2


PointRule: TypeAlias = Callable[[RoundState], FloatArray]
POINT_RULES: Registry[PointRule] = Registry("points rule")
register = POINT_RULES.register
get_point_rule = POINT_RULES.lookup


@register("rank")
def rank_points(state: RoundState) -> FloatArray:
    """The paper's rule: every member of the group at rank ``r`` gains ``G - r``."""
    rank_of_group = np.empty(state.n_groups, dtype=np.int64)
    rank_of_group[state.outcome.ranking] = np.arange(state.n_groups)
    return (state.n_groups - rank_of_group[state.labels]).astype(np.float64)


@register("marginal")
def marginal_points(state: RoundState) -> FloatArray:
    """The paper's alternative: members of group ``g`` gain ``eval(cand_g) - eval(m)``."""
    base = state.evaluate(state.model[None, :], state.target)[0]
    return np.asarray(state.outcome.scores[state.labels] - base)


def group_game_shares(state: RoundState) -> FloatArray:
    """Exact Shapley split over the ``G`` groups of the round's pooled-step game.

    ``w(T) = eval(m + delta (c_T - m)) - eval(m)`` where ``c_T`` pools the (points-squared
    weighted) members of the groups in ``T``: what the groups in ``T`` would have achieved had they
    worked together. ``2**G`` coalitions, evaluated in one batch.
    """
    g = state.n_groups
    idx = np.arange(2**g)
    group_masks = ((idx[:, None] >> np.arange(g)) & 1).astype(bool)
    member_masks = group_masks[:, state.labels].astype(np.float64)
    w = state.weights
    if not np.any(w > 0):
        w = np.ones_like(w)
    wsum = member_masks @ w
    centroids = (member_masks * w[None, :]) @ state.users / np.maximum(wsum, 1e-300)[:, None]
    steps = candidate_steps(state.model, centroids, state.delta)
    base = state.evaluate(state.model[None, :], state.target)[0]
    table = np.where(wsum > 0, state.evaluate(steps, state.target) - base, 0.0)
    return exact_shapley(TableGame(table)).values


def leave_one_out_effects(state: RoundState) -> FloatArray:
    """Each member's effect on its group's step, as an equal member: ``eval(c) - eval(c - j)``.

    ``c`` is the step toward the group's *unweighted* centroid and ``c - j`` the same without
    ``j`` (``(S_g - u_j) / (n_g - 1)``), so the effect measures the member's data, not its current
    points. A member alone in its group gets the whole step.
    """
    users, labels = state.users, state.labels
    counts = np.bincount(labels, minlength=state.n_groups).astype(np.float64)
    sums = np.zeros((state.n_groups, users.shape[1]))
    np.add.at(sums, labels, users)
    base = state.evaluate(state.model[None, :], state.target)[0]
    full = state.evaluate(
        candidate_steps(state.model, sums / counts[:, None], state.delta), state.target
    )
    rest_n = counts[labels] - 1.0
    rest_centroid = (sums[labels] - users) / np.maximum(rest_n, 1.0)[:, None]
    without = state.evaluate(candidate_steps(state.model, rest_centroid, state.delta), state.target)
    without = np.where(rest_n > 0, without, base)
    return np.asarray(full[labels] - without)


@register("shapley")
def shapley_points(state: RoundState) -> FloatArray:
    """Our rule: points follow each contributor's share of the round's possible improvement.

    1. Split the pooled-step game's value exactly over the ``G`` groups (Shapley, ``2**G``
       coalitions), so a group is paid for what it adds to the others, not for its rank.
    2. Inside group ``g``, each member gets an equal part of the share plus its leave-one-out
       effect on the group's (unweighted) step, centred within the group, so the group's members
       together receive exactly its share.
    3. Shift the round's awards so the round's least useful contributor gets 0, and scale by
       ``n`` (points are in units of "the round's improvement per average contributor").
    Why: the shift is the same for everyone in the round, so it changes no one's standing, but it
    keeps points non-negative, so the points-squared weights never reward a contributor that pulls
    away from the target. Measuring effects at equal weight avoids a rich-get-richer loop that made
    points a convex (poorly linear) function of Shapley value.
    """
    shares = group_game_shares(state)
    effects = leave_one_out_effects(state)
    counts = np.bincount(state.labels, minlength=state.n_groups).astype(np.float64)
    effect_means = np.bincount(state.labels, weights=effects, minlength=state.n_groups) / counts
    awards = shares[state.labels] / counts[state.labels] + effects - effect_means[state.labels]
    return np.asarray((awards - awards.min()) * state.users.shape[0])
