"""The LLM experiment's table, JSON and plots (what `docs/llm-experiment.md` shows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt

from crowdsft.llm_runtime.experiment import LlmExperimentResult
from crowdsft.reporting.files import write_json
from crowdsft.reporting.plots import save_figure


def summary_row(result: LlmExperimentResult) -> dict[str, float | str]:
    return {
        "emotion": result.emotion,
        "base": result.base_distance,
        **result.singles,
        **{f"multi-gen{g}": d for g, d in enumerate(result.in_hand, start=1)},
        "reduction_vs_largest_single": result.reduction_vs_largest_single,
        "reduction_vs_best_single": result.reduction_vs_best_single,
        **result.rescored,
        **({"rescored_reduction": r} if (r := result.rescored_reduction) is not None else {}),
        "seconds": result.seconds,
        "device": result.device,
    }


def markdown_table(results: Sequence[LlmExperimentResult]) -> str:
    """Mean L2 distance to the target in phi space (lower is better), one row per emotion."""
    singles = list(results[0].singles)
    gens = [f"multi gen {g}" for g in range(1, len(results[0].in_hand) + 1)]
    rescored = list(results[0].rescored)
    header = ["emotion", "base", *singles, *gens, "multi vs largest single", "vs best single"]
    if rescored:
        header += [*(f"re-scored {label.removeprefix('rescored-')}" for label in rescored),
                   "re-scored multi vs single"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [
            r.emotion,
            f"{r.base_distance:.4f}",
            *(f"{d:.4f}" for d in r.singles.values()),
            *(f"{d:.4f}" for d in r.in_hand),
            f"{100 * r.reduction_vs_largest_single:+.1f}%",
            f"{100 * r.reduction_vs_best_single:+.1f}%",
        ]
        if rescored:
            cells += [f"{d:.4f}" for d in r.rescored.values()]
            cells.append(f"{100 * (r.rescored_reduction or 0.0):+.1f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_llm_result(result: LlmExperimentResult, path: Path) -> None:
    """Bars: base, each single, each generation's winner; dots: every tournament candidate."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    generations = range(1, len(result.in_hand) + 1)
    labels = ["base", *result.singles, *(f"gen{g}" for g in generations)]
    values = [result.base_distance, *result.singles.values(), *result.in_hand]
    colours = ["grey"] + ["tab:blue"] * len(result.singles) + ["tab:orange"] * len(result.in_hand)
    ax.bar(range(len(values)), values, color=colours)
    offset = 1 + len(result.singles)
    for outcome in result.outcomes:
        if outcome.kind == "multi" and outcome.generation is not None:
            x = offset + outcome.generation - 1
            ax.plot(x, outcome.distance, "k.", alpha=0.6)
    ax.set_xticks(range(len(values)), labels, rotation=30)
    ax.set_ylabel("mean L2 distance to target (phi)")
    ax.set_title(f"{result.emotion}: single vs tournament")
    save_figure(fig, path)


def write_llm_results(results: Sequence[LlmExperimentResult], out_dir: Path) -> list[Path]:
    written = []
    for result in results:
        folder = out_dir / result.emotion
        write_json(folder / "result.json", asdict(result) | {"summary": summary_row(result)})
        plot_llm_result(result, folder / "distances.png")
        written += [folder / "result.json", folder / "distances.png"]
    table = out_dir / "table.md"
    table.write_text(markdown_table(results), encoding="utf-8")
    write_json(out_dir / "summary.json", {"rows": [summary_row(r) for r in results]})
    return [*written, table, out_dir / "summary.json"]
