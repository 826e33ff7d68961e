"""The paper's LLM experiment: single models on 33/66/100 neighbours against a 3 x 3
tournament on disjoint parts, every model measured by 50 samples in `phi` space.

The same jobs the `lora` backend runs on Ray (`crowdsft.llm_runtime.jobs`) run here in-process,
so the experiment measures the code the services use; the design itself is
`crowdsft.llm.design`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from crowdsft.llm.config import (
    PAPER_PROMPT,
    BaseModelName,
    LlmSpec,
    SamplingConfig,
    SftHyperparameters,
)
from crowdsft.llm.design import emotion_target, reduction, run_generations
from crowdsft.llm_runtime.jobs import (
    EvaluateJob,
    Evaluation,
    ModelRef,
    TrainJob,
    Workspace,
    evaluate_model,
    train_candidate,
)
from crowdsft.llm_runtime.models import pick_device
from crowdsft.llm_runtime.sft import Example

FloatArray = NDArray[np.float64]
Selection = Literal["target", "anchor"]


@dataclass(frozen=True)
class LlmExperimentConfig:
    emotion: str
    out_dir: Path
    base_model: BaseModelName = "smollm2-135m-instruct"
    neighbours: int = 100
    singles: tuple[int, ...] = (33, 66, 100)
    parts: tuple[int, ...] = (33, 22, 15)
    candidates: int = 3
    samples: int = 50
    max_new_tokens: int = 48
    sft: SftHyperparameters = field(default_factory=SftHyperparameters)
    seed: int = 0
    cache: Path | None = None
    # Our rules, off by default (the paper's protocol): a generation's winner replaces the
    # model only if it is closer (the services' improvement gate); and the final models are
    # re-measured on fresh samples, so best-of-3 luck does not flatter the tournament.
    gate: bool = False
    rescore: bool = False
    # Fresh samples per finalist when re-scoring (None: as many as `samples`). More samples
    # shrink the re-measurement's own noise, which the seeds' interval would otherwise carry.
    rescore_samples: int | None = None
    # Which point a generation's winner is picked by: the target (ours) or the anchor comment's
    # phi (the authors'); every reported distance is to the target either way.
    selection: Selection = "target"

    def llm_spec(self) -> LlmSpec:
        sampling = SamplingConfig(
            samples=self.samples,
            max_new_tokens=self.max_new_tokens,
            batch_size=min(self.samples, 50),
            seed=self.seed,
        )
        return LlmSpec(
            base_model=self.base_model,
            phi="emotion",
            eval_prompts=[PAPER_PROMPT],
            # One seed varies the pool's shuffle, the fine-tuning and the sampling together.
            sft=self.sft.model_copy(update={"seed": self.seed}),
            sampling=sampling,
        )

    def rescoring_spec(self) -> LlmSpec:
        """The finalists' re-measurement: `rescore_samples` samples on a seed no model was
        picked with (`seed + 1000`)."""
        llm = self.llm_spec()
        samples = self.samples if self.rescore_samples is None else self.rescore_samples
        fresh = SamplingConfig.model_validate(
            llm.sampling.model_dump()
            | {"seed": self.seed + 1_000, "samples": samples, "batch_size": min(samples, 50)}
        )
        return llm.model_copy(update={"sampling": fresh})


@dataclass(frozen=True)
class ModelOutcome:
    label: str  # base, single-33, gen1-c0, ...
    kind: str  # base | single | multi
    generation: int | None
    examples: int
    distance: float
    won: bool = False
    train_seconds: float = 0.0
    generation_seconds: float = 0.0
    new_tokens: int = 0
    samples: list[str] = field(default_factory=list)
    anchor_distance: float = float("nan")  # to the anchor comment's phi (the authors' pick)


@dataclass(frozen=True)
class LlmExperimentResult:
    emotion: str
    anchor_text: str
    device: str
    seconds: float
    outcomes: list[ModelOutcome]

    def distance(self, label: str) -> float:
        return next(o.distance for o in self.outcomes if o.label == label)

    @property
    def base_distance(self) -> float:
        return self.distance("base")

    @property
    def singles(self) -> dict[str, float]:
        return {o.label: o.distance for o in self.outcomes if o.kind == "single"}

    @property
    def in_hand(self) -> list[float]:
        """The tournament model's distance after each generation: the generation's winner,
        or (gated, when no candidate was closer) the model it already had."""
        current, after = self.base_distance, []
        generations = sorted({o.generation for o in self.outcomes if o.generation is not None})
        for g in generations:
            won = [o for o in self.outcomes if o.generation == g and o.won]
            current = won[0].distance if won else current
            after.append(current)
        return after

    @property
    def rescored(self) -> dict[str, float]:
        return {o.label: o.distance for o in self.outcomes if o.kind == "rescored"}

    @property
    def reduction_vs_largest_single(self) -> float:
        return reduction(self.in_hand[-1], list(self.singles.values())[-1])

    @property
    def reduction_vs_best_single(self) -> float:
        return reduction(self.in_hand[-1], min(self.singles.values()))

    @property
    def rescored_reduction(self) -> float | None:
        """Multi vs the largest single, both re-measured on fresh samples."""
        scores = self.rescored
        if "rescored-multi" not in scores:
            return None
        single = next(k for k in scores if k.startswith("rescored-single"))
        return reduction(scores["rescored-multi"], scores[single])


Step = Callable[[str], None]


@dataclass
class SharedModels:
    """What the arms of one emotion and seed have in common, trained and measured once: the
    base, the singles, every tournament model whose parent chain and rows match (each arm's
    first generation, and later ones while two arms pick the same winners) and re-scorings of
    the same model. Adapters are named by their content, and every result is a function of its
    job alone, so an arm run with another's models is the arm run alone, at about two thirds
    of the cost of three separate runs."""

    workspace: Path
    measured: dict[str, tuple[Evaluation, float]] = field(default_factory=dict)
    serves: str | None = None  # the runs it serves: all but the arm must be the same

    def check(self, cfg: LlmExperimentConfig) -> None:
        """Models are shared only between runs that differ in their arm alone."""
        run = repr(dataclasses.replace(cfg, gate=False, selection="target", out_dir=Path()))
        if self.serves is None:
            self.serves = run
        elif run != self.serves:
            raise ValueError("shared models serve the arms of one emotion and seed alone")


def adapter_name(parent: Sequence[str], rows: Sequence[int]) -> str:
    """An adapter's name from what made it: its parent chain and its training rows."""
    made_of = json.dumps([list(parent), [int(r) for r in rows]]).encode()
    return "m-" + hashlib.sha256(made_of).hexdigest()[:20]


def run_llm_experiment(
    cfg: LlmExperimentConfig,
    pool_texts: Sequence[str],
    pool_phi: FloatArray,
    emotion_index: int,
    on_step: Step = lambda _: None,
    shared: SharedModels | None = None,
) -> LlmExperimentResult:
    """Base, singles, then the tournament; `on_step` hears each model as it is done. Without
    `shared` the run starts from an empty workspace of its own."""
    started = time.perf_counter()
    chosen = emotion_target(pool_phi, emotion_index, cfg.neighbours)
    target = [float(x) for x in chosen.target]
    # The authors' selection reference; measured for every model (a distance more on the same
    # samples), whichever point picks the winners, so arms can share models.
    anchor = [float(x) for x in pool_phi[chosen.anchor]]
    texts = [pool_texts[i] for i in chosen.neighbours]  # nearest first
    if shared is None:
        work = cfg.out_dir / "artifacts" / cfg.emotion
        shutil.rmtree(work, ignore_errors=True)  # a fresh run never reuses an older adapter
        shared = SharedModels(work)
    shared.check(cfg)
    workspace = Workspace(str(shared.workspace.resolve()), str(cfg.cache) if cfg.cache else None)
    spec = cfg.llm_spec().model_dump(mode="json")
    rescoring = cfg.rescoring_spec().model_dump(mode="json")
    root = ModelRef(cfg.base_model)

    def once(key: str, measure: Callable[[], tuple[Evaluation, float]]) -> tuple[Evaluation, float]:
        if key not in shared.measured:
            shared.measured[key] = measure()
        return shared.measured[key]

    def train(model: ModelRef, rows: Sequence[int]) -> tuple[ModelRef, Evaluation, float]:
        key = adapter_name(model.adapters, rows)
        examples = [Example(PAPER_PROMPT, pool_texts[int(chosen.neighbours[i])]) for i in rows]
        job = TrainJob(model, key, examples, ["pool"] * len(rows), spec, target, workspace,
                       heldout=False, reference=anchor)  # fmt: skip

        def fine_tune() -> tuple[Evaluation, float]:
            result = train_candidate(job)
            return result.evaluation, result.train_seconds

        evaluation, seconds = once(key, fine_tune)
        return ModelRef(cfg.base_model, (*model.adapters, key)), evaluation, seconds

    def measure(key: str, job: EvaluateJob) -> Evaluation:
        return once(key, lambda: (evaluate_model(job), 0.0))[0]

    base = measure("base", EvaluateJob(root, spec, target, workspace, heldout=False,
                                       reference=anchor))  # fmt: skip
    outcomes = [_outcome("base", "base", None, 0, base, 0.0)]
    on_step("base")
    singles: dict[int, ModelRef] = {}
    for n in cfg.singles:
        singles[n], evaluation, seconds = train(root, range(n))
        outcomes.append(_outcome(f"single-{n}", "single", None, n, evaluation, seconds))
        on_step(f"single-{n}")

    measured: dict[tuple[int, int], ModelOutcome] = {}
    models: dict[tuple[int, int], ModelRef] = {}

    def selected_by(evaluation: Evaluation) -> float:
        return evaluation.reference_distance if cfg.selection == "anchor" else evaluation.distance

    def candidate(generation: int, c: int, rows: list[int],
                  parent: tuple[tuple[int, int], ...]) -> float:  # fmt: skip
        label = f"gen{generation}-c{c}"
        model = models[parent[-1]] if parent else root
        models[generation, c], evaluation, seconds = train(model, rows)
        measured[generation, c] = _outcome(label, "multi", generation, len(rows), evaluation,
                                           seconds)  # fmt: skip
        on_step(label)
        return selected_by(evaluation)

    generations = run_generations(range(len(texts)), cfg.parts, cfg.candidates,
                                  np.random.default_rng(cfg.seed), candidate, selected_by(base),
                                  cfg.gate)  # fmt: skip
    current = root
    for generation in generations:
        for c in range(cfg.candidates):
            won = generation.won and c == generation.best
            outcomes.append(_won(measured[generation.index, c]) if won else
                            measured[generation.index, c])  # fmt: skip
        if generation.won:
            current = models[generation.index, generation.best]
    if cfg.rescore:
        for label, model in (
            (f"rescored-single-{cfg.singles[-1]}", singles[cfg.singles[-1]]),
            ("rescored-multi", current),
        ):
            job = EvaluateJob(model, rescoring, target, workspace, heldout=False)
            key = "rescored:" + "/".join(model.adapters)
            fresh = measure(key, job)
            outcomes.append(_outcome(label, "rescored", None, 0, fresh, 0.0))
            on_step(label)
    return LlmExperimentResult(
        emotion=cfg.emotion,
        anchor_text=pool_texts[chosen.anchor],
        device=pick_device(),
        seconds=time.perf_counter() - started,
        outcomes=outcomes,
    )


def _outcome(label: str, kind: str, generation: int | None, examples: int,
             evaluation: Evaluation, train_seconds: float) -> ModelOutcome:  # fmt: skip
    return ModelOutcome(
        label=label,
        kind=kind,
        generation=generation,
        examples=examples,
        distance=evaluation.distance,
        train_seconds=train_seconds,
        generation_seconds=evaluation.generation_seconds,
        new_tokens=evaluation.new_tokens,
        samples=evaluation.samples[:3],
        anchor_distance=evaluation.reference_distance,
    )


def _won(outcome: ModelOutcome) -> ModelOutcome:
    return ModelOutcome(**{**outcome.__dict__, "won": True})
