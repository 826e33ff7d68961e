"""Selection: opens rounds, collects the trained candidates, runs the tournament, decides.

Every step is written before it is announced and is safe to repeat: a round is opened once
(its id is derived), decided once (compare-and-set on its status), and the campaign's state
moves by compare-and-set on its round counter. A replayed event therefore re-announces what
was already decided, with the same event ids, and changes nothing. How the crowd and the
models are placed and judged is the campaign's backend's (`crowdsft.domain.backends`).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog

from crowdsft.adapters.metrics import ROUND_SECONDS, ROUNDS_DECIDED, ROUNDS_OPENED
from crowdsft.contracts import (
    CandidateEvaluated,
    CandidateTrained,
    PointsAwarded,
    RoundDecided,
    RoundOpened,
    StartRound,
    TrainingRequested,
    derive_event_id,
    utc_now,
)
from crowdsft.domain.backends import backend_of
from crowdsft.domain.campaign import CampaignSpec, CampaignState
from crowdsft.domain.crowd import CrowdSnapshot
from crowdsft.domain.ids import round_id
from crowdsft.domain.lineage import candidate_entries
from crowdsft.domain.ports import (
    Announcement,
    Balances,
    Campaigns,
    Contributions,
    Lineage,
    Measurements,
    Publish,
    Rounds,
)
from crowdsft.domain.round import FloatArray, Opening, Round, RoundStatus, RoundStep, RoundStepError
from crowdsft.domain.steps import group_crowd

PRODUCER = "selection"
log = structlog.get_logger(PRODUCER)


class SelectionHandler:
    def __init__(
        self,
        campaigns: Campaigns,
        rounds: Rounds,
        contributions: Contributions,
        balances: Balances,
        measurements: Measurements,
        lineage: Lineage,
        publish: Publish,
    ) -> None:
        self._campaigns = campaigns
        self._rounds = rounds
        self._contributions = contributions
        self._balances = balances
        self._measurements = measurements
        self._lineage = lineage
        self._publish = publish
        # Per campaign: the crowd's version it was read at, the spec, and the placed crowd.
        self._crowds: dict[str, tuple[int, CampaignSpec, CrowdSnapshot]] = {}

    # Opening a round.

    async def on_start_round(self, command: StartRound) -> None:
        await self.open_round(command.campaign_id, command.round_index)

    async def on_points_awarded(self, event: PointsAwarded) -> None:
        """The last round is paid: under the auto policy the next one starts now."""
        paid = await self._rounds.by_id(event.round_id)
        if paid is None or paid.campaign_id != event.campaign_id:
            raise LookupError(f"points for round {event.round_id}, which is not in the store")
        if paid.status is not RoundStatus.SCORED or paid.round_index != event.round_index:
            raise RoundStepError(f"points for {event.round_id}, which is {paid.status} in the "
                                 "store")  # fmt: skip
        spec = await self._campaigns.spec(event.campaign_id)
        if spec is None or spec.policy.mode != "auto":
            return
        if event.round_index + 1 < spec.policy.max_rounds:
            await self.open_round(event.campaign_id, event.round_index + 1)

    async def start_when_ready(self, campaign_id: str) -> None:
        """Under the auto policy the first round starts once enough contributions wait."""
        spec = await self._campaigns.spec(campaign_id)
        state = await self._campaigns.state(campaign_id)
        if spec is None or state is None or spec.policy.mode != "auto":
            return
        if state.next_round != 0 or state.open_round is not None:
            return
        # The accepted tally never falls short of what is stored, so the exact count (a scan
        # of the campaign's contributions) runs only once there may be enough.
        needed = spec.policy.min_contributions
        if (await self._campaigns.crowd(campaign_id)).accepted < needed:
            return
        if await self._contributions.count(campaign_id) >= needed:
            await self.open_round(campaign_id, 0)

    async def open_round(self, campaign_id: str, round_index: int) -> None:
        spec = await self._campaigns.spec(campaign_id)
        state = await self._campaigns.state(campaign_id)
        if spec is None or state is None:
            log.warning("no such round campaign", campaign_id=campaign_id)
            return
        if state.next_round != round_index or round_index >= spec.policy.max_rounds:
            return  # a stale or repeated command: that round is not the next one
        opened = await self._rounds.get(campaign_id, round_index)
        if opened is None:
            opened = await self._new_round(spec, round_index, state)
            if opened is None:
                return
        elif opened.announced_step(RoundStep.OPENING):
            return
        await self._campaigns.mark_open(campaign_id, round_index, opened.opening.rng_state)
        await self._publish(opening(spec, opened))
        await self._rounds.mark_announced(opened.round_id, RoundStep.OPENING)
        ROUNDS_OPENED.inc()

    async def _new_round(
        self, spec: CampaignSpec, round_index: int, state: CampaignState
    ) -> Round | None:
        crowd = await self._crowd(spec)
        if not crowd.contributor_ids:
            log.warning("no usable contributions yet", campaign_id=spec.campaign_id)
            return None
        points = await self._balances.points(spec.campaign_id, crowd.contributor_ids)
        # Grouping and building a round of 100,000 members takes a while: off the event loop,
        # so the consumers keep heartbeating.
        new = await asyncio.to_thread(opened_round, spec, round_index, state, crowd, points)
        return await self._rounds.open(new)

    async def _crowd(self, spec: CampaignSpec) -> CrowdSnapshot:
        """The campaign's crowd, read and placed again only when its version moved (each
        accepted batch moves it, after its near-copies are flagged): reading and parsing
        10,000 contributions took about a second, and counting them half of one."""
        version = (await self._campaigns.crowd(spec.campaign_id)).version
        kept = self._crowds.get(spec.campaign_id)
        if kept is not None and kept[0] == version and kept[1] == spec:
            return kept[2]
        contributions = await self._contributions.of_campaign(spec.campaign_id)
        placement = backend_of(spec).placement
        crowd = await asyncio.to_thread(placement.snapshot, spec, contributions)
        self._crowds[spec.campaign_id] = (version, spec, crowd)
        return crowd

    async def request_overdue(self, opened_before: datetime) -> int:
        """Ask training again for every candidate a round opened before the given time still
        lacks (a request or its answer was lost). The requests are the round's own, with the
        same event ids, so a late original answer and the repeated one count once."""
        asked = 0
        for waiting in await self._rounds.waiting_since(opened_before):
            spec = await self._campaigns.spec(waiting.campaign_id)
            if spec is None:
                continue
            missing = set(waiting.missing_groups())
            again = [
                (key, event)
                for key, event in opening(spec, waiting)
                if isinstance(event, TrainingRequested) and event.group_index in missing
            ]
            await self._publish(again)
            asked += len(again)
            log.warning("candidates overdue; asked again", round_id=waiting.round_id,
                        groups=sorted(missing))  # fmt: skip
        return asked

    # Deciding a round.

    async def on_candidate_trained(self, event: CandidateTrained) -> None:
        """Only a candidate that training measured counts: the event names it, the store
        holds what it is. A forged or stray event is refused (and dead-lettered)."""
        await self._check_candidate(event)
        current = await self._rounds.add_candidate(
            event.round_id, event.group_index, event.model_id
        )
        if current is None:
            raise LookupError(f"candidate for round {event.round_id}, which is not in the store")
        if current.status is RoundStatus.OPEN and not current.complete:
            return  # still waiting for other groups
        if current.announced_step(RoundStep.DECISION):
            return  # a late or repeated candidate of a round already decided and announced
        spec = await self._campaigns.spec(event.campaign_id)
        if spec is None:
            raise LookupError(f"round {event.round_id} of a campaign without a spec")
        if current.status is RoundStatus.OPEN:
            current = await self._decide(spec, current)
        await self._finish(spec, current)

    async def _check_candidate(self, event: CandidateTrained) -> None:
        stored = await self._rounds.by_id(event.round_id)
        if stored is None or stored.campaign_id != event.campaign_id:
            raise LookupError(f"round {event.round_id} of campaign {event.campaign_id!r} is "
                              "not in the store")  # fmt: skip
        stored.check_candidate(event.group_index, event.model_id)
        if event.parent_model_id != stored.base_model_id:
            raise RoundStepError(f"{event.model_id} names parent {event.parent_model_id}; the "
                                 f"round's base is {stored.base_model_id}")  # fmt: skip
        found = await self._measurements.get([event.model_id])
        if event.model_id not in found or found[event.model_id].campaign_id != event.campaign_id:
            raise LookupError(f"no measurement of {event.model_id} from training is stored")

    async def _decide(self, spec: CampaignSpec, current: Round) -> Round:
        model_ids = [current.base_model_id, *current.candidate_ids()]
        found = await self._measurements.get(model_ids)
        missing = [m for m in model_ids if m not in found]
        if missing:
            raise LookupError(f"no measurement stored for {missing}")
        base, *candidates = (found[m] for m in model_ids)
        decision = backend_of(spec).placement.decide(spec, current, base, candidates)
        return await self._rounds.decide(current.decide(decision, utc_now()))

    async def _finish(self, spec: CampaignSpec, decided: Round) -> None:
        """Lineage, campaign state and announcements of a decided round: all repeatable."""
        hyperparameters = spec.backend.lineage_hyperparameters(spec)
        await self._lineage.record(candidate_entries(decided, hyperparameters))
        model_id = decided.model_after()
        assert model_id is not None and decided.decision is not None
        index = decided.round_index
        state = CampaignState(next_round=index + 1, model_id=model_id,
                              rng_state=decided.decision.rng_after)  # fmt: skip
        await self._campaigns.advance(spec.campaign_id, index, state)
        await self._publish(decision(decided))
        await self._rounds.mark_announced(decided.round_id, RoundStep.DECISION)
        ROUNDS_DECIDED.inc()
        if decided.opened_at is not None and decided.decided_at is not None:
            ROUND_SECONDS.observe((decided.decided_at - decided.opened_at).total_seconds())
        log.info("round decided", campaign_id=spec.campaign_id, round_id=decided.round_id,
                 improved=decided.decision.accepted)  # fmt: skip


def opened_round(spec: CampaignSpec, round_index: int, state: CampaignState,
                 crowd: CrowdSnapshot, points: FloatArray) -> Round:  # fmt: skip
    """The round selection opens: the crowd grouped by the campaign's rule and stream."""
    labels, rng_after = group_crowd(spec, points, round_index, state.rng_state)
    return Round(
        round_id=round_id(spec.campaign_id, round_index),
        campaign_id=spec.campaign_id,
        round_index=round_index,
        opening=Opening(
            base_model_id=state.model_id,
            contributor_ids=crowd.contributor_ids,
            contribution_ids=crowd.contribution_ids,
            positions=crowd.users.tolist() if crowd.users is not None else None,
            points=points.tolist(),
            labels=[int(x) for x in labels],
            n_groups=int(labels.max()) + 1,
            rng_state=rng_after,
        ),
        opened_at=utc_now(),
    )


def opening(spec: CampaignSpec, opened: Round) -> list[Announcement]:
    """`round.opened` and one `training.requested` per group, built from the stored round.
    Neither names the members: training reads the group from the round."""
    rid, campaign_id = opened.round_id, spec.campaign_id
    sizes = opened.group_sizes()
    announcements: list[Announcement] = [
        (
            campaign_id,
            RoundOpened(
                event_id=derive_event_id("round.opened", rid),
                producer=PRODUCER,
                campaign_id=campaign_id,
                round_id=rid,
                round_index=opened.round_index,
                base_model_id=opened.base_model_id,
                group_sizes=sizes,
            ),
        )
    ]
    for group_index, size in enumerate(sizes):
        request = TrainingRequested(
            event_id=derive_event_id("training.requested", rid, group_index),
            producer=PRODUCER,
            campaign_id=campaign_id,
            round_id=rid,
            group_index=group_index,
            base_model_id=opened.base_model_id,
            backend=spec.backend.kind,
            members=size,
        )
        # Keyed per group, not per campaign: the requests spread over the partitions, so
        # every training process shares the round's work.
        announcements.append((f"{rid}:{group_index}", request))
    return announcements


def decision(decided: Round) -> list[Announcement]:
    """One `candidate.evaluated` per candidate, then `round.decided`."""
    rid, campaign_id, made = decided.round_id, decided.campaign_id, decided.decision
    assert made is not None
    evaluated: list[Announcement] = [
        (
            campaign_id,
            CandidateEvaluated(
                event_id=derive_event_id("candidate.evaluated", rid, result.group_index),
                producer=PRODUCER,
                campaign_id=campaign_id,
                round_id=rid,
                group_index=result.group_index,
                model_id=result.model_id,
                score=result.score,
                distance=result.distance,
            ),
        )
        for result in made.candidates
    ]
    decided_event = RoundDecided(
        event_id=derive_event_id("round.decided", rid),
        producer=PRODUCER,
        campaign_id=campaign_id,
        round_id=rid,
        round_index=decided.round_index,
        ranking=made.ranking,
        scores=[result.score for result in made.candidates],
        base_model_id=decided.base_model_id,
        winner_model_id=made.winner_model_id,
        improved=made.accepted,
        judging_error=made.judged_wrong,
        group_sizes=decided.group_sizes(),
    )
    return [*evaluated, (campaign_id, decided_event)]
