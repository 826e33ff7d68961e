"""The LLM experiment's pre-registered seed sweep (docs/llm.md, "What a conclusive answer
needs"), resumable across sessions: emotions x seeds x arms, each cell the experiment that
`crowdsft experiment llm --seed S --rescore --rescore-samples 200 [...]` runs, in-process.

    .venv/bin/python bench/llm_seeds.py --seeds 1-10 --max-minutes 300

Each cell writes OUT/<emotion>-seed<S>-<arm>.json (the full result, its config, the
equivalent command, wall seconds, date, cpus); a cell whose file exists is skipped, so the same
command continues the sweep. The cells run seed by seed, so an interrupted sweep leaves every
emotion x arm with about as many seeds; the arms of one emotion and seed share the models they
have in common (`SharedModels`: the base, the singles, generation 1 and whatever else matches),
about a third of the fine-tunes. OUT/summary.json and OUT/summary.md (the mean
re-scored reduction with its 95% t-interval and the rule's verdict) are recomputed from every
cell file at the end of each run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from crowdsft.llm.config import SftHyperparameters
from crowdsft.llm.design import check_design
from crowdsft.llm.seeds import ARMS
from crowdsft.llm_runtime.experiment import LlmExperimentConfig, SharedModels
from crowdsft.reporting.llm_seeds import cell_path, cell_payload, read_cell, write_cell

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "goemotions"
EMOTIONS = ("neutral", "nervousness", "disappointment")  # the paper's best, median and worst
console = Console(stderr=True)


@dataclass(frozen=True)
class Cell:
    emotion: str
    seed: int
    arm: str


def parse_seeds(text: str) -> list[int]:
    """`1-10`, `3,5,7` or `1-3,8`: the seeds in the order given, each once."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        for seed in range(int(first), int(last or first) + 1):
            if seed not in seeds:
                seeds.append(seed)
    return seeds


def sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--emotion", action="append", help=f"repeatable; default {EMOTIONS}")
    parser.add_argument("--seeds", default="1-10", help="e.g. 1-10 or 1-3,8 (default 1-10)")
    parser.add_argument(
        "--arm", action="append", choices=list(ARMS), help="repeatable; default all three"
    )
    parser.add_argument("--rescore-samples", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "llm_seeds")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new cell after this long (the summary is still written)",
    )
    parser.add_argument("--data", type=Path, default=DATA, help="GoEmotions folder")
    # The experiment's sizes: the CLI's defaults (the paper's), smaller only for a smoke run.
    parser.add_argument(
        "--base", default="smollm2-135m-instruct", choices=["smollm2-135m-instruct", "tiny"]
    )
    parser.add_argument("--pool-limit", type=int, default=None)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--neighbours", type=int, default=100)
    parser.add_argument("--singles", default="33,66,100")
    parser.add_argument("--parts", default="33,22,15")
    args = parser.parse_args(argv)
    args.emotion = list(dict.fromkeys(args.emotion or EMOTIONS))
    args.arm = list(dict.fromkeys(args.arm or ARMS))
    args.seeds = parse_seeds(args.seeds)
    try:
        check_design(args.neighbours, sizes(args.singles), sizes(args.parts), 3)
    except ValueError as exc:
        parser.error(str(exc))
    if min(args.samples, args.rescore_samples) < 1 or not args.seeds:
        parser.error("samples, re-scoring samples and seeds must be positive and given")
    return args


def sweep_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What every cell of one sweep shares: cells of other settings may not join it."""
    return {
        "base": args.base,
        "pool_limit": args.pool_limit,
        "neighbours": args.neighbours,
        "singles": list(sizes(args.singles)),
        "parts": list(sizes(args.parts)),
        "candidates": 3,
        "samples": args.samples,
        "rescore_samples": args.rescore_samples,
        "max_new_tokens": 48,
        "sft": SftHyperparameters().model_dump(mode="json", exclude={"seed"}),  # seed: the cell's
    }


def experiment_config(args: argparse.Namespace, cell: Cell, work: Path) -> LlmExperimentConfig:
    arm = ARMS[cell.arm]
    return LlmExperimentConfig(
        emotion=cell.emotion,
        out_dir=work,
        base_model=args.base,
        neighbours=args.neighbours,
        singles=sizes(args.singles),
        parts=sizes(args.parts),
        samples=args.samples,
        seed=cell.seed,
        gate=arm.gate,
        rescore=True,
        rescore_samples=args.rescore_samples,
        selection=arm.selection,
    )


def command_equivalent(args: argparse.Namespace, cfg: LlmExperimentConfig) -> str:
    """The one CLI call that runs the same cell (and writes it to `cfg.out_dir`)."""
    words = [
        "crowdsft",
        "experiment",
        "llm",
        "--emotion",
        cfg.emotion,
        "--seed",
        str(cfg.seed),
        "--data",
        str(args.data),
        "--out",
        str(cfg.out_dir),
        "--base",
        cfg.base_model,
        "--neighbours",
        str(cfg.neighbours),
        "--singles",
        args.singles,
        "--parts",
        args.parts,
        "--samples",
        str(cfg.samples),
        "--selection",
        cfg.selection,
        "--rescore",
        "--rescore-samples",
        str(cfg.rescore_samples),
    ]
    if cfg.gate:
        words.append("--gate")
    if args.pool_limit is not None:
        words += ["--pool-limit", str(args.pool_limit)]
    return shlex.join(words)


def refuse_other_settings(cells: Sequence[Cell], out: Path, settings: dict[str, Any]) -> None:
    """A done cell counts only if it ran with these settings; else this is another sweep."""
    for cell in cells:
        path = cell_path(out, cell.emotion, cell.seed, cell.arm)
        if path.exists() and read_cell(path)["sweep"] != settings:
            raise SystemExit(f"{path} was run with other settings; give this sweep another --out")


def run_cells(args: argparse.Namespace, todo: Sequence[Cell], settings: dict[str, Any]) -> int:
    """Run the cells in order until done or out of time; returns how many were run."""
    from crowdsft.llm_runtime.emotions import emotion_names, load_split
    from crowdsft.llm_runtime.experiment import run_llm_experiment
    from crowdsft.llm_runtime.jobs import worker_for
    from crowdsft.llm_runtime.models import pick_device
    from crowdsft.llm_runtime.phi import head_dir, load_phi

    names = emotion_names(args.data)
    report = head_dir() / "report.json"
    head_report = json.loads(report.read_text()) if report.exists() else None
    unknown = sorted({c.emotion for c in todo} - set(names))
    if unknown:
        raise SystemExit(f"unknown emotion(s) {unknown}; choose from {names}")
    started = time.monotonic()
    pool = load_split(args.data, "test", args.pool_limit)
    with console.status(f"placing {len(pool.texts)} test comments in phi space"):
        pool_phi = load_phi("emotion", None, pick_device()).embed(pool.texts)
    models = 1 + len(sizes(args.singles)) + 3 * len(sizes(args.parts)) + 2
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    done = 0
    shared: SharedModels | None = None
    with Progress(*columns, console=console) as progress:
        cells_bar = progress.add_task("cells", total=len(todo))
        models_bar = progress.add_task("models", total=models)
        for cell in todo:
            if args.max_minutes is not None and time.monotonic() - started > 60 * args.max_minutes:
                console.print(
                    f"--max-minutes {args.max_minutes} reached: "
                    f"{len(todo) - done} cell(s) left for the next run"
                )
                break
            name = f"{cell.emotion} seed {cell.seed} {cell.arm}"
            progress.update(cells_bar, description=name)
            progress.reset(models_bar)
            # The arms of one emotion and seed share the models they have in common (the base,
            # the singles, generation 1, ...); the next emotion or seed starts empty, and its
            # resident worker is dropped so no model of the last stays in memory.
            group = f"{cell.emotion}-seed{cell.seed}"
            if shared is None or shared.workspace.name != group:
                if shared is not None:
                    shutil.rmtree(shared.workspace, ignore_errors=True)
                worker_for.cache_clear()
                gc.collect()
                shared = SharedModels(args.out / "work" / group)
            cfg = experiment_config(args, cell, shared.workspace)
            cell_started = time.perf_counter()
            reused = len(shared.measured)

            def on_model(label: str) -> None:
                progress.update(models_bar, description=label, advance=1)

            result = run_llm_experiment(
                cfg, pool.texts, pool_phi, names.index(cell.emotion), on_model, shared
            )
            run = {
                "command": command_equivalent(args, cfg),
                "wall_seconds": time.perf_counter() - cell_started,
                # Models measured by earlier arms of this emotion and seed when the cell began:
                # those it shares cost it nothing (its figures are the same either way).
                "models_measured_by_earlier_arms": reused,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpu_count": os.cpu_count(),
                "device": result.device,
                "emotion_head": head_report,  # the phi every distance is measured in
            }
            write_cell(
                cell_path(args.out, cell.emotion, cell.seed, cell.arm),
                cell_payload(cell.arm, cfg, settings, result, run),
            )
            done += 1
            console.log(
                f"{name}: re-scored reduction {100 * (result.rescored_reduction or 0):+.1f}%"
                f" in {run['wall_seconds']:.0f} s"
            )
            progress.advance(cells_bar)
    shutil.rmtree(args.out / "work", ignore_errors=True)
    return done


def main(argv: Sequence[str] | None = None) -> None:
    from crowdsft.reporting.llm_seeds import write_summary

    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = sweep_settings(args)
    cells = [Cell(e, s, a) for s in args.seeds for e in args.emotion for a in args.arm]
    refuse_other_settings(cells, args.out, settings)
    todo = [c for c in cells if not cell_path(args.out, c.emotion, c.seed, c.arm).exists()]
    console.print(
        f"{len(cells)} cells asked, {len(cells) - len(todo)} already done, "
        f"{len(todo)} to run; results in {args.out}"
    )
    if todo:
        run_cells(args, todo, settings)
    json_path, md_path = write_summary(args.out)
    print(md_path.read_text(encoding="utf-8"), end="")
    console.print(f"summary in {json_path} and {md_path}")


if __name__ == "__main__":
    main()
