"""`crowdsft phi train-emotion` and `crowdsft experiment llm`: the LLM path from the shell.

Wiring only: the work is `crowdsft.llm` (models, phi, the experiment), the files and plots
`crowdsft.reporting.llm`. Needs the llm extra (torch, transformers, peft).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.console import Console

from crowdsft.cli import app
from crowdsft.cli.progress import progress_bar
from crowdsft.llm.config import SftHyperparameters

console = Console(stderr=True)
DATA = Path("../shared/data/goemotions")

phi_app = typer.Typer(no_args_is_help=True, help="The phi embeddings (MiniLM, emotion head).")
experiment_app = typer.Typer(no_args_is_help=True, help="The paper's experiments.")
app.add_typer(phi_app, name="phi")
app.add_typer(experiment_app, name="experiment")


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


@phi_app.command("train-emotion")
def train_emotion(
    data: Path = typer.Option(DATA, help="GoEmotions folder (train/dev/test TSVs)."),
    limit: int | None = typer.Option(None, help="Use only the first N rows of each split."),
    epochs: int = typer.Option(30, min=1),
) -> None:
    """Fit the 28-emotion head on MiniLM vectors of the train split; report dev accuracy."""
    from crowdsft.llm_runtime.emotions import train_emotion_head
    from crowdsft.llm_runtime.models import pick_device
    from crowdsft.llm_runtime.phi import head_dir

    with console.status("embedding GoEmotions and fitting the head"):
        report = train_emotion_head(data, limit=limit, epochs=epochs, device=pick_device())
    console.print(f"emotion head saved in {head_dir()}")
    print(json.dumps(asdict(report), indent=2))


@experiment_app.command("llm")
def experiment_llm(
    emotion: list[str] = typer.Option(..., help="GoEmotions name(s), e.g. neutral."),
    data: Path = typer.Option(DATA, help="GoEmotions folder; its test split is the pool."),
    out: Path = typer.Option(Path("out/llm"), help="Results, tables and plots go here."),
    base: str = typer.Option("smollm2-135m-instruct", help="smollm2-135m-instruct | tiny"),
    neighbours: int = typer.Option(100, min=2),
    singles: str = typer.Option("33,66,100", help="Single-model training sizes."),
    parts: str = typer.Option("33,22,15", help="Tournament part size per generation."),
    candidates: int = typer.Option(3, min=1),
    samples: int = typer.Option(50, min=1, help="Outputs sampled per model."),
    max_new_tokens: int = typer.Option(48, min=1),
    epochs: int = typer.Option(3, min=1),
    learning_rate: float = typer.Option(5e-4),
    pool_limit: int | None = typer.Option(None, help="Use only the first N test comments."),
    seed: int = typer.Option(0, min=0),
    gate: bool = typer.Option(False, help="Ours: move only to a closer winner."),
    rescore: bool = typer.Option(False, help="Ours: re-measure the finalists on fresh samples."),
    rescore_samples: int | None = typer.Option(
        None, min=1, help="Fresh samples per finalist when re-scoring (default: --samples)."
    ),
    selection: str = typer.Option(
        "target", help="Pick winners by the distance to: target (ours) | anchor (the authors')."
    ),
) -> None:
    """Single models vs the 3 x 3 tournament, per emotion; table in OUT/table.md."""
    if selection not in ("target", "anchor"):
        raise typer.BadParameter("choose target or anchor", param_hint="--selection")
    if rescore_samples is not None and not rescore:
        raise typer.BadParameter(
            "only re-scoring draws them; add --rescore", param_hint="--rescore-samples"
        )
    from crowdsft.llm.design import check_design
    from crowdsft.llm_runtime.emotions import emotion_names, load_split
    from crowdsft.llm_runtime.experiment import LlmExperimentConfig, run_llm_experiment
    from crowdsft.llm_runtime.models import pick_device
    from crowdsft.llm_runtime.phi import load_phi
    from crowdsft.reporting.llm import markdown_table, write_llm_results

    names = emotion_names(data)
    unknown = [e for e in emotion if e not in names]
    if unknown:
        raise typer.BadParameter(f"unknown emotion(s) {unknown}; choose from {names}")
    if base not in ("smollm2-135m-instruct", "tiny"):
        raise typer.BadParameter(f"unknown base model {base!r}")
    try:
        check_design(neighbours, _sizes(singles), _sizes(parts), candidates)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    pool = load_split(data, "test", pool_limit)
    with console.status(f"placing {len(pool.texts)} test comments in phi space"):
        pool_phi = load_phi("emotion", None, pick_device()).embed(pool.texts)
    sft = SftHyperparameters(epochs=epochs, learning_rate=learning_rate)
    models_per_emotion = 1 + len(_sizes(singles)) + candidates * len(_sizes(parts)) + 2 * rescore
    results = []
    with progress_bar(models_per_emotion * len(emotion), "models", console) as step:
        for name in emotion:
            cfg = LlmExperimentConfig(
                emotion=name,
                out_dir=out,
                base_model=base,  # type: ignore[arg-type]  # checked above
                neighbours=neighbours,
                singles=_sizes(singles),
                parts=_sizes(parts),
                candidates=candidates,
                samples=samples,
                max_new_tokens=max_new_tokens,
                sft=sft,
                seed=seed,
                gate=gate,
                rescore=rescore,
                rescore_samples=rescore_samples,
                selection="anchor" if selection == "anchor" else "target",
            )

            def on_model(label: str, emotion_name: str = name) -> None:
                step(f"{emotion_name}: {label}")

            result = run_llm_experiment(cfg, pool.texts, pool_phi, names.index(name), on_model)
            results.append(result)
            write_llm_results(results, out)  # after each emotion, so a long run shows progress
    print(markdown_table(results), end="")
    console.print(f"results, table and plots in {out}")
