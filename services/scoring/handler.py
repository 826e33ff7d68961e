"""Scoring: a decided round becomes ledger entries and balance moves, once.

The round document holds everything the points rule looks at (the crowd, the points before
the round, the groups, the candidates and the outcome), so scoring computes the same awards
whenever and however often it sees the decision; the ledger transaction pays them once.
"""

from __future__ import annotations

import numpy as np
import structlog

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.kafka import Publish
from crowdsft.adapters.ledger_store import LedgerStore, RoundPayment
from crowdsft.adapters.mongo import Document
from crowdsft.adapters.round_store import AWARDS, RoundStore, announced
from crowdsft.campaigns import CampaignSpec
from crowdsft.contracts import PointAward, PointsAwarded, RoundDecided, derive_event_id
from crowdsft.contracts import topics as t
from crowdsft.engine.tournament import TournamentOutcome
from crowdsft.rounds import DecidedRound, awards

PRODUCER = "scoring"
log = structlog.get_logger(PRODUCER)


def decided_round(doc: Document) -> DecidedRound:
    outcome = TournamentOutcome(
        ranking=np.asarray(doc["ranking"], dtype=np.int64),
        scores=np.asarray(doc["scores"]),
        accepted=bool(doc["accepted"]),
        judged_wrong=bool(doc["judged_wrong"]),
    )
    return DecidedRound(
        users=np.asarray(doc["users"]),
        points=np.asarray(doc["points"]),
        labels=np.asarray(doc["labels"], dtype=np.int64),
        base=np.asarray(doc["base_model"]),
        candidates=np.asarray(doc["candidate_vectors"]),
        outcome=outcome,
    )


class ScoringHandler:
    def __init__(
        self, campaigns: CampaignStore, rounds: RoundStore, ledger: LedgerStore, publish: Publish
    ) -> None:
        self._campaigns = campaigns
        self._rounds = rounds
        self._ledger = ledger
        self._publish = publish

    async def on_round_decided(self, event: RoundDecided) -> None:
        doc = await self._rounds.get(event.campaign_id, event.round_index)
        spec = await self._campaigns.spec(event.campaign_id)
        if doc is None or spec is None or doc["status"] == "open":
            raise LookupError(f"round {event.round_id} is not decided in the store yet")
        if doc["status"] == "decided":
            amounts = awards(spec, decided_round(doc))
            payment = RoundPayment(
                campaign_id=spec.campaign_id,
                round_doc_id=doc["_id"],
                round_index=doc["round_index"],
                rule=spec.points_rule,
                contributor_ids=doc["contributor_ids"],
                awards=amounts,
                paid=bool(doc["accepted"]),
            )
            paid = await self._ledger.pay_round(payment)
            log.info("round scored", round_id=doc["_id"], paid_now=paid)
            doc = await self._rounds.get(event.campaign_id, event.round_index)
            assert doc is not None
        if announced(doc, AWARDS):
            return  # paid and announced before: a repeated decision stops here
        await self._publish([(t.POINTS_AWARDED, spec.campaign_id, self._awarded(spec, doc))])
        await self._rounds.mark_announced(doc["_id"], AWARDS)

    @staticmethod
    def _awarded(spec: CampaignSpec, doc: Document) -> PointsAwarded:
        """Built from what was stored, so every replay announces exactly the same awards."""
        pairs = zip(doc["contributor_ids"], doc["awards"], strict=True)
        return PointsAwarded(
            event_id=derive_event_id("points.awarded", doc["_id"], spec.points_rule),
            producer=PRODUCER,
            campaign_id=spec.campaign_id,
            round_id=doc["_id"],
            round_index=doc["round_index"],
            rule=spec.points_rule,
            awards=[PointAward(contributor_id=c, points=p) for c, p in pairs if doc["accepted"]],
        )
