"""The LLM seed sweep's files: one JSON per (emotion, seed, arm) cell, and the summary the
pre-registered rule is read from (`summary.json`, `summary.md`, and `summary.png`).

The cell files are the sweep's only state: a cell whose file exists is done, and the summary
is recomputed from every cell file in the folder, so sessions can add seeds piece by piece.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from crowdsft.llm.seeds import (
    ARMS,
    MIN_SEEDS,
    PAPER_MEAN_OVER_ALL_EMOTIONS,
    PAPER_REDUCTION,
    Interval,
    decide,
    mean_over_emotions,
    paper_figure,
    paper_figure_over,
    t_interval,
)
from crowdsft.llm_runtime.experiment import LlmExperimentConfig, LlmExperimentResult
from crowdsft.reporting.files import write_json
from crowdsft.reporting.llm import summary_row
from crowdsft.reporting.plots import save_figure

PAPER_NOTE = (
    "The paper's figures this repository records (docs/llm.md): neutral +55% and the mean over "
    "all 28 emotions +28.5%. Its figures for other emotions are not stored here, so their rows "
    "decide only whether a positive effect is shown, and the mean over a subset of emotions is "
    "not tested against the 28-emotion mean."
)


def cell_path(out_dir: Path, emotion: str, seed: int, arm: str) -> Path:
    return out_dir / f"{emotion}-seed{seed}-{arm}.json"


def config_json(cfg: LlmExperimentConfig) -> dict[str, Any]:
    """The experiment's config as plain JSON (paths as text, the fine-tuning as its fields)."""
    fields: dict[str, Any] = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    return fields | {
        "out_dir": str(cfg.out_dir),
        "cache": None if cfg.cache is None else str(cfg.cache),
        "singles": list(cfg.singles),
        "parts": list(cfg.parts),
        "sft": cfg.sft.model_dump(mode="json"),
    }


def cell_payload(
    arm: str,
    cfg: LlmExperimentConfig,
    sweep: Mapping[str, Any],
    result: LlmExperimentResult,
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """One cell's record: what was asked (`sweep`, `config`), how it ran (`run`: command,
    wall seconds, date, cpus) and the experiment's full result."""
    single = next(k for k in result.rescored if k.startswith("rescored-single"))
    return {
        "cell": {"emotion": cfg.emotion, "seed": cfg.seed, "arm": arm},
        "figures": {
            "rescored_single_label": single,
            "rescored_single": result.rescored[single],
            "rescored_multi": result.rescored["rescored-multi"],
            "rescored_reduction": result.rescored_reduction,
        },
        "sweep": dict(sweep),
        "config": config_json(cfg),
        "run": dict(run),
        "summary": summary_row(result),
        "result": dataclasses.asdict(result),
    }


def write_cell(path: Path, payload: Mapping[str, Any]) -> None:
    """Written aside and renamed: a sweep killed mid-write never leaves a cell that looks done."""
    partial = path.with_name(path.name + ".partial")
    write_json(partial, payload)
    partial.replace(path)


def read_cell(path: Path) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return payload


@dataclass(frozen=True)
class CellFigures:
    emotion: str
    seed: int
    arm: str
    single: float  # the largest single, re-scored
    multi: float  # the tournament's final model, re-scored
    reduction: float  # 1 - multi / single


def cell_files(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.glob("*-seed*-*.json") if p.is_file())


def read_figures(out_dir: Path) -> tuple[list[CellFigures], dict[str, Any] | None]:
    """Every cell's re-scored figures, and the sweep settings they share (None: no cells).
    Cells of different settings are not one sample, so mixing them is refused."""
    figures, settings = [], None
    for path in cell_files(out_dir):
        payload = read_cell(path)
        if settings is None:
            settings = payload["sweep"]
        elif payload["sweep"] != settings:
            raise ValueError(f"{path.name} was run with other settings than the cells beside it")
        cell, numbers = payload["cell"], payload["figures"]
        figures.append(
            CellFigures(
                cell["emotion"],
                cell["seed"],
                cell["arm"],
                numbers["rescored_single"],
                numbers["rescored_multi"],
                numbers["rescored_reduction"],
            )
        )
    return figures, settings


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def _row(interval: Interval, figure: float | None, cells: Sequence[CellFigures]) -> dict[str, Any]:
    verdict = decide(interval, figure)
    return {
        "n_seeds": interval.n,
        "seeds": sorted({f.seed for f in cells}),
        "reduction_mean": interval.mean,
        "reduction_low": interval.low,
        "reduction_high": interval.high,
        "rescored_single_mean": _mean([f.single for f in cells]),
        "rescored_multi_mean": _mean([f.multi for f in cells]),
        "paper_figure": figure,
        "paper_verdict": verdict.paper,
        "positive_effect_shown": verdict.positive_effect,
        "verdict": verdict.label,
    }


def _arm_order(arm: str) -> int:
    return list(ARMS).index(arm) if arm in ARMS else len(ARMS)


def summarise(figures: Sequence[CellFigures]) -> dict[str, Any]:
    """Per emotion x arm and per arm over emotions: the mean re-scored reduction, its 95%
    t-interval over seeds, the finalists' mean distances and the rule's verdict."""
    emotions = sorted({f.emotion for f in figures})
    arms = sorted({f.arm for f in figures}, key=lambda a: (_arm_order(a), a))
    rows, over = [], []
    for arm in arms:
        by_emotion: dict[str, dict[int, float]] = {}
        for emotion in emotions:
            cells = sorted(
                (f for f in figures if f.arm == arm and f.emotion == emotion), key=lambda f: f.seed
            )
            if not cells:
                continue
            by_emotion[emotion] = {f.seed: f.reduction for f in cells}
            row = _row(t_interval([f.reduction for f in cells]), paper_figure(emotion), cells)
            rows.append({"emotion": emotion, "arm": arm} | row)
        paired = mean_over_emotions(by_emotion)
        chosen = [
            f for f in figures if f.arm == arm and f.emotion in by_emotion and f.seed in paired
        ]
        row = _row(t_interval(list(paired.values())), paper_figure_over(by_emotion), chosen)
        over.append({"arm": arm, "emotions": sorted(by_emotion)} | row)
    return {
        "design": {
            "figure": "1 - multi / largest single, both re-scored on fresh samples",
            "confidence": 0.95,
            "min_seeds": MIN_SEEDS,
            "over_emotions": "per seed the mean over emotions, for seeds every emotion has",
            "paper_figures": {**PAPER_REDUCTION, "mean over all 28": PAPER_MEAN_OVER_ALL_EMOTIONS},
            "paper_note": PAPER_NOTE,
        },
        "rows": rows,
        "over_emotions": over,
    }


def _percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:+.1f}%"


def _distance(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.4f}"


def _reduction_cell(row: Mapping[str, Any]) -> str:
    low, high = row["reduction_low"], row["reduction_high"]
    bounds = f" [{_percent(low)}, {_percent(high)}]" if math.isfinite(low) else ""
    return _percent(row["reduction_mean"]) + bounds


def _table_row(first: str, row: Mapping[str, Any]) -> str:
    return (
        f"| {first} | {row['arm']} | {row['n_seeds']} | {_reduction_cell(row)} | "
        f"{_distance(row['rescored_single_mean'])} | {_distance(row['rescored_multi_mean'])} "
        f"| {_percent(row['paper_figure'])} | {row['verdict']} |"
    )


def summary_markdown(summary: Mapping[str, Any], settings: Mapping[str, Any] | None) -> str:
    header = (
        "| {first} | arm | seeds | re-scored reduction, mean [95% CI] | re-scored single "
        "| re-scored multi | paper | verdict |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [
        "# LLM experiment: re-scored reduction over seeds",
        "",
        f"Figure: {summary['design']['figure']}; verdicts by the rule fixed in docs/llm.md "
        f"(at least {summary['design']['min_seeds']} seeds).",
        "",
        header.format(first="emotion"),
    ]
    lines += [_table_row(row["emotion"], row) for row in summary["rows"]]
    lines += [
        "",
        "Over emotions (per seed the mean over the emotions, seeds every emotion has):",
        "",
        header.format(first="emotions"),
    ]
    lines += [_table_row(", ".join(row["emotions"]), row) for row in summary["over_emotions"]]
    lines += ["", summary["design"]["paper_note"], ""]
    if settings is not None:
        lines += ["Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()), ""]
    return "\n".join(lines)


def plot_reductions(figures: Sequence[CellFigures], summary: Mapping[str, Any], path: Path) -> None:
    """One panel per emotion: each seed's re-scored reduction per arm (dots), the mean with its
    95% interval (bar), the paper's figure where there is one (dashed) and no effect (grey)."""
    rows = summary["rows"]
    emotions = sorted({row["emotion"] for row in rows})
    arms = sorted({row["arm"] for row in rows}, key=lambda a: (_arm_order(a), a))
    fig, axes = plt.subplots(1, max(len(emotions), 1), figsize=(3.4 * max(len(emotions), 1), 3.6),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, emotion in zip(axes[0], emotions, strict=False):
        for x, arm in enumerate(arms):
            seeds = [100 * f.reduction for f in figures if f.emotion == emotion and f.arm == arm]
            ax.plot([x] * len(seeds), seeds, ".", color="tab:blue", alpha=0.5)
            row = next((r for r in rows if r["emotion"] == emotion and r["arm"] == arm), None)
            if row is not None and math.isfinite(row["reduction_low"]):
                mean, low, high = (100 * row[k] for k in ("reduction_mean", "reduction_low",
                                                          "reduction_high"))  # fmt: skip
                ax.errorbar(x + 0.15, mean, yerr=[[mean - low], [high - mean]], fmt="o",
                            color="black", capsize=3)  # fmt: skip
        figure = paper_figure(emotion)
        if figure is not None:
            ax.axhline(100 * figure, color="tab:red", linestyle="--", label="paper")
            ax.legend(loc="lower right", fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(arms)), arms, rotation=20)
        ax.set_title(emotion)
    axes[0][0].set_ylabel("re-scored reduction, % (1 - multi / single)")
    save_figure(fig, path)


def write_summary(out_dir: Path) -> tuple[Path, Path]:
    """Recompute `summary.json`, `summary.md` and `summary.png` from every cell file in
    `out_dir`."""
    figures, settings = read_figures(out_dir)
    summary = summarise(figures) | {"sweep": settings, "cells": len(figures)}
    json_path, md_path = out_dir / "summary.json", out_dir / "summary.md"
    write_json(json_path, summary)
    md_path.write_text(summary_markdown(summary, settings), encoding="utf-8")
    if figures:
        plot_reductions(figures, summary, out_dir / "summary.png")
    return json_path, md_path
