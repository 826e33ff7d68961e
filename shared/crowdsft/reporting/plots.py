"""Matplotlib figures of simulation results, rendered off-screen (Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import NDArray

from crowdsft.engine.experiment import RunResult
from crowdsft.engine.simulation import CONVERGENCE_DISTANCE


def save_figure(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_distances(
    curves: dict[str, Sequence[RunResult]], path: Path, title: str = "Distance to target"
) -> None:
    """Mean L2 distance over rounds with a 95% band, one line per labelled set of runs."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, results in curves.items():
        d = np.stack([r.distances for r in results])
        mean = d.mean(axis=0)
        half = 1.96 * d.std(axis=0, ddof=1) / np.sqrt(len(results)) if len(results) > 1 else 0
        x = np.arange(d.shape[1])
        ax.plot(x, mean, label=label)
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    ax.axhline(CONVERGENCE_DISTANCE, color="grey", ls="--", lw=1)
    ax.set(xlabel="round", ylabel="L2 distance to expert", title=title)
    ax.legend()
    save_figure(fig, path)


def plot_points_vs_shapley(results: Sequence[RunResult], path: Path, title: str = "") -> None:
    """Final points against Shapley values, standardised per run so runs share one axis."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for r in results:
        ax.scatter(_z(r.shapley), _z(r.points), s=4, alpha=0.35)
    pear = np.nanmean([r.pearson for r in results])
    ax.set(
        xlabel="Shapley value (z-score within run)",
        ylabel="final points (z-score within run)",
        title=title or f"points vs Shapley, mean Pearson {pear:.3f}",
    )
    save_figure(fig, path)


def _z(x: NDArray[np.float64]) -> NDArray[np.float64]:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else x * 0


def plot_heatmap(
    grid: NDArray[np.float64],
    rows: Sequence[object],
    cols: Sequence[object],
    path: Path,
    title: str,
    xlabel: str = "groups",
    ylabel: str = "users",
) -> None:
    """A labelled heat map with the value printed in each cell."""
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 1.5, 0.6 * len(rows) + 1.5))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.colorbar(im, ax=ax)
    save_figure(fig, path)
