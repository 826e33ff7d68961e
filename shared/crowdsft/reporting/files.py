"""CSV and JSON files for simulation runs, summaries and Shapley estimates."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crowdsft.engine.experiment import METRICS, RunResult
from crowdsft.engine.shapley import ShapleyResult


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Pretty, stable JSON (sorted keys are left to the caller's dict order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(payload), indent=2) + "\n", encoding="utf-8")


def write_runs_csv(path: Path, results: Sequence[RunResult]) -> None:
    """One row per run with every scalar metric; never-converged rounds are left empty."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["run", *METRICS])
        for r in results:
            row = [r.metrics()[m] for m in METRICS]
            writer.writerow([r.run, *("" if not math.isfinite(v) else f"{v:.6g}" for v in row)])


def shapley_payload(result: ShapleyResult) -> dict[str, Any]:
    """A Shapley estimate as JSON: values, standard errors and how far to trust them."""
    return {
        "method": result.method,
        "values": result.values,
        "stderr": result.stderr,
        "relative_error": result.relative_error,
        "relative_error_definition": "||stderr||_2 / ||values||_2",
        "n_samples": result.n_samples,
        "n_evaluations": result.n_evaluations,
        "sum": float(result.values.sum()),
    }


def read_matrix(path: Path) -> NDArray[np.float64]:
    """A numeric CSV as a 2-D array; a non-numeric first row is taken as a header and skipped."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row]
    try:
        [float(x) for x in rows[0]]
    except ValueError:
        rows = rows[1:]
    return np.array([[float(x) for x in row] for row in rows], dtype=np.float64)
