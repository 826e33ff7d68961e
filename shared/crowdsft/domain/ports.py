"""The ports the service handlers take: what they need of the stores and of the bus.

MongoDB and Kafka adapters implement them in production; the unit tests' in-memory fakes
implement them too, so every handler can be replayed event by event in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from crowdsft.contracts.envelope import Event
from crowdsft.contracts.feedback import FeedbackRejected
from crowdsft.domain.campaign import CampaignSpec, CampaignState, CrowdVersion
from crowdsft.domain.crowd import Contribution
from crowdsft.domain.lineage import LineageEntry
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.near_copies import Fingerprint, FlaggedCopy, NearCopy
from crowdsft.domain.round import Round, RoundStep
from crowdsft.domain.shapley import ShapleyRecord
from crowdsft.feedback import Parsed, StoreOutcome

# (partition key, event): the topic follows from the event's type (`contracts.topics`).
Announcement = tuple[str | None, Event]


class Publish(Protocol):
    async def __call__(self, announcements: Sequence[Announcement]) -> None:
        """Every event is on the broker when this returns."""
        ...


class Campaigns(Protocol):
    async def spec(self, campaign_id: str) -> CampaignSpec | None: ...

    async def state(self, campaign_id: str) -> CampaignState | None: ...

    async def known(self, campaign_ids: set[str]) -> set[str]: ...

    async def mark_open(self, campaign_id: str, round_index: int, rng_state: str) -> None: ...

    async def note_accepted(self, campaign_id: str, accepted: int) -> int:
        """Contributions were accepted and screened: the crowd's version moves; the new one."""
        ...

    async def crowd(self, campaign_id: str) -> CrowdVersion: ...

    async def advance(self, campaign_id: str, expected_round: int, state: CampaignState) -> bool:
        """Compare-and-set on the round counter: a replayed step cannot move state twice."""
        ...


class Rounds(Protocol):
    async def get(self, campaign_id: str, round_index: int) -> Round | None: ...

    async def by_id(self, round_id: str) -> Round | None: ...

    async def waiting_since(self, opened_before: datetime) -> list[Round]:
        """Rounds still open that opened before the given time."""
        ...

    async def open(self, opened: Round) -> Round:
        """Insert a new round; if it exists already (a replay), the stored one wins."""
        ...

    async def add_candidate(self, round_id: str, group_index: int, model_id: str) -> Round | None:
        """Record a trained candidate on an open round; the round as it now stands."""
        ...

    async def decide(self, decided: Round) -> Round:
        """open -> decided, once; a second caller gets the stored decision back."""
        ...

    async def mark_announced(self, round_id: str, step: RoundStep) -> None: ...


class Payments(Protocol):
    async def pay(self, scored: Round, rule: str) -> bool:
        """decided -> scored with its awards and the campaign's standing after it, all or
        nothing (the ledger's time is the round's `scored_at`); False when the round had been
        paid before."""
        ...


class Balances(Protocol):
    async def points(self, campaign_id: str, contributor_ids: list[str]) -> NDArray[np.float64]:
        """Points going into a round, in the order given (a newcomer holds the start)."""
        ...


class Contributions(Protocol):
    async def of_campaign(self, campaign_id: str) -> list[Contribution]: ...

    async def by_ids(self, contribution_ids: list[str]) -> list[Contribution]: ...

    async def count(self, campaign_id: str) -> int: ...


class FeedbackStore(Protocol):
    async def store(self, items: list[Parsed], stored_at: datetime) -> StoreOutcome:
        """Idempotent: a replayed batch finds its submissions stored and stores nothing."""
        ...

    async def record_rejections(self, rejections: list[tuple[FeedbackRejected, str]]) -> None:
        """(rejection, where the refused thing came from); keyed by each rejection's derived
        id, so a replay records nothing new."""
        ...


class NearCopies(Protocol):
    async def known(self, campaign_id: str) -> list[Fingerprint]: ...

    async def count(self, campaign_id: str) -> int: ...

    async def save(self, fingerprints: list[Fingerprint]) -> None:
        """Idempotent: the first copy of each fingerprint stays."""
        ...

    async def flag(self, verdicts: list[NearCopy]) -> list[FlaggedCopy]:
        """Marks each copy (a copy flagged before keeps its first original) and says who
        sent it; a replay flags nothing new and reports the same."""
        ...


class Measurements(Protocol):
    async def get(self, model_ids: list[str]) -> dict[str, Measurement]: ...

    async def put(self, measurement: Measurement) -> Measurement:
        """The first write wins (a replayed training keeps the first result)."""
        ...


class Lineage(Protocol):
    async def record(self, entries: Sequence[LineageEntry]) -> None: ...

    async def ancestry(self, model_id: str) -> list[LineageEntry]:
        """From the campaign's root to the model, oldest first."""
        ...


class ShapleyValues(Protocol):
    async def get(self, campaign_id: str) -> ShapleyRecord | None: ...

    async def save(self, record: ShapleyRecord) -> None: ...
