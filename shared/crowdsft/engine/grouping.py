"""Grouping strategies: who works with whom in a round.

A strategy returns a label array (contributor -> group), so every contributor is in exactly one
group by construction. Strategies live in a registry; add one with ``@register("name")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.registry import Registry

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
Grouping: TypeAlias = Callable[[FloatArray, int, int, int, np.random.Generator], IntArray]
"""``(points, n_groups, round_index, n_rounds, rng) -> labels``."""

GROUPINGS: Registry[Grouping] = Registry("grouping")
register = GROUPINGS.register
get_grouping = GROUPINGS.lookup


def _blocks(order: IntArray, n_groups: int) -> IntArray:
    """Labels splitting ``order`` into ``n_groups`` contiguous, near-equal blocks."""
    n = order.size
    labels = np.empty(n, dtype=np.int64)
    labels[order] = (np.arange(n) * n_groups) // n
    return labels


def _sorted_by_points(points: FloatArray, rng: np.random.Generator) -> IntArray:
    """Contributors by points ascending, ties broken at random (not by id)."""
    shuffled = rng.permutation(points.size)
    return shuffled[np.argsort(points[shuffled], kind="stable")]


@register("random")
def random_grouping(
    points: FloatArray, n_groups: int, round_index: int, n_rounds: int, rng: np.random.Generator
) -> IntArray:
    """Random permutation split into ``G`` near-equal parts."""
    return _blocks(rng.permutation(points.size), n_groups)


@register("epsilon_greedy")
def epsilon_greedy_grouping(
    points: FloatArray, n_groups: int, round_index: int, n_rounds: int, rng: np.random.Generator
) -> IntArray:
    """Random with probability ``max(0.4, 1 - t/T)``, else similar scorers together."""
    epsilon = max(0.4, 1.0 - round_index / n_rounds)
    if rng.random() < epsilon:
        return _blocks(rng.permutation(points.size), n_groups)
    return _blocks(_sorted_by_points(points, rng), n_groups)


@register("interleaved")
def interleaved_grouping(
    points: FloatArray, n_groups: int, round_index: int, n_rounds: int, rng: np.random.Generator
) -> IntArray:
    """Shuffle the bottom and top halves by points, deal each round-robin into the groups.

    Dealing continues from where the bottom half stopped, so sizes differ by at most one and,
    when each half has at least ``G`` members, every group gets high and low scorers.
    """
    order = _sorted_by_points(points, rng)
    half = order.size // 2
    dealt = np.concatenate([rng.permutation(order[:half]), rng.permutation(order[half:])])
    labels = np.empty(order.size, dtype=np.int64)
    labels[dealt] = np.arange(order.size) % n_groups
    return labels


@register("interleaved_paper")
def interleaved_paper_grouping(
    points: FloatArray, n_groups: int, round_index: int, n_rounds: int, rng: np.random.Generator
) -> IntArray:
    """The authors' interleaving: a stable sort by points (ties in index order), each half
    shuffled and dealt round-robin from group 0 (ours continues where the bottom half ended)."""
    order = np.argsort(points, kind="stable").astype(np.int64)
    half = order.size // 2
    labels = np.empty(order.size, dtype=np.int64)
    for part in (order[:half], order[half:]):
        dealt = rng.permutation(part)
        labels[dealt] = np.arange(dealt.size) % n_groups
    return labels
