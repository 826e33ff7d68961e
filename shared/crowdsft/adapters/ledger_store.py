"""The points ledger and balances, written by scoring in one transaction per round.

The transaction moves the round from decided to scored (through `RoundStore`), appends the
entries the domain's `pay` derives (unique per campaign, round, contributor and rule) and
moves the balances; a replayed decision finds the round scored and nothing is written.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from crowdsft.adapters.mongo import BALANCES, LEDGER, Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.domain import ledger
from crowdsft.domain.ids import balance_id
from crowdsft.domain.round import Round

FloatArray = NDArray[np.float64]


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._balances = db[BALANCES]
        self._ledger = db[LEDGER]
        self._rounds = RoundStore(db)

    async def points(self, campaign_id: str, contributor_ids: list[str]) -> FloatArray:
        cursor = self._balances.find(
            {"campaign_id": campaign_id}, {"contributor_id": 1, "points": 1}
        )
        balances = {doc["contributor_id"]: float(doc["points"]) async for doc in cursor}
        return ledger.standing(contributor_ids, balances)

    async def pay(self, scored: Round, rule: str, at: datetime) -> bool:
        async with self._db.client.start_session() as session:
            return await session.with_transaction(lambda s: self._pay(s, scored, rule, at))

    async def _pay(self, session: AsyncClientSession, scored: Round, rule: str,
                   at: datetime) -> bool:  # fmt: skip
        if not await self._rounds.record_payment(scored, session):
            return False
        campaign_id = scored.campaign_id
        cursor = self._balances.find(
            {"_id": {"$in": [balance_id(campaign_id, c) for c in scored.contributor_ids]}},
            {"contributor_id": 1},
            session=session,
        )
        known = {doc["contributor_id"] async for doc in cursor}
        payout = ledger.pay(scored, rule, known, at)
        if payout.entries:
            docs = [entry.model_dump() for entry in payout.entries]
            await self._ledger.insert_many(docs, session=session)
        updates = [
            UpdateOne(
                {"_id": balance_id(campaign_id, c)},
                {
                    "$inc": {"points": move},
                    "$set": {"campaign_id": campaign_id, "contributor_id": c},
                },
                upsert=True,
            )
            for c, move in payout.moves.items()
            if move != 0.0 or c in payout.newcomers
        ]
        if updates:
            await self._balances.bulk_write(updates, session=session)
        return True
