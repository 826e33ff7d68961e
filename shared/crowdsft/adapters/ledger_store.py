"""The points ledger and balances, written by scoring in one transaction per round.

Each round is paid once: the transaction flips the round from `decided` to `scored`, appends
ledger entries (unique per campaign, round, contributor and rule) and moves the balances; a
replayed decision finds the round scored and the whole transaction is abandoned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from crowdsft.adapters.mongo import BALANCES, LEDGER, ROUNDS, Database, Document

FloatArray = NDArray[np.float64]

INITIAL_POINTS = 1.0  # the method: every contributor starts with one point
INITIAL_ROUND = "initial"


def balance_id(campaign_id: str, contributor_id: str) -> str:
    return f"{campaign_id}:{contributor_id}"


@dataclass(frozen=True)
class RoundPayment:
    """One decided round's awards under the campaign's rule; `paid` is False when the model
    did not move (then only newcomers' initial points are written)."""

    campaign_id: str
    round_doc_id: str
    round_index: int
    rule: str
    contributor_ids: list[str]
    awards: FloatArray
    paid: bool


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._balances = db[BALANCES]
        self._ledger = db[LEDGER]
        self._rounds = db[ROUNDS]

    async def points(self, campaign_id: str, contributor_ids: list[str]) -> FloatArray:
        """Current points in the order given; a contributor not yet scored has the initial 1."""
        cursor = self._balances.find(
            {"campaign_id": campaign_id}, {"contributor_id": 1, "points": 1}
        )
        known = {doc["contributor_id"]: float(doc["points"]) async for doc in cursor}
        return np.asarray([known.get(c, INITIAL_POINTS) for c in contributor_ids])

    async def pay_round(self, payment: RoundPayment) -> bool:
        """True when this call paid the round; False when it had been paid before."""
        async with self._db.client.start_session() as session:
            return await session.with_transaction(lambda s: self._pay(s, payment))

    async def _pay(self, session: AsyncClientSession, payment: RoundPayment) -> bool:
        campaign_id, round_doc_id, paid = payment.campaign_id, payment.round_doc_id, payment.paid
        now = datetime.now(UTC)
        flipped = await self._rounds.update_one(
            {"_id": round_doc_id, "status": "decided"},
            {
                "$set": {
                    "status": "scored",
                    "awards": [float(a) for a in payment.awards],
                    "scored_at": now,
                }
            },
            session=session,
        )
        if flipped.modified_count == 0:
            return False
        cursor = self._balances.find(
            {"_id": {"$in": [balance_id(campaign_id, c) for c in payment.contributor_ids]}},
            {"contributor_id": 1},
            session=session,
        )
        known = {doc["contributor_id"] async for doc in cursor}
        entries: list[Document] = []
        increments: dict[str, float] = {}
        for contributor_id, award in zip(payment.contributor_ids, payment.awards, strict=True):
            if contributor_id not in known:
                entries.append(_entry(campaign_id, INITIAL_ROUND, -1, contributor_id, "initial",
                                      INITIAL_POINTS, now))  # fmt: skip
            if paid:
                entries.append(_entry(campaign_id, round_doc_id, payment.round_index,
                                      contributor_id, payment.rule, float(award), now))  # fmt: skip
            start = 0.0 if contributor_id in known else INITIAL_POINTS
            # One $inc per round, the same float additions the engine makes.
            increments[contributor_id] = start + float(award) if paid else start
        if entries:
            await self._ledger.insert_many(entries, session=session)
        updates = [
            UpdateOne(
                {"_id": balance_id(campaign_id, c)},
                {
                    "$inc": {"points": inc},
                    "$set": {"campaign_id": campaign_id, "contributor_id": c},
                },
                upsert=True,
            )
            for c, inc in increments.items()
            if inc != 0.0 or c not in known
        ]
        if updates:
            await self._balances.bulk_write(updates, session=session)
        return True


def _entry(
    campaign_id: str,
    round_id: str,
    round_index: int,
    contributor_id: str,
    rule: str,
    points: float,
    now: datetime,
) -> Document:
    return {
        "campaign_id": campaign_id,
        "round_id": round_id,
        "round_index": round_index,
        "contributor_id": contributor_id,
        "rule": rule,
        "points": points,
        "recorded_at": now,
    }
