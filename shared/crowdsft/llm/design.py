"""The paper's LLM experiment design, as pure numpy: target, pools and tournament splits.

No models here: the runner (`crowdsft.llm_runtime.experiment`) trains and measures, these
functions decide which examples each model sees, so the design is testable in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class EmotionTarget:
    anchor: int  # the comment scoring highest on the emotion
    neighbours: IntArray  # its nearest comments in phi space, nearest first (anchor excluded)
    target: FloatArray  # their mean: the point every model is measured against


def emotion_target(phi: FloatArray, emotion: int, k: int) -> EmotionTarget:
    """The paper's target: the top comment for `emotion`, its `k` nearest neighbours in phi
    space, and their mean."""
    if k >= phi.shape[0]:
        raise ValueError(f"{k} neighbours asked of a pool of {phi.shape[0]}")
    anchor = int(np.argmax(phi[:, emotion]))
    distances = np.linalg.norm(phi - phi[anchor], axis=1)
    distances[anchor] = np.inf
    neighbours = np.argsort(distances, kind="stable")[:k].astype(np.int64)
    return EmotionTarget(anchor, neighbours, phi[neighbours].mean(axis=0))


def split_generation(
    pool: Sequence[int], part_size: int, candidates: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffle the unused pool and cut `candidates` disjoint parts of `part_size`."""
    if part_size * candidates > len(pool):
        raise ValueError(f"{candidates} x {part_size} examples asked of a pool of {len(pool)}")
    order = [int(i) for i in rng.permutation(np.asarray(pool, dtype=np.int64))]
    return [order[c * part_size : (c + 1) * part_size] for c in range(candidates)]


def remove_used(pool: Sequence[int], used: Sequence[int]) -> list[int]:
    """The winner's examples leave the pool; the losers' go back for the next generation."""
    taken = set(used)
    return [i for i in pool if i not in taken]


@dataclass(frozen=True)
class Generation:
    index: int  # 1-based, as the paper counts
    parts: list[list[int]]  # each candidate's examples (pool positions), disjoint
    distances: list[float]  # each candidate's distance by the selection reference
    best: int  # the candidate closest by that reference
    won: bool  # whether the best replaced the model in hand (always, ungated)


# What a generation's candidate `c` scores when fine-tuned on `rows` from the model in hand,
# `parent` being the (generation, candidate) winners that model is made of.
Measure = Callable[[int, int, list[int], tuple[tuple[int, int], ...]], float]


def run_generations(
    pool: Sequence[int],
    sizes: Sequence[int],
    candidates: int,
    rng: np.random.Generator,
    measure: Measure,
    start_distance: float,
    gate: bool,
) -> list[Generation]:
    """The tournament's generations. Each cuts disjoint parts from the unused pool; the
    closest candidate's examples leave the pool, the others' go back. The paper's protocol
    (ungated) always moves to the best candidate; gated, the model moves only when the best is
    strictly closer than the model in hand, as the services' improvement gate does."""
    remaining, in_hand = list(pool), start_distance
    parent: tuple[tuple[int, int], ...] = ()
    generations: list[Generation] = []
    for index, size in enumerate(sizes, start=1):
        parts = split_generation(remaining, size, candidates, rng)
        distances = [measure(index, c, rows, parent) for c, rows in enumerate(parts)]
        best = int(np.argmin(distances))  # ties: the first candidate
        remaining = remove_used(remaining, parts[best])
        won = not gate or distances[best] < in_hand
        if won:
            parent, in_hand = (*parent, (index, best)), distances[best]
        generations.append(Generation(index, parts, distances, best, won))
    return generations


def reduction(multi: float, single: float) -> float:
    """How much closer the tournament got than the single model (0.55 = 55% lower)."""
    return 1.0 - multi / single


def check_design(neighbours: int, singles: Sequence[int], parts: Sequence[int],
                 candidates: int) -> None:  # fmt: skip
    """Refuse sizes the pool cannot serve before any model is trained."""
    if max(singles, default=0) > neighbours:
        raise ValueError(f"a single model on {max(singles)} of {neighbours} neighbours")
    pool = neighbours
    for generation, size in enumerate(parts, start=1):
        if size * candidates > pool:
            raise ValueError(
                f"generation {generation}: {candidates} x {size} examples, {pool} left in the pool"
            )
        pool -= size
