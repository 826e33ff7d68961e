"""The units of LLM work a Ray task runs: train one candidate, or evaluate one model.

Plain functions of plain (picklable) jobs, so the same code runs in a Ray worker, in the
experiment's loop and in a unit test. A model is named by its base and the chain of adapters
merged into it; adapters are read from and written to the artifact store by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crowdsft.adapters.artifact_store import ArtifactStore
from crowdsft.llm.config import BaseModelName, LlmSpec
from crowdsft.llm_runtime.models import base_checkpoint, load_model, load_tokenizer, pick_device
from crowdsft.llm_runtime.phi import load_phi, mean_distance
from crowdsft.llm_runtime.sampling import sample
from crowdsft.llm_runtime.sft import Example, train_lora


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


@dataclass(frozen=True)
class EvaluateJob:
    model: ModelRef
    llm: dict[str, Any]
    target: list[float]
    workspace: Workspace
    heldout: bool = True


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


def load(ref: ModelRef, workspace: Workspace, device: str) -> tuple[Any, Any]:
    checkpoint = base_checkpoint(ref.base, workspace.cache())
    store = workspace.store()
    adapters = [store.path(key) for key in ref.adapters]
    return load_model(checkpoint, adapters, device), load_tokenizer(checkpoint)


def evaluate(
    model: Any,
    tokenizer: Any,
    spec: LlmSpec,
    target: list[float],
    cache: Path | None,
    heldout: bool = True,
) -> Evaluation:
    device = str(next(model.parameters()).device)
    phi = load_phi(spec.phi, cache, device)
    goal = np.asarray(target, dtype=np.float64)
    chosen = sample(model, tokenizer, spec.eval_prompts, spec.sampling)
    vectors = phi.embed(chosen.texts)
    tokens, seconds = chosen.new_tokens, chosen.seconds
    heldout_distance = float("nan")
    if heldout:
        judged = sample(model, tokenizer, spec.heldout_prompts, spec.heldout_sampling)
        heldout_distance = mean_distance(phi.embed(judged.texts), goal)
        tokens, seconds = tokens + judged.new_tokens, seconds + judged.seconds
    return Evaluation(
        distance=mean_distance(vectors, goal),
        position=[float(x) for x in vectors.mean(axis=0)],
        heldout_distance=heldout_distance,
        new_tokens=tokens,
        generation_seconds=seconds,
        samples=chosen.texts[:5],
    )


def evaluate_model(job: EvaluateJob) -> Evaluation:
    device = pick_device()
    model, tokenizer = load(job.model, job.workspace, device)
    spec = LlmSpec.model_validate(job.llm)
    return evaluate(model, tokenizer, spec, job.target, job.workspace.cache(), job.heldout)


def train_candidate(job: TrainJob) -> TrainResult:
    """Fine-tune an adapter on the group's examples, store it, and evaluate the result."""
    device = pick_device()
    spec = LlmSpec.model_validate(job.llm)
    model, tokenizer = load(job.model, job.workspace, device)
    tuned, report = train_lora(model, tokenizer, job.examples, spec.sft)
    job.workspace.store().publish(job.adapter_key, tuned.save_pretrained)
    evaluation = evaluate(tuned, tokenizer, spec, job.target, job.workspace.cache(), job.heldout)
    phi = load_phi(spec.phi, job.workspace.cache(), device)
    return TrainResult(
        adapter_key=job.adapter_key,
        examples=len(job.examples),
        steps=report.steps,
        train_seconds=report.seconds,
        examples_per_s=report.examples_per_s,
        first_loss=report.first_loss,
        last_loss=report.last_loss,
        evaluation=evaluation,
        member_positions=member_positions(
            phi.embed([e.response for e in job.examples]), job.contributors
        ),
        device=device,
    )


def member_positions(
    vectors: np.ndarray[Any, Any], contributors: list[str]
) -> dict[str, list[float]]:
    """Each contributor's point: the mean phi of their responses (the vector backend's u_i)."""
    rows: dict[str, list[int]] = {}
    for row, contributor in enumerate(contributors):
        rows.setdefault(contributor, []).append(row)
    return {c: [float(x) for x in vectors[r].mean(axis=0)] for c, r in rows.items()}
