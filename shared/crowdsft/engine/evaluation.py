"""Evaluation functions: how good a model point is relative to the target (higher is better).

All functions are vectorised over rows, so a batch of candidate models (or coalition
centroids) is scored in one call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.registry import Registry

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


EVALUATIONS: Registry[Evaluation] = Registry("evaluation", {"l2": neg_l2, "l1": neg_l1, "dot": dot})
get_evaluation = EVALUATIONS.lookup


def l2_distance(points: FloatArray, target: FloatArray) -> FloatArray:
    """Plain Euclidean distance: the paper's quality metric whatever the evaluation."""
    return np.asarray(np.sqrt(np.sum((points - target) ** 2, axis=-1)), dtype=np.float64)
