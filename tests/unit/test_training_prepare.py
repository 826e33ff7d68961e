"""A campaign's first round's fixed work starts when its crowd starts submitting: once per
campaign and process, in the background, and a failure only leaves it to the round."""

from __future__ import annotations

import asyncio

from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.ids import root_model_id
from crowdsft.domain.lineage import root_entry
from crowdsft.domain.measurement import Measurement
from crowdsft.llm_runtime.jobs import EvaluateJob, Evaluation
from crowdsft.settings import Settings
from services.training.handler import Preparations, TrainingHandler
from services.training.lora import LoraTrainer, llm_of
from services.training.trainers import Trainer, TrainingPorts
from tests.support.fakes import (
    FakeBus,
    FakeCampaigns,
    FakeContributions,
    FakeLineage,
    FakeMeasurements,
    FakeRounds,
)


class RecordingTrainer:
    def __init__(self) -> None:
        self.prepared: list[str] = []

    async def train(self, spec: CampaignSpec, request: object) -> Measurement:
        raise AssertionError("no request in these tests")

    async def warm(self) -> None:
        return None

    async def prepare(self, spec: CampaignSpec) -> None:
        self.prepared.append(spec.campaign_id)

    def close(self) -> None:
        return None


def lora_spec(campaign_id: str = "llm") -> CampaignSpec:
    backend = {"kind": "lora", "llm": {"phi": "minilm"}}
    return CampaignSpec(campaign_id=campaign_id, target=[0.0] * 384, backend=backend)  # type: ignore[arg-type]


async def test_a_campaign_with_rounds_is_prepared_by_its_backends_trainer() -> None:
    trainer = RecordingTrainer()
    campaigns = FakeCampaigns()
    campaigns.specs["llm"] = lora_spec()
    trainers: dict[str, Trainer] = {"lora": trainer}
    handler = TrainingHandler(campaigns, FakeMeasurements(), trainers, FakeBus())
    await handler.prepare("llm")
    await handler.prepare("feedback-only")  # no spec: nothing will ever train for it
    assert trainer.prepared == ["llm"]
    campaigns.specs["other"] = lora_spec("other")
    await TrainingHandler(campaigns, FakeMeasurements(), {}, FakeBus()).prepare("other")


async def test_each_campaign_is_prepared_once_and_again_only_after_a_failure() -> None:
    calls: list[str] = []
    failing = {"b"}

    async def prepare(campaign_id: str) -> None:
        calls.append(campaign_id)
        await asyncio.sleep(0.01)
        if campaign_id in failing:
            raise ConnectionError("the store is away")

    preparations = Preparations(prepare)
    preparations.start(["a", "b", "a"])
    preparations.start(["b"])  # b is still running: not started twice
    await preparations.wait()
    assert sorted(calls) == ["a", "b"]
    failing.clear()
    preparations.start(["a", "b"])  # a is done; b failed, so a later notice tries again
    await preparations.wait()
    assert sorted(calls) == ["a", "b", "b"]


class CountingWorkers:
    """Stands in for the Ray workers: evaluations take a while and are counted."""

    def __init__(self) -> None:
        self.evaluated: list[EvaluateJob] = []

    async def call(self, method: str, job: EvaluateJob, priority: int = 0) -> Evaluation:
        assert method == "evaluate"
        self.evaluated.append(job)
        await asyncio.sleep(0.05)
        nan = float("nan")
        if not job.selection:
            return Evaluation(nan, [], 0.6, new_tokens=10, generation_seconds=0.05)
        return Evaluation(distance=0.5, position=[0.0] * 384, heldout_distance=nan,
                          new_tokens=10, generation_seconds=0.05)  # fmt: skip


def lora_trainer(tmp: str) -> tuple[LoraTrainer, CountingWorkers, FakeMeasurements]:
    measurements, lineage = FakeMeasurements(), FakeLineage()
    lineage.entries[root_model_id("llm")] = root_entry("llm", "lora-base:smollm2")
    ports = TrainingPorts(FakeContributions(), measurements, lineage,
                          Settings(artifact_root=tmp), FakeRounds())  # type: ignore[arg-type]  # fmt: skip
    trainer = LoraTrainer(ports)
    workers = CountingWorkers()
    trainer._workers = workers  # type: ignore[assignment]
    return trainer, workers, measurements


async def test_the_base_measured_ahead_is_the_one_the_first_round_uses(tmp_path: object) -> None:
    trainer, workers, measurements = lora_trainer(str(tmp_path))
    spec = lora_spec()
    root = root_model_id("llm")
    ref = await trainer._model_ref(llm_of(spec), root)
    # The crowd's first submissions and round 0's first group arrive while it is measured.
    await asyncio.gather(trainer.prepare(spec), trainer._measure_once(spec, root, ref))
    # Its selection and held-out sets, once each, as two jobs that two workers can share.
    assert [(job.selection, job.heldout) for job in workers.evaluated] == [
        (True, False),
        (False, True),
    ]
    assert all(job.model.adapters == () for job in workers.evaluated)
    stored = measurements.stored[root]
    assert (stored.distance, stored.heldout_distance) == (0.5, 0.6)
    assert stored.metrics["generated_tokens"] == 20
    await trainer.prepare(spec)  # found stored: never measured twice
    await trainer._measure_once(spec, root, ref)
    assert len(workers.evaluated) == 2
