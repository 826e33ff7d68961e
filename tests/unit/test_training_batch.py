"""The training handler's batch: every request runs to the end before a failure is raised, so a
retried batch redoes only what failed (the rest is found done), and none waits on another."""

from __future__ import annotations

import asyncio

import pytest

from crowdsft.adapters.kafka import Announcement
from crowdsft.contracts import CandidateTrained, TrainingRequested, derive_event_id
from services.training.backends import TrainedCandidate, candidate_model_id
from services.training.handler import TrainingHandler


def request(group: int, backend: str = "slow") -> TrainingRequested:
    return TrainingRequested(
        event_id=derive_event_id("training.requested", "c:r00000", group),
        producer="test",
        campaign_id="c",
        round_id="c:r00000",
        group_index=group,
        base_model_id="c:base",
        backend=backend,
        contributor_ids=["a"],
        contributor_weights=[1.0],
        contribution_ids=["x"],
    )


class SlowBackend:
    """Sleeps like a Ray task; fails for the groups it is told to."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.running = 0
        self.most_at_once = 0

    async def train(self, req: TrainingRequested) -> TrainedCandidate:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        if req.group_index in self.failing:
            raise RuntimeError(f"group {req.group_index} failed")
        return TrainedCandidate(candidate_model_id(req), "artifact:x", {"loss": 1.0})


async def test_a_batch_trains_its_groups_at_once_and_reports_a_failure_last() -> None:
    published: list[Announcement] = []

    async def publish(batch: list[Announcement]) -> None:
        published.extend(batch)

    backend = SlowBackend(failing={2})
    handler = TrainingHandler({"slow": backend}, publish)
    with pytest.raises(RuntimeError, match="group 2 failed"):
        await handler.on_training_batch([request(g) for g in range(4)])
    assert backend.most_at_once == 4
    trained = [event for _, _, event in published]
    assert all(isinstance(e, CandidateTrained) for e in trained)
    assert sorted(e.group_index for e in trained) == [0, 1, 3]  # type: ignore[union-attr]


async def test_a_request_for_a_backend_not_installed_here_is_refused() -> None:
    async def publish(batch: list[Announcement]) -> None:
        raise AssertionError("nothing should be published")

    handler = TrainingHandler({}, publish)
    with pytest.raises(LookupError, match="not installed"):
        await handler.on_training_batch([request(0, backend="lora")])
