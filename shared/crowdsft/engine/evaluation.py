"""Evaluation functions: how good a model point is relative to the target (higher is better).

All functions are vectorised over rows, so a batch of candidate models (or coalition
centroids) is scored in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

FloatArray: TypeAlias = NDArray[np.float64]
Evaluation: TypeAlias = Callable[[FloatArray, FloatArray], FloatArray]


def neg_l2(points: FloatArray, target: FloatArray) -> FloatArray:
    """Minus the Euclidean distance of each row of ``points`` to ``target``."""
    return np.asarray(-np.sqrt(np.sum((points - target) ** 2, axis=-1)), dtype=np.float64)


def neg_l1(points: FloatArray, target: FloatArray) -> FloatArray:
    """Minus the Manhattan distance of each row of ``points`` to ``target``."""
    return np.asarray(-np.sum(np.abs(points - target), axis=-1), dtype=np.float64)


def dot(points: FloatArray, target: FloatArray) -> FloatArray:
    """Inner product with the target: rewards large components where the target is large."""
    return np.asarray(points @ target, dtype=np.float64)


EVALUATIONS: dict[str, Evaluation] = {"l2": neg_l2, "l1": neg_l1, "dot": dot}


def get_evaluation(name: str) -> Evaluation:
    """Look an evaluation function up by its CLI name (``l2``, ``l1``, ``dot``)."""
    try:
        return EVALUATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown evaluation {name!r}; choose from {sorted(EVALUATIONS)}"
        ) from None


def l2_distance(points: FloatArray, target: FloatArray) -> FloatArray:
    """Plain Euclidean distance: the paper's quality metric whatever the evaluation."""
    return np.asarray(np.sqrt(np.sum((points - target) ** 2, axis=-1)), dtype=np.float64)
