"""The `lora` backend's trainer: a group's contributions fine-tune a LoRA adapter on Ray.

The service only gathers the request's data and lineage, hands the job to a resident model
worker (`crowdsft.llm_runtime.worker`, a Ray actor that keeps its models loaded, on a GPU
when the cluster has one) and returns what comes back. The base of a round is measured once,
the same way, since the tournament's gate compares every candidate with it; a campaign's first
base is measured as soon as its crowd starts submitting.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from crowdsft.adapters.ray_workers import RayWorkers
from crowdsft.contracts import TrainingRequested
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.ids import (
    base_artifact_ref,
    candidate_model_id,
    key_of,
    model_key,
    ref_of,
    root_model_id,
)
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.domain.measurement import Measurement
from crowdsft.llm.config import MEASURED_VALUATIONS, LlmSpec
from crowdsft.llm_runtime.jobs import (
    EvaluateJob,
    Evaluation,
    ModelRef,
    TrainJob,
    TrainResult,
    Workspace,
    combined,
)
from crowdsft.llm_runtime.sft import Example
from crowdsft.llm_runtime.worker import ModelWorker
from services.training.trainers import TrainingPorts


def llm_of(spec: CampaignSpec) -> LlmSpec:
    if not isinstance(spec.backend, LoraBackendSpec):
        raise TypeError(f"campaign {spec.campaign_id!r} is not a lora campaign")
    return spec.backend.llm


class LoraTrainer:
    def __init__(self, ports: TrainingPorts) -> None:
        settings = ports.settings
        self._ports = ports
        self._workspace = Workspace(
            artifact_root=str(Path(settings.artifact_root).expanduser().resolve()),
            model_cache=settings.model_cache,
        )
        # Ray starts on the first request, so vector-only deployments never start it.
        threads = settings.ray_cpus_per_worker
        self._workers = RayWorkers(
            ModelWorker,
            (self._workspace.artifact_root, self._workspace.model_cache, threads),
            address=settings.ray_address,
            local_cpus=settings.ray_local_cpus,
            workers=settings.ray_workers,
            cpus_per_worker=threads,
            gpus_per_worker=settings.ray_gpus_per_worker,
        )
        self._measuring: dict[str, asyncio.Task[None]] = {}

    async def train(self, spec: CampaignSpec, request: TrainingRequested) -> Measurement:
        llm = llm_of(spec)
        base = await self._model_ref(llm, request.base_model_id)
        # The base is measured beside the training (on another worker when there is one):
        # only the decision needs it, so a candidate is reported once both are done.
        measured = asyncio.ensure_future(self._measure_once(spec, request.base_model_id, base))
        examples, authors = await self._examples(request)
        model_id = candidate_model_id(request.round_id, request.group_index)
        job = TrainJob(
            model=base,
            adapter_key=model_key(model_id),
            examples=examples,
            contributors=authors,
            llm=llm.model_dump(mode="json"),
            target=spec.target,
            workspace=self._workspace,
            value_against=value_against(spec),
            preconditioned=spec.valuation == "in_run_adam",
        )
        result: TrainResult = await self._workers.call("train", job)
        await measured
        training = {
            "examples": float(result.examples),
            "train_steps": float(result.steps),
            "train_seconds": result.train_seconds,
            "train_examples_per_s": result.examples_per_s,
            "first_loss": result.first_loss,
            "last_loss": result.last_loss,
            "valuation_seconds": result.valuation_seconds,
        }
        return measurement(
            model_id,
            spec.campaign_id,
            result.evaluation,
            ref_of(result.adapter_key),
            training,
            result.member_positions,
        ).model_copy(
            update={
                "round_id": request.round_id,
                "device": result.device,
                "member_values": result.member_values,
                "member_value_errors": result.member_value_errors,
            }
        )

    async def warm(self) -> None:
        """The resident workers started and loaded before the first round needs them."""
        await self._workers.start()

    async def prepare(self, spec: CampaignSpec) -> None:
        """The base's measurement needs no contribution, and round 0 waits for it (on 2 cores
        it is a third of that round's work): it is taken while the crowd submits."""
        model_id = root_model_id(spec.campaign_id)
        base = await self._model_ref(llm_of(spec), model_id)
        await self._measure_once(spec, model_id, base)

    def close(self) -> None:
        self._workers.stop()

    async def _model_ref(self, llm: LlmSpec, model_id: str) -> ModelRef:
        """The base and every winner's adapter since, merged in that order."""
        chain = await self._ports.lineage.ancestry(model_id)
        adapters = tuple(key_of(entry.artifact_ref or "") for entry in chain[1:])
        return ModelRef(llm.base_model, adapters)

    async def _measure_once(self, spec: CampaignSpec, model_id: str, ref: ModelRef) -> None:
        """The base's distance gates the round (a candidate must beat it). A round's groups
        share one measurement; later rounds' bases were measured as candidates."""
        if model_id in await self._ports.measurements.get([model_id]):
            return
        if model_id not in self._measuring:
            self._measuring[model_id] = asyncio.create_task(self._measure(spec, model_id, ref))
        await asyncio.shield(self._measuring[model_id])

    async def _measure(self, spec: CampaignSpec, model_id: str, ref: ModelRef) -> None:
        llm = llm_of(spec).model_dump(mode="json")
        # Its two sets on two workers where there are two (alone, as the crowd submits, or
        # beside round 0's first candidate), first in line: every candidate waits for it.
        parts = [
            EvaluateJob(ref, llm, spec.target, self._workspace, heldout=False),
            EvaluateJob(ref, llm, spec.target, self._workspace, selection=False),
        ]
        try:
            selection, heldout = await asyncio.gather(
                *(self._workers.call("evaluate", part, priority=-1) for part in parts)
            )
            evaluation = combined(selection, heldout)
            base = measurement(model_id, spec.campaign_id, evaluation, base_artifact_ref(ref.base))
            await self._ports.measurements.put(base)
        finally:
            # Only once stored: a caller in between would find neither and measure again.
            self._measuring.pop(model_id, None)

    async def _examples(self, request: TrainingRequested) -> tuple[list[Example], list[str]]:
        """The group's pairs in id order, each weighted by its author's points squared."""
        group = await self._ports.group(request)
        weight_of = dict(zip(group.contributor_ids, group.weights.tolist(), strict=True))
        found = await self._ports.contributions.by_ids(
            [c for ids in group.contribution_ids for c in ids]
        )
        rows = sorted(found, key=lambda c: c.contribution_id)
        examples = [Example(c.prompt, c.response, weight_of[c.contributor_id]) for c in rows]
        return examples, [c.contributor_id for c in rows]


def value_against(spec: CampaignSpec) -> list[Example]:
    """The reference answers, as answers to the first selection prompt, when the campaign's
    valuation is measured while training; else nothing (training alone)."""
    if spec.valuation not in MEASURED_VALUATIONS:
        return []
    prompt = llm_of(spec).eval_prompts[0]
    return [Example(prompt, answer) for answer in spec.reference_answers]


def measurement(
    model_id: str,
    campaign_id: str,
    evaluation: Evaluation,
    artifact_ref: str,
    training: dict[str, float] | None = None,
    member_positions: dict[str, list[float]] | None = None,
) -> Measurement:
    """A measured model (what selection ranks and the lineage shows): a trained candidate's
    or, without training figures or members, a base's."""
    return Measurement(
        model_id=model_id,
        campaign_id=campaign_id,
        artifact_ref=artifact_ref,
        position=evaluation.position,
        distance=evaluation.distance,
        heldout_distance=evaluation.heldout_distance,
        member_positions=member_positions or {},
        metrics={
            **(training or {}),
            "generation_seconds": evaluation.generation_seconds,
            "generated_tokens": float(evaluation.new_tokens),
        },
        samples=evaluation.samples,
    )
