"""How well cheap valuations of a `lora` round agree with the game the round really plays.

Writes bench/results/valuation.json, valuation.md and valuation.png.

    .venv/bin/python bench/valuation.py                       # tiny model, 6 campaigns
    .venv/bin/python bench/valuation.py --model smollm2-135m-instruct --campaigns 1

Each campaign is built from GoEmotions (../shared/data): a target emotion, 8 of its comments as
the campaign's reference answers, and 8 contributors of 3 texts each: three on target, one who
copies the first of them, two off target (other emotions), one neutral and one mixed (one text
on target, two off). The ground truth is the Shapley value of the LoRA game
(`crowdsft.llm_runtime.lora_game`: a coalition's value is how much a fine-tune on its texts,
from the base with the campaign's default settings, lowers the reference answers' loss),
computed exactly (all 256 coalitions, one fine-tune each). Against it:

- geometric: the centroid game in `phi` (emotion) space, what `lora` campaigns used so far;
- leave-one-out: v(N) - v(N without i), n extra fine-tunes;
- own score: v({i}), n extra fine-tunes;
- in-run (Adam): first-order in-run Shapley with Adam's preconditioner, from the one fine-tune
  on everybody (`crowdsft.llm_runtime.in_run`);
- in-run (TracIn): the same without the preconditioner.

Pearson and Spearman are taken per campaign, then averaged over campaigns with a 95% t-interval.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdsft.llm.config import PAPER_PROMPT, SftHyperparameters  # noqa: E402
from crowdsft.llm.seeds import t_interval  # noqa: E402

DATA = Path(os.environ.get("CROWDSFT_GOEMOTIONS", REPO.parent / "shared/data/goemotions"))
OUT = REPO / "bench/results"
ROLES = ("on", "on", "on", "copy", "off", "off", "neutral", "mixed")
SMALL_ROLES = ("on", "on", "copy", "off", "neutral", "mixed")  # a budget for SmolLM2 on a CPU
N_REFERENCES = 8
EMOTIONS = ("joy", "sadness", "anger")
ESTIMATORS = ("geometric", "leave-one-out", "own score", "in-run", "in-run (Adam)")


@dataclass(frozen=True)
class Campaign:
    emotion: str
    seed: int
    references: list[str]
    texts: list[list[str]]  # per contributor
    roles: tuple[str, ...]


def single_label(data: Path) -> dict[str, list[str]]:
    """Comments with exactly one emotion, by emotion."""
    from crowdsft.llm_runtime.emotions import emotion_names, load_split

    names = emotion_names(data)
    split = load_split(data, "test")
    out: dict[str, list[str]] = {n: [] for n in names}
    for text, row in zip(split.texts, split.labels, strict=True):
        if row.sum() == 1 and 20 <= len(text) <= 200:
            out[names[int(row.argmax())]].append(text)
    return out


def build(pool: dict[str, list[str]], emotion: str, seed: int, roles: tuple[str, ...],
          per_player: int) -> Campaign:  # fmt: skip
    rng = np.random.default_rng(seed)
    on = [pool[emotion][i] for i in rng.permutation(len(pool[emotion]))]
    others = [e for e in pool if e not in (emotion, "neutral") and len(pool[e]) >= 10]
    references, on = on[:N_REFERENCES], on[N_REFERENCES:]
    texts: list[list[str]] = []
    for role in roles:
        if role == "on":
            texts.append([on.pop() for _ in range(per_player)])
        elif role == "copy":
            texts.append(list(texts[0]))
        elif role == "neutral":
            texts.append([str(t) for t in rng.choice(pool["neutral"], per_player, replace=False)])
        else:
            off = [str(rng.choice(pool[str(rng.choice(others))])) for _ in range(per_player)]
            texts.append([on.pop(), *off[1:]] if role == "mixed" else off)
    return Campaign(emotion, seed, references, texts, roles)


def examples(texts: list[str]) -> list[Any]:
    from crowdsft.llm_runtime.sft import Example

    return [Example(PAPER_PROMPT, t) for t in texts]


def run_campaign(campaign: Campaign, base: Any, tokenizer: Any, hp: SftHyperparameters,
                 phi: Any, units: int = 0) -> dict[str, Any]:  # fmt: skip
    """Every estimate for one campaign; the truth exact, or with `units` antithetic pairs of
    permutations (for crowds too large to enumerate)."""
    from crowdsft.engine.shapley.estimators import exact_shapley, permutation_shapley
    from crowdsft.engine.shapley.game import CentroidGame
    from crowdsft.engine.shapley.stopping import MaxSamples
    from crowdsft.llm_runtime.lora_game import LoraGame

    players = [examples(t) for t in campaign.texts]
    references = examples(campaign.references)
    game = LoraGame(base, tokenizer, players, references, hp)
    n = game.n_players
    started = time.perf_counter()
    if units:
        rng = np.random.default_rng(campaign.seed)
        truth = permutation_shapley(game, rng, MaxSamples(units))
    else:
        truth = exact_shapley(game)
    truth_seconds = time.perf_counter() - started
    everyone = list(range(n))
    full = game.value(everyone)
    values: dict[str, list[float]] = {
        "leave-one-out": [full - game.value([j for j in everyone if j != i]) for i in everyone],
        "own score": [game.value([i]) for i in everyone],
    }
    each = truth_seconds / game.trained  # one fine-tune and its reference loss
    cost = {"leave-one-out": n * each, "own score": n * each}

    started = time.perf_counter()
    target = phi.embed(campaign.references).mean(axis=0)
    vectors = np.stack([phi.embed(t).mean(axis=0) for t in campaign.texts])
    embedded = time.perf_counter() - started
    started = time.perf_counter()
    geometric = CentroidGame(vectors, target, "l2")
    values["geometric"] = exact_shapley(geometric).values.tolist()
    # The texts' phi is taken anyway (the members' positions); only the game is extra.
    cost["geometric"] = time.perf_counter() - started

    measured, measured_cost, extras = in_run_estimates(campaign, base, tokenizer, hp)
    values |= measured
    cost |= measured_cost
    result = {
        "emotion": campaign.emotion,
        "seed": campaign.seed,
        "roles": list(campaign.roles),
        "truth": truth.values.tolist(),
        "truth_method": truth.method,
        "truth_std_errors": truth.stderr.tolist(),
        "truth_relative_error": truth.relative_error,
        "full_value": full,
        "values": values,
        "extra_seconds": cost,
        "fine_tune_seconds": each,
        "truth_seconds": truth_seconds,
        "truth_fine_tunes": game.trained,
        "phi_seconds": embedded,
        **extras,
    }
    return result | {"agreement": agreement(result)}


def in_run_estimates(
    campaign: Campaign, base: Any, tokenizer: Any, hp: SftHyperparameters
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, Any]]:
    """Both in-run forms from one fine-tune each on everybody, as the candidate's training
    computes them (values per contributor, scaled to add up to the change, and their errors)."""
    import copy

    from crowdsft.llm_runtime.jobs import member_values
    from crowdsft.llm_runtime.sft import train_lora

    players = [examples(t) for t in campaign.texts]
    flat = [e for p in players for e in p]
    owner = [str(i) for i, p in enumerate(players) for _ in p]
    values, cost, errors, first_order, plain = {}, {}, {}, {}, []
    references = examples(campaign.references)
    for name, preconditioned in (("in-run", False), ("in-run (Adam)", True)):
        _, report = train_lora(copy.deepcopy(base), tokenizer, flat, hp, references,
                               preconditioned)  # fmt: skip
        assert report.valuation is not None
        by_player, error_of = member_values(report.valuation, owner)
        values[name] = [by_player[str(i)] for i in range(len(players))]
        errors[name] = [error_of[str(i)] for i in range(len(players))]
        cost[name] = report.valuation.seconds
        plain.append(report.seconds - report.valuation.seconds)
        first_order[name] = {"predicted": report.valuation.predicted,
                             "actual": report.valuation.actual}  # fmt: skip
    extras = {"training_seconds": float(np.mean(plain)), "in_run_first_order": first_order,
              "in_run_errors": errors}  # fmt: skip
    return values, cost, extras


def agreement(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each estimator against the ground truth: correlations, and for the in-run forms (on
    the game's scale) the relative error they report against the one they make."""
    truth = np.asarray(run["truth"])
    out = {}
    for name in ESTIMATORS:
        x = np.asarray(run["values"][name])
        out[name] = {
            "pearson": float(stats.pearsonr(x, truth).statistic),
            "spearman": float(stats.spearmanr(x, truth).statistic),
        }
        if name in run.get("in_run_errors", {}):
            reported = np.asarray(run["in_run_errors"][name])
            out[name]["relative_error"] = float(np.linalg.norm(x - truth) / np.linalg.norm(truth))
            out[name]["reported_relative_error"] = float(
                np.linalg.norm(reported) / np.linalg.norm(x)
            )
    return out


def rescore(path: Path, model: str, hp: SftHyperparameters, pool: dict[str, list[str]]) -> None:
    """The in-run forms again, with the current code, against a stored ground truth (which
    took the hours): every other figure of `path` is kept."""
    from crowdsft.llm_runtime.models import base_checkpoint, load_model, load_tokenizer

    record = json.loads(path.read_text())
    checkpoint = base_checkpoint(model)  # type: ignore[arg-type]
    base, tokenizer = load_model(checkpoint).eval(), load_tokenizer(checkpoint)
    per_player = record.get("texts_per_player", 3)
    for run in record["campaigns"]:
        roles = tuple(run["roles"])
        campaign = build(pool, run["emotion"], run["seed"], roles, per_player)
        measured, cost, extras = in_run_estimates(campaign, base, tokenizer, hp)
        run["values"] |= measured
        run["extra_seconds"] |= cost
        run |= extras
        run["agreement"] = agreement(run)
    record["summary"] = summarise(record["campaigns"])
    path.write_text(json.dumps(record, indent=1) + "\n")


def by_role(runs: list[dict[str, Any]], values_of: Any) -> dict[str, float]:
    """Mean value of each role, each campaign's values divided by their largest magnitude."""
    out = {}
    for role in dict.fromkeys(runs[0]["roles"]):
        picked = []
        for r in runs:
            values = np.asarray(values_of(r), dtype=np.float64)
            scaled = values / np.abs(values).max()
            picked += [v for v, who in zip(scaled, r["roles"], strict=True) if who == role]
        out[role] = float(np.mean(picked))
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    table = {}
    for name in ESTIMATORS:
        row: dict[str, Any] = {}
        for measure in ("pearson", "spearman"):
            interval = t_interval([r["agreement"][name][measure] for r in runs])
            row[measure] = {"mean": interval.mean, "low": interval.low, "high": interval.high}
        row["extra_seconds"] = float(np.mean([r["extra_seconds"][name] for r in runs]))
        for error in ("relative_error", "reported_relative_error"):
            if error in runs[0]["agreement"][name]:
                row[error] = float(np.mean([r["agreement"][name][error] for r in runs]))
        row["by_role"] = by_role(runs, lambda r, name=name: r["values"][name])
        table[name] = row
    return {
        "campaigns": len(runs),
        "estimators": table,
        "truth_by_role": by_role(runs, lambda r: r["truth"]),
        "training_seconds": float(np.mean([r["training_seconds"] for r in runs])),
        "truth_seconds": float(np.mean([r["truth_seconds"] for r in runs])),
        "truth_method": runs[0].get("truth_method", "exact"),
        "truth_relative_error": float(np.mean([r.get("truth_relative_error", 0.0) for r in runs])),
    }


def markdown(model: str, summary: dict[str, Any], hp: SftHyperparameters, players: int,
             per_player: int) -> str:  # fmt: skip
    lines = [
        f"# Valuations of a `lora` round against its real game ({model}, "
        f"{summary['campaigns']} campaigns)",
        "",
        f"Settings: {hp.model_dump()}; {players} contributors x {per_player} texts, "
        f"{N_REFERENCES} reference answers. Training alone: {summary['training_seconds']:.2f} s; "
        f"the ground truth ({summary.get('truth_method', 'exact')}, reported relative error "
        f"{summary.get('truth_relative_error', 0.0):.3f}): {summary['truth_seconds']:.0f} s per "
        "campaign.",
        "",
        "| estimator | Pearson (95% CI) | Spearman (95% CI) | extra s per round |",
        "|---|---|---|---|",
    ]
    for name, row in summary["estimators"].items():
        p, s = row["pearson"], row["spearman"]
        lines.append(
            f"| {name} | {p['mean']:.2f} [{p['low']:.2f}, {p['high']:.2f}] | "
            f"{s['mean']:.2f} [{s['low']:.2f}, {s['high']:.2f}] | {row['extra_seconds']:.2f} |"
        )
    measured = {n: r for n, r in summary["estimators"].items() if "relative_error" in r}
    if measured:
        lines += ["", "On the game's own scale (values scaled to add up to the change training "
                  "made), the in-run forms' relative error ||estimate - truth|| / ||truth|| "
                  "against the one they report (their bootstrap over steps):", ""]  # fmt: skip
        for name, row in measured.items():
            lines.append(
                f"- {name}: {row['relative_error']:.2f} made, "
                f"{row['reported_relative_error']:.2f} reported"
            )
    roles = list(summary["truth_by_role"])
    lines += [
        "",
        "Mean value by role, each campaign's values divided by their largest magnitude:",
        "",
        "| | " + " | ".join(roles) + " |",
        "|---" * (len(roles) + 1) + "|",
    ]
    rows = {"ground truth": summary["truth_by_role"]}
    rows |= {name: row["by_role"] for name, row in summary["estimators"].items()}
    for name, means in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{means[r]:+.2f}" for r in roles) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ESTIMATORS), figsize=(4 * len(ESTIMATORS), 4))
    for ax, name in zip(axes, ESTIMATORS, strict=True):
        for r in runs:
            truth = np.asarray(r["truth"]) / max(abs(x) for x in r["truth"])
            est = np.asarray(r["values"][name]) / max(abs(x) for x in r["values"][name])
            ax.scatter(truth, est, s=14, label=f"{r['emotion']} {r['seed']}")
        ax.set_title(name)
        ax.set_xlabel("LoRA game Shapley (scaled)")
    axes[0].set_ylabel("estimate (scaled)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


_WORKER: dict[str, Any] = {}


def _load(model: str, threads: int) -> None:
    """Each worker process's base, tokenizer and phi, loaded once."""
    import torch

    from crowdsft.llm_runtime.models import (
        base_checkpoint,
        load_model,
        load_tokenizer,
        pick_device,
    )
    from crowdsft.llm_runtime.phi import load_phi

    torch.set_num_threads(threads)
    checkpoint = base_checkpoint(model)  # type: ignore[arg-type]
    _WORKER.update(
        base=load_model(checkpoint, device=pick_device()).eval(),
        tokenizer=load_tokenizer(checkpoint),
        phi=load_phi("emotion"),
    )


def _campaign(campaign: Campaign, hp: SftHyperparameters, units: int) -> dict[str, Any]:
    worker = _WORKER
    return run_campaign(campaign, worker["base"], worker["tokenizer"], hp, worker["phi"], units)


def round_cost(model: str, pool: dict[str, list[str]], hp: SftHyperparameters,
               repeats: int = 3) -> None:  # fmt: skip
    """A candidate's training as a campaign runs it (8 texts, the default settings, 8 reference
    answers), with and without in-run valuation, alternating; into valuation-cost.json."""
    import copy

    from crowdsft.llm_runtime.models import (
        base_checkpoint,
        load_model,
        load_tokenizer,
        pick_device,
    )
    from crowdsft.llm_runtime.sft import train_lora

    device = pick_device()
    checkpoint = base_checkpoint(model)  # type: ignore[arg-type]
    base, tokenizer = load_model(checkpoint, device=device).eval(), load_tokenizer(checkpoint)
    campaign = build(pool, "joy", 1, ("on", "on", "off", "neutral"), 2)
    group = examples([t for texts in campaign.texts for t in texts])
    references = examples(campaign.references)
    timings: dict[str, list[float]] = {"training": [], "training with in-run valuation": []}
    for _ in range(repeats):
        for name, against in zip(timings, ((), references), strict=True):
            started = time.perf_counter()
            train_lora(copy.deepcopy(base), tokenizer, group, hp, against)
            timings[name].append(time.perf_counter() - started)
    plain, valued = (float(np.median(t)) for t in timings.values())
    result = {
        "model": model,
        "device": device,
        "cpus": os.cpu_count(),
        "examples": len(group),
        "references": len(references),
        "hyperparameters": hp.model_dump(),
        "seconds": timings,
        "median_seconds": {"training": plain, "with_valuation": valued},
        "extra_seconds": valued - plain,
        "ratio": valued / plain,
    }
    path = OUT / "valuation-cost.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    key = model if device == "cpu" else f"{model}-{device}"
    path.write_text(json.dumps(known | {key: result}, indent=1) + "\n")
    print(json.dumps(result, indent=1))


def stem_of(model: str, size: str) -> str:
    return ("valuation" if model == "tiny" else f"valuation-{model}") + (
        "" if size == "default" else f"-{size}"
    )


def write_pages(record: dict[str, Any], stem: str) -> None:
    runs, summary = record["campaigns"], record["summary"]
    hp = SftHyperparameters.model_validate(record["hyperparameters"])
    players = len(runs[0]["roles"])
    page = markdown(record["model"], summary, hp, players, record.get("texts_per_player", 3))
    (OUT / f"{stem}.md").write_text(page)
    plot(runs, OUT / f"{stem}.png")
    print(page)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", choices=("tiny", "smollm2-135m-instruct"))
    parser.add_argument("--campaigns", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=None, help="fewer for a CPU budget")
    parser.add_argument(
        "--size",
        choices=("default", "small", "large"),
        default="default",
        help="8 contributors x 3 texts (exact truth); small: 6 x 2 (exact); large: 16 x 3, "
        "the truth by permutation sampling (--units antithetic pairs)",
    )
    parser.add_argument("--units", type=int, default=12)
    parser.add_argument(
        "--cost", action="store_true", help="only time a candidate's training with and without"
    )
    parser.add_argument(
        "--rescore", action="store_true", help="the in-run forms again on the stored truth"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="campaigns at once, each on cpus/jobs threads"
    )
    args = parser.parse_args()

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    hp = SftHyperparameters()
    if args.epochs is not None:
        hp = hp.model_copy(update={"epochs": args.epochs})
    pool = single_label(DATA)
    stem = stem_of(args.model, args.size)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.cost:
        round_cost(args.model, pool, hp)
        return
    if args.rescore:
        rescore(OUT / f"{stem}.json", args.model, hp, pool)
        write_pages(json.loads((OUT / f"{stem}.json").read_text()), stem)
        return
    roles, per_player = {
        "default": (ROLES, 3),
        "small": (SMALL_ROLES, 2),
        "large": (ROLES + ROLES, 3),
    }[args.size]
    units = args.units if args.size == "large" else 0
    plan = [(EMOTIONS[i % len(EMOTIONS)], 1 + i // len(EMOTIONS)) for i in range(args.campaigns)]
    campaigns = [build(pool, emotion, seed, roles, per_player) for emotion, seed in plan]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ProcessPoolExecutor(
        args.jobs, multiprocessing.get_context("spawn"), _load, (args.model, threads)
    ) as workers:
        futures = [workers.submit(_campaign, c, hp, units) for c in campaigns]
        runs = [f.result() for f in tqdm(futures, desc="campaigns")]
    record = {
        "model": args.model,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jobs": args.jobs,
        "threads_per_job": threads,
        "texts_per_player": per_player,
        "truth_units": units,
        "hyperparameters": hp.model_dump(),
        "summary": summarise(runs),
        "campaigns": runs,
    }
    (OUT / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    write_pages(record, stem)


if __name__ == "__main__":
    main()
