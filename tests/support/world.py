"""Every round handler wired to in-memory ports, and a bus pump that plays the broker's part.

`World.pump()` delivers each published event to the handlers that subscribe to its topic, in
publication order, until nothing new is published; `deliver` hands one event to its consumers,
so a test can replay, duplicate or reorder events and look at the rounds, the ledger and what
was announced after each step.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from crowdsft.contracts import (
    CandidateTrained,
    FeedbackAccepted,
    PointsAwarded,
    RoundDecided,
    StartRound,
    TrainingRequested,
    derive_event_id,
    topics,
)
from crowdsft.contracts.envelope import Event
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.crowd import Contribution, vector_text
from crowdsft.settings import Settings
from services.scoring.handler import ScoringHandler
from services.selection.handler import SelectionHandler
from services.shapley.handler import ShapleyHandler
from services.training.handler import TrainingHandler
from services.training.trainers import InstalledTrainers, TrainingPorts
from tests.support.fakes import (
    FakeBus,
    FakeCampaigns,
    FakeContributions,
    FakeLedger,
    FakeLineage,
    FakeMeasurements,
    FakeRounds,
    FakeShapley,
)

Handler = Callable[[Any], Coroutine[Any, Any, None]]


@dataclass
class World:
    bus: FakeBus = field(default_factory=FakeBus)
    campaigns: FakeCampaigns = field(default_factory=FakeCampaigns)
    rounds: FakeRounds = field(default_factory=FakeRounds)
    contributions: FakeContributions = field(default_factory=FakeContributions)
    measurements: FakeMeasurements = field(default_factory=FakeMeasurements)
    lineage: FakeLineage = field(default_factory=FakeLineage)
    shapley_values: FakeShapley = field(default_factory=FakeShapley)
    delivered: list[tuple[str, Event]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ledger = FakeLedger(self.rounds)
        ports = TrainingPorts(
            self.contributions, self.measurements, self.lineage, Settings(), self.rounds
        )
        self.selection = SelectionHandler(
            self.campaigns,
            self.rounds,
            self.contributions,
            self.ledger,
            self.measurements,
            self.lineage,
            self.bus,
        )
        self.training = TrainingHandler(
            self.campaigns, self.measurements, InstalledTrainers(ports), self.bus
        )
        self.scoring = ScoringHandler(self.campaigns, self.rounds, self.ledger, self.bus)
        self.shapley = ShapleyHandler(
            self.campaigns, self.rounds, self.shapley_values, self.bus, self.measurements
        )

    def consumers(self, topic: str) -> list[Handler]:
        async def accepted(event: FeedbackAccepted) -> None:
            # As selection's Acceptance does, without near-copy screening.
            await self.campaigns.note_accepted(event.campaign_id, 1)
            await self.selection.start_when_ready(event.campaign_id)

        async def trained(event: TrainingRequested) -> None:
            await self.training.on_training_requested(event)

        return {
            topics.FEEDBACK_ACCEPTED: [accepted],
            topics.ROUND_START: [self.selection.on_start_round],
            topics.TRAINING_REQUESTED: [trained],
            topics.CANDIDATE_TRAINED: [self.selection.on_candidate_trained],
            topics.ROUND_DECIDED: [self.scoring.on_round_decided],
            topics.POINTS_AWARDED: [
                self.selection.on_points_awarded,
                self.shapley.on_points_awarded,
            ],
        }.get(topic, [])

    async def deliver(self, topic: str, event: Event) -> None:
        self.delivered.append((topic, event))
        for handle in self.consumers(topic):
            await handle(event)

    async def pump(self, limit: int = 100_000) -> int:
        """Deliver everything published, and what that publishes, until quiet."""
        handled = 0
        while self.bus.published:
            topic, _, event = self.bus.published.pop(0)
            await self.deliver(topic, event)
            handled += 1
            assert handled < limit, "the events never settled"
        return handled

    def create(self, spec: CampaignSpec) -> None:
        self.campaigns.create(spec, self.measurements, self.lineage)

    def submit_points(self, campaign_id: str, ids: list[str], users: Any) -> None:
        """Contributions as intake stores them, and the announcements intake makes."""
        for contributor_id, row in zip(ids, users, strict=True):
            contribution_id = f"{campaign_id}:{contributor_id}:0"
            item = Contribution(contribution_id, contributor_id, "my point", vector_text(row))
            self.contributions.add(campaign_id, item)
            self.bus.published.append(
                (
                    topics.FEEDBACK_ACCEPTED,
                    campaign_id,
                    FeedbackAccepted(
                        event_id=derive_event_id("feedback.accepted", contribution_id),
                        producer="test",
                        campaign_id=campaign_id,
                        submission_event_id=contribution_id,
                        contribution_id=contribution_id,
                        contributor_id=contributor_id,
                    ),
                )
            )

    def start(self, campaign_id: str, round_index: int) -> StartRound:
        return StartRound(
            event_id=derive_event_id("round.start", campaign_id, round_index),
            producer="test",
            campaign_id=campaign_id,
            round_index=round_index,
        )

    def of_type(self, kind: type[Event], topic: str | None = None) -> list[Any]:
        return [e for t, e in self.delivered if isinstance(e, kind) and topic in (None, t)]


def decided_events(world: World) -> list[RoundDecided]:
    return world.of_type(RoundDecided)


def awards_events(world: World) -> list[PointsAwarded]:
    return world.of_type(PointsAwarded)


def trained_events(world: World) -> list[CandidateTrained]:
    return world.of_type(CandidateTrained)
