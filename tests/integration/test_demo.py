"""`make demo` end to end, small: the same script on a private run dir (the LLM campaign on the
tiny model, a 12-point vector campaign), checked by its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra import localstack
from tests.support.stack import REPO


def test_demo_runs_the_whole_system(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "infra.demo",
        "--llm-model",
        "tiny",
        "--vector-contributors",
        "12",
        "--rounds",
        "4",
        "--run-dir",
        str(run_dir),
        "--out",
        str(out),
    ]
    try:
        result = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
        )
    finally:
        localstack.down(run_dir, quiet=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # Intake: every demonstration stored once; duplicates (the copier's disguised copies
    # among them) and broken records refused.
    llm = summary["llm_campaign"]
    sent = summary["sent"]
    assert sent["gateway"] + sent["producer"] == 48 and sent["gateway"] > 0 < sent["producer"]
    rejected = summary["rejections_by_reason"]
    copies = llm["copier_copies_flagged"]
    assert copies == 2  # both of the copier's texts
    assert summary["stored_total"] + rejected.pop("duplicate_content") == 48 + sent["duplicates"]
    assert summary["stored_total"] <= 48 - copies
    assert sum(rejected.values()) == sent["malformed"] == 5
    # The LLM campaign ran its rounds through the services, and the crowd was paid.
    assert llm["rounds"] == 3 and llm["base_model"] == "tiny"
    assert llm["base_answers"] and llm["final_answers"]
    assert set(llm["points_by_quality"]) == {"kind", "grumpy", "spammer", "copier"}
    assert llm["points_by_quality"]["copier"] is None  # not in the crowd: nothing earned
    assert len(llm["leaderboard"]["entries"]) == 10
    assert (out / "llm.png").stat().st_size > 10_000
    assert "SmolLM2 before" in result.stdout and "points vs Shapley" in result.stdout
    # The vector campaign still equals the in-process engine.
    campaign = summary["round_campaign"]
    assert campaign["rounds"] == 4
    assert campaign["max_points_difference_vs_engine"] < 1e-9
    assert abs(campaign["final_distance"] - campaign["engine_final_distance"]) < 1e-9
    assert (out / "rounds.png").stat().st_size > 10_000
    assert "leaderboard:" in result.stdout and "/docs" in result.stdout
