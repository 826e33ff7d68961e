"""The seed sweep's files: cells written and read back, the summary's rows and verdicts, and
cells of other settings refused."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from crowdsft.llm_runtime.experiment import (
    LlmExperimentConfig,
    LlmExperimentResult,
    ModelOutcome,
)
from crowdsft.reporting.llm_seeds import (
    cell_path,
    cell_payload,
    read_figures,
    write_cell,
    write_summary,
)

SETTINGS = {"base": "tiny", "rescore_samples": 200}


def result(emotion: str, single: float, multi: float) -> LlmExperimentResult:
    def outcome(
        label: str, kind: str, distance: float, generation: int | None = None
    ) -> ModelOutcome:
        return ModelOutcome(label, kind, generation, 0, distance, won=kind == "multi")

    outcomes = [
        outcome("base", "base", 0.6),
        outcome("single-100", "single", 0.3),
        outcome("gen1-c0", "multi", 0.4, 1),
        outcome("rescored-single-100", "rescored", single),
        outcome("rescored-multi", "rescored", multi),
    ]
    return LlmExperimentResult(emotion, "anchor text", "cpu", 1.0, outcomes)


def write(
    out: Path,
    emotion: str,
    seed: int,
    arm: str,
    multi: float,
    settings: Mapping[str, object] = SETTINGS,
) -> None:
    """One cell file whose single-100 re-scores at 0.5 and the tournament at `multi`."""
    cfg = LlmExperimentConfig(emotion=emotion, out_dir=out / "work", seed=seed, rescore=True)
    payload = cell_payload(arm, cfg, settings, result(emotion, 0.5, multi), {})
    write_cell(cell_path(out, emotion, seed, arm), payload)


def test_ten_seeds_of_neutral_refute_the_papers_55_percent(tmp_path: Path) -> None:
    # multi 0.45 / 0.35 against single 0.5: reductions 0.10 and 0.30, five seeds each:
    # mean 0.20, sd 0.10541, se 0.033333, t(0.975, 9) 2.26216: [0.12459, 0.27541]
    for seed in range(1, 11):
        write(tmp_path, "neutral", seed, "gate", 0.45 if seed % 2 else 0.35)
    for seed in range(1, 4):
        write(tmp_path, "nervousness", seed, "gate", 0.55)  # reduction -0.10
    json_path, md_path = write_summary(tmp_path)

    summary = json.loads(json_path.read_text())
    rows = {row["emotion"]: row for row in summary["rows"]}
    neutral = rows["neutral"]
    assert neutral["n_seeds"] == 10 and neutral["seeds"] == list(range(1, 11))
    assert neutral["reduction_mean"] == pytest.approx(0.20)
    assert (neutral["reduction_low"], neutral["reduction_high"]) == pytest.approx(
        (0.12459, 0.27541), abs=1e-5
    )
    assert neutral["rescored_single_mean"] == pytest.approx(0.5)
    assert neutral["rescored_multi_mean"] == pytest.approx(0.40)
    assert neutral["verdict"] == "refuted; positive effect shown"
    assert rows["nervousness"]["verdict"] == "undecided: fewer than 10 seeds"
    # over emotions: only the seeds both emotions have (1-3)
    (over,) = summary["over_emotions"]
    assert over["emotions"] == ["nervousness", "neutral"] and over["seeds"] == [1, 2, 3]
    # seeds 1, 3 (0.10) and 2 (0.30) for neutral, -0.10 each for nervousness
    assert over["reduction_mean"] == pytest.approx((0.0 + 0.1 + 0.0) / 3)
    assert over["paper_figure"] is None
    assert summary["cells"] == 13 and summary["sweep"] == SETTINGS

    markdown = md_path.read_text()
    assert (
        "| neutral | gate | 10 | +20.0% [+12.5%, +27.5%] | 0.5000 | 0.4000 | +55.0% |" in markdown
    )
    assert "neutral +55% and the mean over all 28 emotions +28.5%" in markdown
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cell_of_other_settings_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "neutral", 1, "gate", 0.4)
    write(tmp_path, "neutral", 2, "gate", 0.4, {"base": "tiny", "rescore_samples": 50})
    with pytest.raises(ValueError, match="other settings"):
        read_figures(tmp_path)


def test_a_cell_is_whole_or_absent(tmp_path: Path) -> None:
    write(tmp_path, "neutral", 1, "paper-anchor", 0.4)
    assert [p.name for p in tmp_path.iterdir()] == ["neutral-seed1-paper-anchor.json"]
    (figures,), _ = read_figures(tmp_path)
    assert (figures.emotion, figures.seed, figures.arm) == ("neutral", 1, "paper-anchor")
    assert figures.reduction == pytest.approx(0.2)
