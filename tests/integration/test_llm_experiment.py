"""`crowdsft phi train-emotion` and `crowdsft experiment llm` end to end, at a size CI affords:
the paper's design (singles vs a 3 x 3 tournament) on a tiny model and a small comment pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("peft", reason="the llm extra is not installed")

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "goemotions"


def crowdsft(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CROWDSFT_MODEL_CACHE": str(cache), "COLUMNS": "200"}
    command = [sys.executable, "-c", "from crowdsft.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


@pytest.mark.skipif(not DATA.exists(), reason="GoEmotions is not beside the checkout")
def test_small_llm_experiment_writes_table_and_results(tmp_path: Path) -> None:
    cache, out = tmp_path / "models", tmp_path / "llm"
    trained = crowdsft("phi", "train-emotion", "--data", str(DATA), "--limit", "400",
                       "--epochs", "5", cache=cache)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    report = json.loads(trained.stdout)
    assert report["heldout_split"] == "dev" and 0 <= report["top1_in_gold"] <= 1

    ran = crowdsft(
        "experiment", "llm", "--emotion", "neutral", "--emotion", "joy", "--data", str(DATA),
        "--out", str(out), "--base", "tiny", "--neighbours", "12", "--singles", "4,8,12",
        "--parts", "4,2,2", "--samples", "3", "--max-new-tokens", "6", "--pool-limit", "200",
        "--gate", "--rescore", cache=cache,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert [row["emotion"] for row in summary["rows"]] == ["neutral", "joy"]
    for emotion in ("neutral", "joy"):
        result = json.loads((out / emotion / "result.json").read_text())
        outcomes = result["outcomes"]
        # 1 base + 3 singles + 3 generations x 3 candidates + 2 re-scored finalists.
        assert len(outcomes) == 15
        singles = [o for o in outcomes if o["kind"] == "single"]
        assert [o["examples"] for o in singles] == [4, 8, 12]
        for generation, size in enumerate((4, 2, 2), start=1):
            candidates = [o for o in outcomes if o["generation"] == generation]
            assert [o["examples"] for o in candidates] == [size] * 3
        assert (out / emotion / "distances.png").stat().st_size > 0
    assert "| neutral |" in (out / "table.md").read_text()

    refused = crowdsft("experiment", "llm", "--emotion", "neutral", "--data", str(DATA),
                       "--neighbours", "12", "--singles", "4", "--parts", "5,5,5",
                       cache=cache)  # fmt: skip
    assert refused.returncode != 0 and "left in the pool" in refused.stderr

    # The authors' selection: winners picked by the distance to the anchor comment, reported
    # against the target.
    anchor_out = tmp_path / "anchor"
    picked = crowdsft(
        "experiment", "llm", "--emotion", "neutral", "--data", str(DATA), "--out",
        str(anchor_out), "--base", "tiny", "--neighbours", "12", "--singles", "12",
        "--parts", "4,2,2", "--samples", "3", "--max-new-tokens", "6", "--pool-limit", "200",
        "--selection", "anchor", cache=cache,
    )  # fmt: skip
    assert picked.returncode == 0, picked.stderr[-3000:]
    outcomes = json.loads((anchor_out / "neutral" / "result.json").read_text())["outcomes"]
    for generation in (1, 2, 3):
        candidates = [o for o in outcomes if o["generation"] == generation]
        by_anchor = min(candidates, key=lambda o: o["anchor_distance"])
        assert [o["won"] for o in candidates] == [o is by_anchor for o in candidates]
        assert all(o["anchor_distance"] != o["distance"] for o in candidates)
