"""Small statistics helpers: correlations and summaries with 95% intervals."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

FloatArray = NDArray[np.float64]


def pearson(x: FloatArray, y: FloatArray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x: FloatArray, y: FloatArray) -> float:
    """Spearman rank correlation; NaN when either side is constant."""
    if np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(sps.spearmanr(x, y).statistic)


def summarize(values: FloatArray) -> dict[str, float]:
    """Mean, sample standard deviation and a t-based 95% interval of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    count = int(v.size)
    if count == 0:
        nan = float("nan")
        return {"mean": nan, "std": nan, "ci95_low": nan, "ci95_high": nan, "n": 0}
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if count > 1 else 0.0
    half = float(sps.t.ppf(0.975, count - 1)) * std / math.sqrt(count) if count > 1 else 0.0
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": count}
