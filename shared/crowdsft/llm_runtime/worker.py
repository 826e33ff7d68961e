"""A resident model worker: what every round needs, loaded once and kept.

A Ray task started a fresh process's worth of work each time: imports (about 6 s), the base
checkpoint, MiniLM (1.3 s) and every ancestor's adapter merged again (0.6 s each, so the cost
grew with every round won). A worker keeps the tokenizers, `phi` and the merged model of the
last few bases: a round's candidates share one base, so it is built once, from the previous
base plus the newest winner's adapter.

Every result is a function of the job alone (never of what the worker did before): a cached
base is never changed in place (training and sampling work on copies) and samples are drawn
from a generator seeded per job, so a replacement worker, or a worker that already served
other campaigns, answers a repeated job with the same adapter and the same samples.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path
from typing import Any

from crowdsft.llm.config import LlmSpec, Precision, resolved
from crowdsft.llm_runtime.decoding import derive_weights, weights_of
from crowdsft.llm_runtime.jobs import (
    EvaluateJob,
    Evaluation,
    ModelRef,
    TrainJob,
    TrainResult,
    evaluate,
    member_positions,
    member_values,
)
from crowdsft.llm_runtime.models import (
    base_checkpoint,
    load_model,
    load_tokenizer,
    merge_adapter,
    pick_device,
)
from crowdsft.llm_runtime.phi import load_phi
from crowdsft.llm_runtime.quantise import adapted, quantise, requantise
from crowdsft.llm_runtime.sft import train_lora

MERGED_KEPT = 3  # the current base, the one before, and a campaign alongside


def sampling_model(model: Any, precision: Precision, device: str) -> Any:
    """The model samples are drawn with: `model` itself in float32 or float16 (the decoder
    lays out float16 weights itself), else an int8 (CPU) or bfloat16 copy. `model` is never
    changed."""
    import torch

    chosen = resolved(precision, device)
    if chosen in ("float32", "float16"):
        return model
    if chosen == "int8":
        return quantise(model)
    return copy.deepcopy(model).to(torch.bfloat16)


class ModelWorker:
    """One per CPU slot or GPU share; a Ray actor in the services, a plain object elsewhere."""

    def __init__(self, artifact_root: str, model_cache: str | None = None,
                 threads: int | None = None) -> None:  # fmt: skip
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        from crowdsft.llm_runtime.jobs import Workspace

        self._workspace = Workspace(artifact_root, model_cache)
        self.device = pick_device()
        self._merged: OrderedDict[ModelRef, Any] = OrderedDict()
        self._samplers: OrderedDict[tuple[ModelRef, Precision], Any] = OrderedDict()
        self._tokenizers: dict[str, Any] = {}

    def ready(self) -> str:
        """Answers once the worker is up: its device."""
        return self.device

    def tokenizer(self, ref: ModelRef) -> Any:
        if ref.base not in self._tokenizers:
            self._tokenizers[ref.base] = load_tokenizer(self._checkpoint(ref))
        return self._tokenizers[ref.base]

    def merged(self, ref: ModelRef) -> Any:
        """The base with `ref`'s adapters merged, oldest first (shared: never change it)."""
        if ref in self._merged:
            self._merged.move_to_end(ref)
            return self._merged[ref]
        model, done = None, 0
        for cut in range(len(ref.adapters) - 1, -1, -1):
            prefix = ModelRef(ref.base, ref.adapters[:cut])
            if prefix in self._merged:
                model, done = self._merged[prefix], cut  # merged into a copy below
                break
        if model is None:
            model = load_model(self._checkpoint(ref), device=self.device)
        store = self._workspace.store()
        for key in ref.adapters[done:]:
            parent, model = model, merge_adapter(copy.deepcopy(model), store.path(key))
            derive_weights(model, parent)  # the parent's decoding layouts, where it has them
        model.eval()
        self._merged[ref] = model
        while len(self._merged) > MERGED_KEPT:
            self._merged.popitem(last=False)
        return model

    def sampler(self, ref: ModelRef, precision: Precision) -> Any:
        """The base's sampling model (shared: never change it)."""
        key = (ref, resolved(precision, self.device))
        if key not in self._samplers:
            self._samplers[key] = sampling_model(self.merged(ref), precision, self.device)
            while len(self._samplers) > MERGED_KEPT:
                self._samplers.popitem(last=False)
        self._samplers.move_to_end(key)
        return self._samplers[key]

    def evaluate(self, job: EvaluateJob) -> Evaluation:
        spec = LlmSpec.model_validate(job.llm)
        sampler = self.sampler(job.model, spec.sampling.precision)
        return evaluate(sampler, self.tokenizer(job.model), spec, job.target,
                        self._workspace.cache(), job.heldout, job.reference,
                        job.selection)  # fmt: skip

    def train(self, job: TrainJob) -> TrainResult:
        """Fine-tune an adapter on the group's examples, store it, and evaluate the result."""
        spec = LlmSpec.model_validate(job.llm)
        tokenizer = self.tokenizer(job.model)
        work = copy.deepcopy(self.merged(job.model))
        tuned, report = train_lora(work, tokenizer, job.examples, spec.sft, job.value_against,
                                   job.preconditioned)  # fmt: skip
        self._workspace.store().publish(job.adapter_key, tuned.save_pretrained)
        candidate = tuned.merge_and_unload().eval()
        precision = resolved(spec.sampling.precision, self.device)
        if precision == "int8":
            # Only the adapted projections differ from the base: the rest of the base's int8
            # sampler is shared, and the result equals quantising the candidate whole.
            base = self.sampler(job.model, precision)
            changed = adapted(candidate, spec.sft.target_modules)
            sampler = requantise(base, candidate, changed)
        else:
            sampler = sampling_model(candidate, precision, self.device)
            if sampler is candidate:  # float32 or float16: laid out from the base's layout
                base = self.merged(job.model)
                weights_of(base, half=precision == "float16")
                derive_weights(candidate, base)
        cache = self._workspace.cache()
        evaluation = evaluate(sampler, tokenizer, spec, job.target, cache, job.heldout,
                              job.reference)  # fmt: skip
        phi = load_phi(spec.phi, cache, self.device)
        values, errors = (
            member_values(report.valuation, job.contributors) if report.valuation else ({}, {})
        )
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
            device=self.device,
            member_values=values,
            member_value_errors=errors,
            valuation_seconds=report.valuation.seconds if report.valuation else 0.0,
        )

    def _checkpoint(self, ref: ModelRef) -> Path:
        return base_checkpoint(ref.base, self._workspace.cache())
