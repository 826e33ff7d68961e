"""Round events: selection opens a round, training answers, selection decides."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from crowdsft.contracts.envelope import CampaignEvent, RoundEvent, derive_event_id


class StartRound(CampaignEvent):
    """Command: open round `round_index` (ignored unless it is the campaign's next round)."""

    event_type: Literal["round.start"] = "round.start"
    round_index: int = Field(ge=0)

    @classmethod
    def asking(cls, campaign_id: str, round_index: int, producer: str) -> StartRound:
        """The same round asked for twice is the same command (selection opens it once)."""
        return cls(
            event_id=derive_event_id("round.start", campaign_id, round_index),
            producer=producer,
            campaign_id=campaign_id,
            round_index=round_index,
        )


class RoundOpened(RoundEvent):
    """Selection grouped the crowd for a round, starting from the current base model. Who is
    in which group is the stored round's (read by round id): no event grows with the crowd."""

    event_type: Literal["round.opened"] = "round.opened"
    round_index: int = Field(ge=0)
    base_model_id: str
    group_sizes: list[int] = Field(description="Members per group, by group index.")


class TrainingRequested(RoundEvent):
    """One group's candidate must be trained from the base on the group's contributions: its
    members, their weights (points squared) and contributions are the stored round's."""

    event_type: Literal["training.requested"] = "training.requested"
    group_index: int = Field(ge=0)
    base_model_id: str
    backend: str = Field(description="The campaign's backend kind, as its spec names it.")
    members: int = Field(ge=0, description="How many contributors the group has.")


class CandidateTrained(RoundEvent):
    """A training worker finished a group's candidate."""

    event_type: Literal["candidate.trained"] = "candidate.trained"
    group_index: int = Field(ge=0)
    model_id: str
    parent_model_id: str
    artifact_ref: str
    metrics: dict[str, float] = Field(default_factory=dict)


class CandidateEvaluated(RoundEvent):
    """The judge scored a candidate against the campaign's target (higher is better)."""

    event_type: Literal["candidate.evaluated"] = "candidate.evaluated"
    group_index: int = Field(ge=0)
    model_id: str
    score: float
    distance: float | None = None


class RoundDecided(RoundEvent):
    """The tournament's outcome: ranking best first, and whether the model moved."""

    event_type: Literal["round.decided"] = "round.decided"
    round_index: int = Field(ge=0)
    ranking: list[int] = Field(description="Group indices, best first, after judging error.")
    scores: list[float] = Field(description="Each group's candidate score, by group index.")
    base_model_id: str
    winner_model_id: str | None
    improved: bool
    judging_error: bool = False
    group_sizes: list[int] = Field(description="Members per group, by group index.")
