"""`make demo` end to end, small: the same script on a private run dir (the LLM campaign on the
tiny model, a 12-point vector campaign), checked by its output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

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
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        left_up(summary, result.stdout)
    finally:
        localstack.down(run_dir, quiet=True)
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
    # Its reference answers make its Shapley values in-run ones (docs/valuation.md).
    assert llm["valuation"] == "in_run"
    assert llm["shapley_by_quality"]["kind"] is not None
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
    # The services' own counters agree with what the demo saw stored and decided.
    counters = summary["counters"]
    assert counters["crowdsft_feedback_accepted_total"] == summary["stored_total"] + 12
    assert counters["crowdsft_feedback_dead_lettered_total"] == sent["malformed"]
    assert counters["crowdsft_rounds_scored_total"] == llm["rounds"] + campaign["rounds"]
    assert "what the services counted" in result.stdout


def left_up(summary: dict[str, Any], printed: str) -> None:
    """The services stay up after the demo: the web app shows its campaigns, and operators
    sign in with the printed token file and see the broken clients' records counted."""
    web, api = summary["web"], summary["balances_api"]
    assert f"web app:  {web}/" in printed.replace("\n", "")
    llm = summary["llm_campaign"]["campaign_id"]
    board = httpx.get(f"{web}/leaderboard", params={"campaign": llm}, timeout=10)
    assert board.status_code == 200 and "kind01" in board.text
    token = Path(summary["operator_token_file"]).read_text().strip()
    operator = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 30
    while True:
        letters = httpx.get(f"{api}/v1/dead-letters", headers=operator, timeout=10).json()
        if letters["total"] >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert letters["total"] == 5  # the five broken records the demo sent (a private stack)
    assert sum(c["count"] for c in letters["counts"] if c["kind"] == "feedback") == 5
