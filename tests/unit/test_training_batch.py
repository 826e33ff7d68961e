"""A batch of training requests: every request runs to the end before a failure is raised, so a
retried batch redoes only what failed (the rest is found done), and none waits on another;
a request that can never succeed is set aside instead of failing the batch for ever."""

from __future__ import annotations

import asyncio

import pytest

from crowdsft.adapters.consuming import EventReader
from crowdsft.contracts import (
    CandidateTrained,
    EventDeadLettered,
    TrainingRequested,
    derive_event_id,
)
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.ids import candidate_model_id
from crowdsft.domain.measurement import Measurement
from services.training.handler import TrainingHandler
from services.training.trainers import Trainer
from tests.support.fakes import FakeBus, FakeCampaigns, FakeMeasurements, fake_message


def request(group: int, backend: str = "vector") -> TrainingRequested:
    return TrainingRequested(
        event_id=derive_event_id("training.requested", "c:r00000", group),
        producer="test",
        campaign_id="c",
        round_id="c:r00000",
        group_index=group,
        base_model_id="c:base",
        backend=backend,
        members=1,
    )


def batch(*requests: TrainingRequested) -> object:
    return fake_message(
        "crowdsft.training.requested", [r.model_dump_json().encode() for r in requests]
    )


class SlowBackend:
    """Sleeps like a Ray task; fails (as a crashed worker would) for the groups it is told to."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.running = 0
        self.most_at_once = 0

    async def train(self, spec: CampaignSpec, req: TrainingRequested) -> Measurement:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        if req.group_index in self.failing:
            raise ConnectionError(f"group {req.group_index} failed")
        model_id = candidate_model_id(req.round_id, req.group_index)
        return Measurement(
            model_id=model_id, campaign_id="c", artifact_ref="artifact:x", position=[0.0]
        )

    def close(self) -> None:
        return None


def handler(spec: CampaignSpec, trainers: dict[str, Trainer], bus: FakeBus) -> TrainingHandler:
    campaigns = FakeCampaigns()
    campaigns.specs[spec.campaign_id] = spec
    return TrainingHandler(campaigns, FakeMeasurements(), trainers, bus)


def reader(bus: FakeBus) -> EventReader:
    return EventReader(bus, "training", pause=lambda attempt: 0.0)


async def test_a_batch_trains_its_groups_at_once_and_reports_a_failure_last() -> None:
    bus = FakeBus()
    backend = SlowBackend(failing={2})
    training = handler(CampaignSpec(campaign_id="c", target=[1.0]), {"vector": backend}, bus)
    with pytest.raises(ConnectionError, match="group 2 failed"):
        await reader(bus).consume_each(
            batch(*(request(g) for g in range(4))),
            TrainingRequested,
            training.on_training_requested,
        )
    assert backend.most_at_once == 4
    trained = [event for _, _, event in bus.published]
    assert all(isinstance(e, CandidateTrained) for e in trained)
    assert sorted(e.group_index for e in trained) == [0, 1, 3]  # type: ignore[attr-defined]


async def test_a_retried_batch_trains_only_what_failed() -> None:
    bus = FakeBus()
    backend = SlowBackend(failing={2})
    training = handler(CampaignSpec(campaign_id="c", target=[1.0]), {"vector": backend}, bus)
    events = reader(bus)
    message = batch(*(request(g) for g in range(4)))
    with pytest.raises(ConnectionError):
        await events.consume_each(message, TrainingRequested, training.on_training_requested)
    backend.failing = set()
    backend.most_at_once = 0
    await events.consume_each(message, TrainingRequested, training.on_training_requested)
    assert backend.most_at_once == 1  # groups 0, 1 and 3 were found measured
    assert sorted(e.group_index for e in bus.on("crowdsft.candidate.trained")) == [
        0,
        0,
        1,
        1,
        2,
        3,
        3,
    ]


async def test_a_request_for_a_backend_not_installed_here_is_dead_lettered() -> None:
    bus = FakeBus()
    lora = CampaignSpec(campaign_id="c", target=[0.0] * 384,
                        backend={"kind": "lora", "llm": {"phi": "minilm"}})  # fmt: skip
    campaigns = FakeCampaigns()
    campaigns.specs["c"] = lora
    training = TrainingHandler(campaigns, FakeMeasurements(), {}, bus)
    await reader(bus).consume_each(
        batch(request(0, backend="lora")), TrainingRequested, training.on_training_requested
    )
    [letter] = bus.published
    assert isinstance(letter[2], EventDeadLettered)
    assert letter[2].reason == "refused: LookupError"
    assert "not installed" in letter[2].detail


async def test_a_request_naming_another_backend_than_its_campaign_is_refused() -> None:
    bus = FakeBus()
    training = handler(CampaignSpec(campaign_id="c", target=[1.0]), {}, bus)
    with pytest.raises(ValueError, match="the campaign's is 'vector'"):
        await training.on_training_requested(request(0, backend="lora"))
    assert bus.published == []
