"""`make demo` end to end, small: the same script on a private run dir, checked by its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra import localstack
from tests.support.stack import REPO


def test_demo_runs_the_whole_system(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "out"
    command = [sys.executable, "-m", "infra.demo", "--contributors", "12", "--per-contributor",
               "1", "--rounds", "4", "--run-dir", str(run_dir), "--out", str(out)]  # fmt: skip
    try:
        result = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False
        )
    finally:
        localstack.down(run_dir, quiet=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stored_total"] == 12
    sent = summary["sent"]
    assert sent["gateway"] + sent["producer"] == 12 and sent["gateway"] > 0 < sent["producer"]
    rejected = summary["rejections_by_reason"]
    assert rejected.pop("duplicate_content") == sent["duplicates"] > 0
    assert sum(rejected.values()) == sent["malformed"] == 5
    campaign = summary["round_campaign"]
    assert campaign["rounds"] == 4
    assert campaign["max_points_difference_vs_engine"] < 1e-9
    assert abs(campaign["final_distance"] - campaign["engine_final_distance"]) < 1e-9
    assert len(campaign["leaderboard"]["entries"]) == 10
    assert (out / "intake.png").stat().st_size > 10_000
    assert (out / "rounds.png").stat().st_size > 10_000
    assert "leaderboard:" in result.stdout and "/docs" in result.stdout
