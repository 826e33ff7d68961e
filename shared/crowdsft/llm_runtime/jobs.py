"""The units of LLM work a model worker runs: train one candidate, or evaluate one model.

Plain (picklable) jobs, so the same work runs in a resident Ray actor (the services), in the
experiment's loop and in a unit test. A model is named by its base and the chain of adapters
merged into it; adapters are read from and written to the artifact store by key.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from crowdsft.adapters.artifact_store import ArtifactStore
from crowdsft.llm.config import BaseModelName, LlmSpec
from crowdsft.llm_runtime.in_run import InRunValues
from crowdsft.llm_runtime.phi import load_phi, mean_distance
from crowdsft.llm_runtime.sampling import sample_sets
from crowdsft.llm_runtime.sft import Example

if TYPE_CHECKING:
    from crowdsft.llm_runtime.worker import ModelWorker


@dataclass(frozen=True)
class ModelRef:
    base: BaseModelName
    adapters: tuple[str, ...] = ()  # artifact keys, oldest first


@dataclass(frozen=True)
class Workspace:
    artifact_root: str
    model_cache: str | None = None

    def store(self) -> ArtifactStore:
        return ArtifactStore(Path(self.artifact_root))

    def cache(self) -> Path | None:
        return Path(self.model_cache) if self.model_cache else None


@dataclass(frozen=True)
class Evaluation:
    """Selection score (on the evaluation prompts) and the judge's (on held-out prompts)."""

    distance: float
    position: list[float]  # mean phi of the outputs: where the model stands
    heldout_distance: float
    new_tokens: int
    generation_seconds: float
    samples: list[str] = field(default_factory=list)
    # The same samples' mean distance to a second reference, when one was asked for (the
    # authors' LLM experiment selects by the anchor comment and reports against the target).
    reference_distance: float = float("nan")


@dataclass(frozen=True)
class EvaluateJob:
    model: ModelRef
    llm: dict[str, Any]
    target: list[float]
    workspace: Workspace
    heldout: bool = True
    reference: list[float] | None = None
    # False: the held-out answers alone, so a base's two sets can run on two workers at once.
    selection: bool = True


@dataclass(frozen=True)
class TrainJob:
    model: ModelRef
    adapter_key: str
    examples: list[Example]
    contributors: list[str]  # who wrote each example, for their place in phi space
    llm: dict[str, Any]
    target: list[float]
    workspace: Workspace
    heldout: bool = True
    reference: list[float] | None = None
    # Reference answers to value each example against while training (none: not valued),
    # along the plain gradient (`in_run`) or Adam's step (`in_run_adam`).
    value_against: list[Example] = field(default_factory=list)
    preconditioned: bool = False


@dataclass(frozen=True)
class TrainResult:
    adapter_key: str
    examples: int
    steps: int
    train_seconds: float
    examples_per_s: float
    first_loss: float
    last_loss: float
    evaluation: Evaluation
    member_positions: dict[str, list[float]]
    device: str
    member_values: dict[str, float] = field(default_factory=dict)
    member_value_errors: dict[str, float] = field(default_factory=dict)
    valuation_seconds: float = 0.0


def evaluate(
    model: Any,
    tokenizer: Any,
    spec: LlmSpec,
    target: list[float],
    cache: Path | None,
    heldout: bool = True,
    reference: list[float] | None = None,
    selection: bool = True,
) -> Evaluation:
    """The selection answers' distance, position and samples, and the held-out answers'
    distance; a set left out reads NaN (or empty)."""
    device = str(next(model.parameters()).device)
    phi = load_phi(spec.phi, cache, device)
    goal = np.asarray(target, dtype=np.float64)
    sets = [(spec.eval_prompts, spec.sampling)] if selection else []
    if heldout:
        sets.append((spec.heldout_prompts, spec.heldout_sampling))
    # Selection and held-out answers decoded as one stream (each set keeps its own seed).
    decoded = sample_sets(model, tokenizer, sets)
    chosen, judged = (decoded[0], decoded[1:]) if selection else (None, decoded)
    tokens = sum(part.new_tokens for part in decoded)
    seconds = sum(part.seconds for part in decoded)
    heldout_distance = float("nan")
    for rescored in judged:
        heldout_distance = mean_distance(phi.embed(rescored.texts), goal)
    if chosen is None:
        return Evaluation(float("nan"), [], heldout_distance, tokens, seconds)
    vectors = phi.embed(chosen.texts)
    return Evaluation(
        distance=mean_distance(vectors, goal),
        position=[float(x) for x in vectors.mean(axis=0)],
        heldout_distance=heldout_distance,
        new_tokens=tokens,
        generation_seconds=seconds,
        samples=chosen.texts[:5],
        reference_distance=(
            mean_distance(vectors, np.asarray(reference, dtype=np.float64))
            if reference is not None
            else float("nan")
        ),
    )


def combined(selection: Evaluation, heldout: Evaluation) -> Evaluation:
    """One model's evaluation from its two sets measured apart (each set draws from its own
    seeded generator, so the answers are those of one evaluation)."""
    return replace(
        selection,
        heldout_distance=heldout.heldout_distance,
        new_tokens=selection.new_tokens + heldout.new_tokens,
        generation_seconds=selection.generation_seconds + heldout.generation_seconds,
    )


def evaluate_model(job: EvaluateJob) -> Evaluation:
    return worker_for(job.workspace).evaluate(job)


def train_candidate(job: TrainJob) -> TrainResult:
    """Fine-tune an adapter on the group's examples, store it, and evaluate the result."""
    return worker_for(job.workspace).train(job)


@functools.cache
def worker_for(workspace: Workspace) -> ModelWorker:
    """This process's resident worker for a workspace (the experiment, tests, one-off jobs)."""
    from crowdsft.llm_runtime.worker import ModelWorker

    return ModelWorker(workspace.artifact_root, workspace.model_cache)


def member_positions(
    vectors: np.ndarray[Any, Any], contributors: list[str]
) -> dict[str, list[float]]:
    """Each contributor's point: the mean phi of their responses (the vector backend's u_i)."""
    rows: dict[str, list[int]] = {}
    for row, contributor in enumerate(contributors):
        rows.setdefault(contributor, []).append(row)
    return {c: [float(x) for x in vectors[r].mean(axis=0)] for c, r in rows.items()}


def member_values(
    values: InRunValues, contributors: list[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Each contributor's in-run value and its standard error.

    A value is the sum of their examples' terms over the steps, scaled (one factor for the
    whole run) so that all values add up to the change training made to the reference loss,
    as Shapley values add up to the coalition's value: the plain gradient's terms are not on
    the scale of Adam's steps. The error is a bootstrap over the steps (the square root of the
    step count times the standard deviation of the contributor's per-step terms): how much the
    value hangs on which steps their texts landed in.
    """
    names = list(dict.fromkeys(contributors))
    column = {name: k for k, name in enumerate(names)}
    owners = np.zeros((len(contributors), len(names)))
    owners[np.arange(len(contributors)), [column[c] for c in contributors]] = 1.0
    steps = np.asarray(values.per_step, dtype=np.float64).reshape(-1, len(contributors))
    per_step = steps @ owners  # each step's terms, summed per contributor
    totals = per_step.sum(axis=0)
    scale = values.scale()
    count = per_step.shape[0]
    spread = per_step.std(axis=0, ddof=1) if count > 1 else np.zeros(len(names))
    errors = abs(scale) * np.sqrt(count) * spread
    return (
        {name: float(scale * totals[k]) for name, k in column.items()},
        {name: float(errors[k]) for name, k in column.items()},
    )
