"""One round as a typed aggregate: opened by selection, decided by selection, paid by scoring.

Each step adds its own part (opening, decision, payment) and returns a new frozen `Round`; a
step that does not follow from the round's status (scoring an open round, deciding twice) is
refused with `RoundStepError`. The store persists each step by compare-and-set on the status,
so two processes that race on a step end with one outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from crowdsft.domain.ids import candidate_model_id

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class RoundStatus(StrEnum):
    OPEN = "open"
    DECIDED = "decided"
    SCORED = "scored"


class RoundStep(StrEnum):
    """Announcements already out: a repeated trigger stops at the first service that sees it."""

    OPENING = "opening"
    DECISION = "decision"
    AWARDS = "awards"


class RoundStepError(ValueError):
    """A step the round's status does not allow; never retried into success."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Opening(_Part):
    """The crowd as selection found it and how it was grouped."""

    base_model_id: str
    contributor_ids: list[str]
    contribution_ids: list[list[str]]
    positions: list[list[float]] | None = Field(
        description="Each contributor's point, when the backend knows it before training."
    )
    points: list[float] = Field(description="Each contributor's points going into the round.")
    labels: list[int]
    n_groups: int = Field(ge=1)
    rng_state: str = Field(description="Selection's random stream after grouping.")


class CandidateResult(_Part):
    """One group's candidate as the judge saw it."""

    group_index: int = Field(ge=0)
    model_id: str
    position: list[float]
    score: float = Field(description="Higher is better.")
    distance: float = Field(description="L2 distance to the target.")
    heldout_distance: float | None = None
    artifact_ref: str
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Training's figures, recorded in the lineage."
    )


class Decision(_Part):
    """The tournament's outcome and where every model and contributor stood."""

    base_position: list[float]
    base_distance: float | None = Field(None, description="Measured backends: the gate.")
    candidates: list[CandidateResult] = Field(description="By group index.")
    positions: list[list[float]] | None = Field(
        None, description="Contributors' points when measured in training; else the opening's."
    )
    ranking: list[int] = Field(description="Group indices, best first, after judging error.")
    accepted: bool
    judged_wrong: bool
    winner_model_id: str | None
    rng_after: str


class Payment(_Part):
    awards: list[float] = Field(description="Each contributor's award, in the opening's order.")


@dataclass(frozen=True)
class Group:
    """One group of a round as training needs it, in the opening's member order."""

    contributor_ids: list[str]
    weights: FloatArray  # points squared: a member's pull on the group's data
    contribution_ids: list[list[str]]  # each member's
    positions: FloatArray | None  # each member's point, when known at opening


class Round(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    round_id: str
    campaign_id: str
    round_index: int = Field(ge=0)
    status: RoundStatus = RoundStatus.OPEN
    opening: Opening
    candidates: dict[int, str] = Field(
        default_factory=dict, description="Trained so far: group index -> model id."
    )
    decision: Decision | None = None
    payment: Payment | None = None
    announced: frozenset[RoundStep] = frozenset()
    opened_at: datetime | None = None
    decided_at: datetime | None = None
    scored_at: datetime | None = None

    # Steps.

    def with_candidate(self, group_index: int, model_id: str) -> Round:
        """A group's trained candidate; the same one twice is a replay and changes nothing."""
        self._require(RoundStatus.OPEN, "add a candidate to")
        self.check_candidate(group_index, model_id)
        return self.model_copy(update={"candidates": {**self.candidates, group_index: model_id}})

    def check_candidate(self, group_index: int, model_id: str) -> None:
        """Refuses a group this round does not have, or a model id other than the one
        selection asked training for (whatever the round's status: replays come late)."""
        if not 0 <= group_index < self.opening.n_groups:
            raise RoundStepError(
                f"{self.round_id} has groups 0-{self.opening.n_groups - 1}, not {group_index}"
            )
        expected = candidate_model_id(self.round_id, group_index)
        if model_id != expected:
            raise RoundStepError(f"group {group_index}'s candidate is {expected}, not {model_id}")

    def decide(self, decision: Decision, at: datetime) -> Round:
        self._require(RoundStatus.OPEN, "decide")
        if not self.complete:
            raise RoundStepError(f"{self.round_id} still waits for groups {self.missing_groups()}")
        if [c.group_index for c in decision.candidates] != list(range(self.opening.n_groups)):
            raise RoundStepError("a decision judges every group's candidate, in group order")
        update = {"status": RoundStatus.DECIDED, "decision": decision, "decided_at": at}
        return self.model_copy(update=update)

    def pay(self, awards: list[float], at: datetime) -> Round:
        self._require(RoundStatus.DECIDED, "pay")
        if len(awards) != len(self.opening.contributor_ids):
            raise RoundStepError(f"{len(awards)} awards for {len(self.contributor_ids)} members")
        payment = Payment(awards=[float(a) for a in awards])
        return self.model_copy(
            update={"status": RoundStatus.SCORED, "payment": payment, "scored_at": at}
        )

    def announce(self, step: RoundStep) -> Round:
        needs = {RoundStep.DECISION: self.decision, RoundStep.AWARDS: self.payment}
        if step in needs and needs[step] is None:
            raise RoundStepError(f"{self.round_id} has no {step.value} to announce")
        return self.model_copy(update={"announced": self.announced | {step}})

    def _require(self, status: RoundStatus, action: str) -> None:
        if self.status is not status:
            raise RoundStepError(f"cannot {action} round {self.round_id}: it is {self.status}")

    # What the steps after read.

    @property
    def complete(self) -> bool:
        """Every group's candidate is in."""
        return len(self.candidates) == self.opening.n_groups

    def missing_groups(self) -> list[int]:
        return sorted(set(range(self.opening.n_groups)) - set(self.candidates))

    @property
    def contributor_ids(self) -> list[str]:
        return self.opening.contributor_ids

    @property
    def base_model_id(self) -> str:
        return self.opening.base_model_id

    def announced_step(self, step: RoundStep) -> bool:
        return step in self.announced

    def members(self, group_index: int) -> IntArray:
        """Rows of the opening's crowd in one group."""
        return np.flatnonzero(np.asarray(self.opening.labels) == group_index)

    def group_sizes(self) -> list[int]:
        """Members per group, by group index."""
        labels = np.asarray(self.opening.labels, dtype=np.int64)
        return [int(n) for n in np.bincount(labels, minlength=self.opening.n_groups)]

    def group(self, group_index: int) -> Group:
        if not 0 <= group_index < self.opening.n_groups:
            raise RoundStepError(f"{self.round_id} has no group {group_index}")
        rows = self.members(group_index)
        opening = self.opening
        points = np.asarray(opening.points, dtype=np.float64)[rows]
        positions = opening.positions
        return Group(
            contributor_ids=[opening.contributor_ids[r] for r in rows],
            weights=points**2,
            contribution_ids=[opening.contribution_ids[r] for r in rows],
            positions=np.asarray(positions, dtype=np.float64)[rows] if positions else None,
        )

    def group_contribution_ids(self, group_index: int) -> list[str]:
        ids = self.opening.contribution_ids
        return [c for row in self.members(group_index) for c in ids[row]]

    def candidate_ids(self) -> list[str]:
        """The candidates' model ids in group order (complete rounds only)."""
        return [self.candidates[g] for g in range(self.opening.n_groups)]

    @property
    def positions(self) -> list[list[float]]:
        """Where each contributor stood in the round: measured in training, or at opening."""
        if self.decision is not None and self.decision.positions is not None:
            return self.decision.positions
        if self.opening.positions is None:
            raise RoundStepError(f"{self.round_id}'s contributors are placed at its decision")
        return self.opening.positions

    def points_after(self) -> FloatArray:
        """Each member's points right after this round was paid."""
        if self.payment is None:
            raise RoundStepError(f"{self.round_id} is not paid")
        points = np.asarray(self.opening.points, dtype=np.float64)
        return np.asarray(points + np.asarray(self.payment.awards, dtype=np.float64))

    def model_after(self) -> str | None:
        """The model the next round starts from; None until decided."""
        if self.decision is None:
            return None
        return self.decision.winner_model_id or self.opening.base_model_id
