"""Scoring: a decided round becomes ledger entries and balance moves, once.

The round holds everything the points rule looks at (the crowd, the points before the round,
the groups, the candidates and the outcome), so scoring computes the same awards whenever and
however often it sees the decision; the payment is one transaction that happens once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import numpy as np
import structlog

from crowdsft.adapters.metrics import ROUNDS_SCORED
from crowdsft.contracts import PointsAwarded, RoundDecided, derive_event_id, utc_now
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.domain.ports import Campaigns, Payments, Publish, Rounds
from crowdsft.domain.round import Round, RoundStatus, RoundStep
from crowdsft.domain.steps import awards

PRODUCER = "scoring"
log = structlog.get_logger(PRODUCER)


class ScoringHandler:
    def __init__(
        self, campaigns: Campaigns, rounds: Rounds, payments: Payments, publish: Publish
    ) -> None:
        self._campaigns = campaigns
        self._rounds = rounds
        self._payments = payments
        self._publish = publish

    async def on_round_decided(self, event: RoundDecided) -> None:
        decided = await self._rounds.get(event.campaign_id, event.round_index)
        spec = await self._campaigns.spec(event.campaign_id)
        if decided is None or spec is None or decided.status is RoundStatus.OPEN:
            raise LookupError(f"round {event.round_id} is not decided in the store yet")
        if decided.status is RoundStatus.DECIDED:
            now = utc_now()
            # Off the event loop: a round of 100,000 members takes a while to pay.
            scored = await asyncio.to_thread(with_payment, spec, decided, now)
            paid = await self._payments.pay(scored, spec.points_rule)
            log.info("round scored", round_id=decided.round_id, paid_now=paid)
            decided = await self._rounds.get(event.campaign_id, event.round_index) or decided
        if decided.announced_step(RoundStep.AWARDS):
            return  # paid and announced before: a repeated decision stops here
        await self._publish([(spec.campaign_id, awarded(spec, decided))])
        await self._rounds.mark_announced(decided.round_id, RoundStep.AWARDS)
        ROUNDS_SCORED.inc()


def with_payment(spec: CampaignSpec, decided: Round, at: datetime) -> Round:
    return decided.pay(awards(spec, decided).tolist(), at)


def awarded(spec: CampaignSpec, scored: Round) -> PointsAwarded:
    """Built from what was stored, so every replay announces exactly the same totals; each
    member's award is the stored round's."""
    assert scored.payment is not None and scored.decision is not None
    awards = np.asarray(scored.payment.awards, dtype=np.float64)
    accepted = scored.decision.accepted
    return PointsAwarded(
        event_id=derive_event_id("points.awarded", scored.round_id, spec.points_rule),
        producer=PRODUCER,
        campaign_id=spec.campaign_id,
        round_id=scored.round_id,
        round_index=scored.round_index,
        rule=spec.points_rule,
        accepted=accepted,
        members=len(awards),
        paid=int(np.count_nonzero(awards)) if accepted else 0,
        total=float(awards.sum()) if accepted else 0.0,
    )
