"""The simulate / sweep / shapley commands write what they promise (tiny settings)."""

import csv
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from crowdsft.cli import app
from crowdsft.cli import simulation as _registers  # noqa: F401
from crowdsft.engine.shapley import CentroidGame, exact_shapley

runner = CliRunner()


def test_simulate_writes_runs_summary_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--users", "12", "--groups", "3", "--rounds", "20", "--runs", "3",
            "--points", "shapley", "--shapley-rel-error", "0.05", "--workers", "1",
            "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 3 and "pearson" in rows[0]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["final_distance"]["n"] == 3
    assert (out / "distance.png").stat().st_size > 0
    assert (out / "points_vs_shapley.png").stat().st_size > 0


def test_simulate_with_the_papers_protocol_says_so_and_adds_their_estimate(tmp_path: Path) -> None:
    out = tmp_path / "paper"
    args = ["simulate", "--users", "10", "--groups", "2", "--rounds", "10", "--runs", "2",
            "--grouping", "interleaved", "--protocol", "paper", "--shapley-method", "exact",
            "--workers", "1", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"]["name"] == "paper"
    assert summary["config"]["grouping"] == "interleaved_paper"  # their dealing
    assert summary["metrics"]["pearson_paper_estimate"]["n"] == 2
    mine_args = [a if a != "paper" else "ours" for a in args[:-1]] + [str(tmp_path / "o")]
    ours = runner.invoke(app, mine_args)
    assert ours.exit_code == 0, ours.output
    mine = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert mine["config"]["grouping"] == "interleaved"
    assert mine["metrics"]["pearson_paper_estimate"]["n"] == 0


def test_sweep_tiny_grid(tmp_path: Path) -> None:
    args = ["sweep", "--users", "10", "--groups", "2,3", "--groupings", "random",
            "--evaluations", "l2", "--rounds", "10", "--runs", "2",
            "--shapley-rel-error", "0.1", "--workers", "1", "--out", str(tmp_path)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cells = json.loads((tmp_path / "sweep.json").read_text())["cells"]
    assert [(c["users"], c["groups"]) for c in cells] == [(10, 2), (10, 3)]
    assert (tmp_path / "heatmaps" / "pearson_random_l2.png").exists()


def test_shapley_command_matches_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    players, target = rng.uniform(0, 5, (6, 3)), rng.uniform(0, 5, 3)
    np.savetxt(tmp_path / "p.csv", players, delimiter=",", header="a,b,c", comments="")
    np.savetxt(tmp_path / "t.csv", target[None, :], delimiter=",")
    out = tmp_path / "s.json"
    args = ["shapley", "--players", str(tmp_path / "p.csv"), "--target", str(tmp_path / "t.csv"),
            "--rel-error", "0.01", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    exact = exact_shapley(CentroidGame(players, target, "l2")).values
    assert payload["relative_error"] <= 0.01
    err = np.abs(np.array(payload["values"]) - exact)
    assert np.all(err < 5 * np.array(payload["stderr"]) + 1e-9)
