"""The `lora` backend: a group's contributions fine-tune a LoRA adapter on a Ray worker.

The service only gathers the request's data and lineage, submits the work and records what
comes back; training and evaluation run in Ray tasks (`crowdsft.llm.jobs`), on a GPU when the
cluster has one. A replayed request finds its candidate measured and trains nothing.
"""

from __future__ import annotations

import asyncio

from crowdsft.adapters.artifact_store import key_of, model_key, ref_of
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contribution_store import ContributionStore
from crowdsft.adapters.mongo import Document
from crowdsft.adapters.ray_runner import RayRunner
from crowdsft.adapters.round_store import RoundStore
from crowdsft.campaigns import CampaignSpec
from crowdsft.contracts import TrainingRequested
from crowdsft.llm.config import LlmSpec
from crowdsft.llm.jobs import (
    EvaluateJob,
    Evaluation,
    ModelRef,
    TrainJob,
    Workspace,
    evaluate_model,
    train_candidate,
)
from crowdsft.llm.sft import Example
from services.training.backends import TrainedCandidate, candidate_model_id


class LoraBackend:
    def __init__(
        self,
        campaigns: CampaignStore,
        contributions: ContributionStore,
        rounds: RoundStore,
        runner: RayRunner,
        workspace: Workspace,
    ) -> None:
        self._campaigns = campaigns
        self._contributions = contributions
        self._rounds = rounds
        self._runner = runner
        self._workspace = workspace
        self._measuring: dict[str, asyncio.Task[None]] = {}

    async def train(self, request: TrainingRequested) -> TrainedCandidate:
        spec = await self._campaigns.spec(request.campaign_id)
        if spec is None or spec.llm is None:
            raise LookupError(f"campaign {request.campaign_id!r} has no llm spec")
        model_id = candidate_model_id(request)
        done = await self._rounds.measured([model_id])
        if model_id in done:
            return _candidate(model_id, done[model_id])
        base = await self._model_ref(spec.llm, request.base_model_id)
        await self._measure_once(spec, request.base_model_id, base)
        examples, authors = await self._examples(request)
        job = TrainJob(
            model=base,
            adapter_key=model_key(model_id),
            examples=examples,
            contributors=authors,
            llm=spec.llm.model_dump(mode="json"),
            target=spec.target,
            workspace=self._workspace,
        )
        result = await self._runner.run(train_candidate, job)
        training = {
            "examples": float(result.examples),
            "train_steps": float(result.steps),
            "train_seconds": result.train_seconds,
            "train_examples_per_s": result.examples_per_s,
            "first_loss": result.first_loss,
            "last_loss": result.last_loss,
        }
        doc = measurement(
            request.campaign_id,
            result.evaluation,
            ref_of(result.adapter_key),
            training,
            result.member_positions,
        ) | {"round_id": request.round_id, "device": result.device}
        await self._rounds.put_measured(model_id, doc)
        return _candidate(model_id, doc)

    async def _model_ref(self, llm: LlmSpec, model_id: str) -> ModelRef:
        """The base and every winner's adapter since, merged in that order."""
        chain = await self._rounds.ancestry(model_id)
        return ModelRef(llm.base_model, tuple(key_of(doc["artifact_ref"]) for doc in chain[1:]))

    async def _measure_once(self, spec: CampaignSpec, model_id: str, ref: ModelRef) -> None:
        """The base's distance gates the round (a candidate must beat it). A round's groups
        share one measurement; later rounds' bases were measured as candidates."""
        if model_id in await self._rounds.measured([model_id]):
            return
        if model_id not in self._measuring:
            self._measuring[model_id] = asyncio.create_task(self._measure(spec, model_id, ref))
        await asyncio.shield(self._measuring[model_id])

    async def _measure(self, spec: CampaignSpec, model_id: str, ref: ModelRef) -> None:
        assert spec.llm is not None
        job = EvaluateJob(ref, spec.llm.model_dump(mode="json"), spec.target, self._workspace)
        try:
            evaluation = await self._runner.run(evaluate_model, job)
        finally:
            self._measuring.pop(model_id, None)
        doc = measurement(spec.campaign_id, evaluation, f"base:{ref.base}")
        await self._rounds.put_measured(model_id, doc)

    async def _examples(self, request: TrainingRequested) -> tuple[list[Example], list[str]]:
        """The group's pairs in id order, each weighted by its author's points squared."""
        weight_of = dict(zip(request.contributor_ids, request.contributor_weights, strict=True))
        docs = sorted(await self._contributions.by_ids(request.contribution_ids), key=_id)
        examples = [
            Example(d["prompt"], d["response"], weight_of[d["contributor_id"]]) for d in docs
        ]
        return examples, [d["contributor_id"] for d in docs]


def measurement(
    campaign_id: str,
    evaluation: Evaluation,
    artifact_ref: str,
    training: dict[str, float] | None = None,
    member_positions: dict[str, list[float]] | None = None,
) -> Document:
    """A measured model's artifact document (what selection ranks and the lineage shows): a
    trained candidate's or, without training figures or members, a base's."""
    return {
        "campaign_id": campaign_id,
        "vector": evaluation.position,
        "distance": evaluation.distance,
        "heldout_distance": evaluation.heldout_distance,
        "member_positions": member_positions or {},
        "metrics": {
            **(training or {}),
            "generation_seconds": evaluation.generation_seconds,
            "generated_tokens": float(evaluation.new_tokens),
        },
        "artifact_ref": artifact_ref,
        "samples": evaluation.samples,
    }


def _id(doc: Document) -> str:
    return str(doc["_id"])


def _candidate(model_id: str, doc: Document) -> TrainedCandidate:
    return TrainedCandidate(model_id, doc["artifact_ref"], dict(doc["metrics"]))
