"""In-memory implementations of the handlers' ports, for fast unit tests of the services.

Each keeps the guarantee its MongoDB adapter keeps (compare-and-set on a round's status and a
campaign's round counter, first write wins for measurements, one all-or-nothing payment per
round), so a handler replayed on these behaves as it does on the real store. They live in the
tests only: the product never runs on them. The integration suite is the one that counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from crowdsft.adapters.contribution_store import rejection_document
from crowdsft.contracts import TOPIC_EVENTS, FeedbackRejected
from crowdsft.contracts.envelope import Event
from crowdsft.contracts.topics import topic_of
from crowdsft.domain import ledger, near_copies
from crowdsft.domain.campaign import CampaignSpec, CampaignState, CrowdVersion, initial_state
from crowdsft.domain.crowd import Contribution
from crowdsft.domain.ids import round_id
from crowdsft.domain.ledger import LedgerEntry
from crowdsft.domain.lineage import LineageEntry
from crowdsft.domain.measurement import Measurement
from crowdsft.domain.ports import Announcement
from crowdsft.domain.round import Round, RoundStatus, RoundStep
from crowdsft.domain.shapley import ShapleyRecord
from crowdsft.feedback import Parsed, StoreOutcome


class FakeBus:
    """Records what was published, by topic, in order."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str | None, Event]] = []

    async def __call__(self, announcements: Sequence[Announcement]) -> None:
        for key, event in announcements:
            topic = topic_of(event)
            assert isinstance(event, TOPIC_EVENTS[topic])
            self.published.append((topic, key, event))

    def on(self, topic: str) -> list[Any]:
        return [event for t, _, event in self.published if t == topic]

    def take(self) -> list[tuple[str, str | None, Event]]:
        """What was published since the last take."""
        taken, self.published = self.published, []
        return taken


class FakeCampaigns:
    def __init__(self) -> None:
        self.specs: dict[str, CampaignSpec] = {}
        self.states: dict[str, CampaignState] = {}
        self.feedback_only: set[str] = set()
        self.crowds: dict[str, CrowdVersion] = {}

    def create(self, spec: CampaignSpec, measurements: FakeMeasurements,
               lineage: FakeLineage) -> None:  # fmt: skip
        """What `CampaignStore.create_with_spec` writes."""
        from crowdsft.domain.backends import backend_of
        from crowdsft.domain.ids import root_model_id
        from crowdsft.domain.lineage import root_entry

        model, rng_state = initial_state(spec)
        self.specs[spec.campaign_id] = spec
        self.states[spec.campaign_id] = CampaignState(
            next_round=0, model_id=root_model_id(spec.campaign_id), rng_state=rng_state
        )
        lineage.entries[root_model_id(spec.campaign_id)] = root_entry(
            spec.campaign_id, spec.backend.root_artifact_ref(spec.campaign_id)
        )
        measured = backend_of(spec).placement.root(spec, model)
        if measured is not None:
            measurements.stored.setdefault(measured.model_id, measured)

    async def spec(self, campaign_id: str) -> CampaignSpec | None:
        return self.specs.get(campaign_id)

    async def state(self, campaign_id: str) -> CampaignState | None:
        return self.states.get(campaign_id)

    async def known(self, campaign_ids: set[str]) -> set[str]:
        return campaign_ids & (set(self.specs) | self.feedback_only)

    async def note_accepted(self, campaign_id: str, accepted: int) -> int:
        version = self.crowds.get(campaign_id, CrowdVersion(0, 0))
        self.crowds[campaign_id] = CrowdVersion(version.version + 1, version.accepted + accepted)
        return version.version + 1

    async def crowd(self, campaign_id: str) -> CrowdVersion:
        return self.crowds.get(campaign_id, CrowdVersion(0, 0))

    async def mark_open(self, campaign_id: str, round_index: int, rng_state: str) -> None:
        state = self.states[campaign_id]
        if state.next_round == round_index:
            update = {"open_round": round_index, "rng_state": rng_state}
            self.states[campaign_id] = state.model_copy(update=update)

    async def advance(self, campaign_id: str, expected_round: int, state: CampaignState) -> bool:
        if self.states[campaign_id].next_round != expected_round:
            return False
        self.states[campaign_id] = state
        return True


class FakeRounds:
    def __init__(self) -> None:
        self.rounds: dict[str, Round] = {}

    async def get(self, campaign_id: str, round_index: int) -> Round | None:
        return self.rounds.get(round_id(campaign_id, round_index))

    async def by_id(self, rid: str) -> Round | None:
        return self.rounds.get(rid)

    async def waiting_since(self, opened_before: datetime) -> list[Round]:
        return [
            r
            for r in self.rounds.values()
            if r.status is RoundStatus.OPEN and r.opened_at is not None
            and r.opened_at < opened_before
        ]  # fmt: skip

    async def open(self, opened: Round) -> Round:
        return self.rounds.setdefault(opened.round_id, opened)

    async def add_candidate(self, rid: str, group_index: int, model_id: str) -> Round | None:
        current = self.rounds.get(rid)
        if current is not None and current.status is RoundStatus.OPEN:
            self.rounds[rid] = current = current.with_candidate(group_index, model_id)
        return current

    async def decide(self, decided: Round) -> Round:
        if self.rounds[decided.round_id].status is RoundStatus.OPEN:
            self.rounds[decided.round_id] = decided
        return self.rounds[decided.round_id]

    async def mark_announced(self, rid: str, step: RoundStep) -> None:
        self.rounds[rid] = self.rounds[rid].model_copy(
            update={"announced": self.rounds[rid].announced | {step}}
        )


class FakeLedger:
    """Payments and standings together, as the ledger's transaction keeps them; `entries` is
    every contributor's ledger as the read side derives it from the paid rounds."""

    def __init__(self, rounds: FakeRounds) -> None:
        self._rounds = rounds
        self.entries: list[LedgerEntry] = []
        self.standings: dict[str, ledger.Standing] = {}

    @property
    def balances(self) -> dict[tuple[str, str], float]:
        return {
            (campaign_id, c): p
            for campaign_id, standing in self.standings.items()
            for c, p in zip(standing.contributor_ids, standing.points.tolist(), strict=True)
        }

    async def points(self, campaign_id: str, contributor_ids: list[str]) -> NDArray[np.float64]:
        return self.standings.get(campaign_id, ledger.Standing.empty()).going_in(contributor_ids)

    async def pay(self, scored: Round, rule: str) -> bool:
        if self._rounds.rounds[scored.round_id].status is not RoundStatus.DECIDED:
            return False
        assert scored.payment is not None and scored.decision is not None
        assert scored.scored_at is not None
        before = self.standings.get(scored.campaign_id, ledger.Standing.empty())
        settled = ledger.settle(before, scored)
        keys = {(e.campaign_id, e.round_id, e.contributor_id, e.rule) for e in self.entries}
        for row, contributor_id in enumerate(scored.contributor_ids):
            paid = ledger.PaidRound(
                campaign_id=scored.campaign_id, round_id=scored.round_id,
                round_index=scored.round_index, rule=rule, accepted=scored.decision.accepted,
                award=scored.payment.awards[row], newcomer=bool(settled.newcomers[row]),
                recorded_at=scored.scored_at,
            )  # fmt: skip
            for entry in ledger.entries(contributor_id, paid):
                key = (entry.campaign_id, entry.round_id, entry.contributor_id, entry.rule)
                assert key not in keys, f"ledger key {key} written twice"
                keys.add(key)
                self.entries.append(entry)
        self.standings[scored.campaign_id] = settled.after
        self._rounds.rounds[scored.round_id] = scored
        return True


class FakeNearCopies:
    """Fingerprints and near-copy flags on dicts, with the adapter's rules: the first copy
    of a fingerprint stays, and a copy flagged once keeps its first original."""

    def __init__(self, contributions: FakeContributions) -> None:
        self.contributions = contributions
        self.fingerprints: dict[str, near_copies.Fingerprint] = {}
        self.flags: dict[str, near_copies.NearCopy] = {}

    async def known(self, campaign_id: str) -> list[near_copies.Fingerprint]:
        return [f for f in self.fingerprints.values() if f.campaign_id == campaign_id]

    async def count(self, campaign_id: str) -> int:
        return len(await self.known(campaign_id))

    async def save(self, fingerprints: list[near_copies.Fingerprint]) -> None:
        for fingerprint in fingerprints:
            self.fingerprints.setdefault(fingerprint.contribution_id, fingerprint)

    async def flag(self, verdicts: list[near_copies.NearCopy]) -> list[near_copies.FlaggedCopy]:
        flagged = [self.flags.setdefault(v.copy_id, v) for v in verdicts]
        return [near_copies.FlaggedCopy(v, *self._sender(v.copy_id)) for v in flagged]

    def _sender(self, contribution_id: str) -> tuple[str, str, str]:
        campaign_id, item = self.contributions.contributions[contribution_id]
        return campaign_id, item.contributor_id, self.contributions.owners[contribution_id]


class FakeContributions:
    """Stored contributions (what intake leaves) and intake's own store semantics."""

    def __init__(self) -> None:
        self.contributions: dict[str, tuple[str, Contribution]] = {}  # id -> (campaign, item)
        self.owners: dict[str, str] = {}  # contribution id -> event id
        self.submissions: dict[str, tuple[str, str]] = {}  # event id -> (hash, contributor)
        self.rejections: dict[str, dict[str, Any]] = {}

    def add(self, campaign_id: str, item: Contribution) -> None:
        self.contributions[item.contribution_id] = (campaign_id, item)

    async def of_campaign(self, campaign_id: str) -> list[Contribution]:
        return [item for camp, item in self.contributions.values() if camp == campaign_id]

    async def by_ids(self, contribution_ids: list[str]) -> list[Contribution]:
        return [self.contributions[c][1] for c in contribution_ids if c in self.contributions]

    async def count(self, campaign_id: str) -> int:
        return len(await self.of_campaign(campaign_id))

    async def store(self, items: list[Parsed], stored_at: datetime) -> StoreOutcome:
        outcome = StoreOutcome()
        for item in items:
            event = item.event
            sent = (item.content_hash, event.contributor_id)
            if self.submissions.setdefault(event.event_id, sent) != sent:
                outcome.conflicting_ids.append(item)
                continue
            owner = self.owners.setdefault(item.content_hash, event.event_id)
            if owner != event.event_id:
                outcome.duplicates.append((item, owner))
            elif item.content_hash in self.contributions:
                outcome.replayed.append(item)
            else:
                contribution = Contribution(
                    item.content_hash, event.contributor_id, event.prompt, event.response
                )
                self.add(event.campaign_id, contribution)
                outcome.stored.append(item)
        return outcome

    async def record_rejections(self, rejections: list[tuple[FeedbackRejected, str]]) -> None:
        for rejection, source in rejections:
            self.rejections.setdefault(rejection.event_id, rejection_document(rejection, source))


class FakeMeasurements:
    def __init__(self) -> None:
        self.stored: dict[str, Measurement] = {}

    async def get(self, model_ids: list[str]) -> dict[str, Measurement]:
        return {m: self.stored[m] for m in model_ids if m in self.stored}

    async def put(self, measurement: Measurement) -> Measurement:
        return self.stored.setdefault(measurement.model_id, measurement)


class FakeLineage:
    def __init__(self) -> None:
        self.entries: dict[str, LineageEntry] = {}

    async def record(self, entries: Sequence[LineageEntry]) -> None:
        self.entries.update({entry.model_id: entry for entry in entries})

    async def ancestry(self, model_id: str) -> list[LineageEntry]:
        chain = [self.entries[model_id]]
        while chain[-1].parent_model_id is not None:
            chain.append(self.entries[chain[-1].parent_model_id])
        return chain[::-1]


class FakeShapley:
    def __init__(self) -> None:
        self.records: dict[str, ShapleyRecord] = {}

    async def get(self, campaign_id: str) -> ShapleyRecord | None:
        return self.records.get(campaign_id)

    async def save(self, record: ShapleyRecord) -> None:
        self.records[record.campaign_id] = record


@dataclass(frozen=True)
class FakeRecord:
    """What a consumer sees of one Kafka record."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None


@dataclass(frozen=True)
class FakeMessage:
    """A batch subscriber's message: the raw records behind it."""

    raw_message: tuple[FakeRecord, ...]


_fake_offsets = itertools.count()


def fake_message(topic: str, values: list[bytes], partition: int = 0) -> Any:
    return FakeMessage(tuple(FakeRecord(topic, partition, next(_fake_offsets), v) for v in values))
