"""The result of a Shapley estimate: values with standard errors, and how they were obtained.

Relative error, used everywhere in this project, is the norm ratio
``||stderr||_2 / ||values||_2`` for a reported bound, and ``||estimate - reference||_2 /
||reference||_2`` when measured against a reference. Both are root-mean-square errors over
the players divided by the root-mean-square value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ShapleyResult:
    """Per-player estimates, their standard errors and the cost of getting them."""

    values: FloatArray
    stderr: FloatArray
    method: str
    n_samples: int
    n_evaluations: int

    @property
    def relative_error(self) -> float:
        """Reported relative error ``||stderr|| / ||values||`` (0 for exact results)."""
        return relative_norm(self.stderr, self.values)


def relative_norm(error: FloatArray, reference: FloatArray) -> float:
    """``||error|| / ||reference||``; infinite when the reference is zero and the error is not."""
    num = float(np.linalg.norm(error))
    den = float(np.linalg.norm(reference))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


def relative_error(estimate: FloatArray, reference: FloatArray) -> float:
    """Measured relative error ``||estimate - reference|| / ||reference||``."""
    return relative_norm(np.asarray(estimate) - np.asarray(reference), np.asarray(reference))
