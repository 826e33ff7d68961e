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


def plot_series_with_intervals(
    x: Sequence[float],
    series: dict[str, list[tuple[float, float, float]]],
    path: Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> None:
    """One line per series, each point (mean, low, high) with its interval as an error bar."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    positions = np.arange(len(x))
    for offset, (label, points) in enumerate(series.items()):
        means = np.array([p[0] for p in points])
        errors = np.array([[p[0] - p[1] for p in points], [p[2] - p[0] for p in points]])
        shift = (offset - (len(series) - 1) / 2) * 0.04
        ax.errorbar(positions + shift, means, yerr=errors, marker="o", capsize=3, label=label)
    ax.set_xticks(positions, [str(v) for v in x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    save_figure(fig, path)
