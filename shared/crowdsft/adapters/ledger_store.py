"""Payments and standings: scoring pays a round in one transaction, written as chunks.

The transaction moves the round from decided to scored (through `RoundStore`, which stores
its awards) and stores beside them which members were paid for the first time and the
campaign's standing after the round (`crowdsft.domain.ledger.settle`): everyone ever paid, in
the order they were first paid (a column owned by the campaign, so it is written again only
when newcomers join), and their points (owned by the round). A few chunk documents per round,
not one write per member, so paying 100,000 contributors costs about what paying a hundred
did; a replayed decision finds the round scored and writes nothing. Balances, ranks, the
leaderboard and each contributor's ledger are read from these parts (`balance_store`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray
from pymongo.asynchronous.client_session import AsyncClientSession

from crowdsft.adapters.chunks import ChunkStore
from crowdsft.adapters.mongo import ROUNDS, Database, Document
from crowdsft.adapters.round_store import RoundStore
from crowdsft.domain import ledger
from crowdsft.domain.ledger import Standing
from crowdsft.domain.round import Round, RoundStatus

FloatArray = NDArray[np.float64]
# A scored round's parts beside its own: who is in the standing (campaign-owned), their
# points after the round, and which members the round paid for the first time.
STANDING_IDS, STANDING, NEWCOMERS = "standing_ids", "standing", "newcomers"
KEPT_STANDINGS = 8


class Standings:
    """A campaign's standing after its latest paid round (or the last one before a round)."""

    def __init__(self, db: Database, chunks: ChunkStore | None = None) -> None:
        self._rounds = db[ROUNDS]
        self._chunks = chunks or ChunkStore(db)
        # Kept whole, so a standing's lookups and sorted orders are built once, not per read.
        self._kept: OrderedDict[str, Standing] = OrderedDict()

    async def latest_round(
        self,
        campaign_id: str,
        before_round: int | None = None,
        session: AsyncClientSession | None = None,
    ) -> Document | None:
        """The latest scored round's document (its parts name the standing), or None."""
        query: Document = {"campaign_id": campaign_id, "status": RoundStatus.SCORED.value}
        if before_round is not None:
            query["round_index"] = {"$lt": before_round}
        return await self._rounds.find_one(
            query, {"parts": 1, "round_index": 1, "campaign_id": 1},
            sort=[("round_index", -1)], session=session,
        )  # fmt: skip

    async def latest(
        self,
        campaign_id: str,
        before_round: int | None = None,
        session: AsyncClientSession | None = None,
    ) -> Standing:
        doc = await self.latest_round(campaign_id, before_round, session)
        return Standing.empty() if doc is None else await self.of_round(doc, session)

    async def of_round(self, doc: Document, session: AsyncClientSession | None = None) -> Standing:
        parts, campaign_id = doc["parts"], doc["campaign_id"]
        key = f"{doc['_id']}|{parts[STANDING]}"
        kept = self._kept.get(key)
        if kept is None:
            ids = await self._chunks.read(campaign_id, STANDING_IDS, parts[STANDING_IDS], session)
            points = await self._chunks.read(doc["_id"], STANDING, parts[STANDING], session)
            kept = Standing([str(c) for c in ids["contributor_ids"]], np.asarray(points["points"]))
            self._kept[key] = kept
            while len(self._kept) > KEPT_STANDINGS:
                self._kept.popitem(last=False)
        self._kept.move_to_end(key)
        return kept


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._rounds_collection = db[ROUNDS]
        self._chunks = ChunkStore(db)
        self._rounds = RoundStore(db, self._chunks)
        self._standings = Standings(db, self._chunks)

    async def points(self, campaign_id: str, contributor_ids: list[str]) -> FloatArray:
        return (await self._standings.latest(campaign_id)).going_in(contributor_ids)

    async def pay(self, scored: Round, rule: str) -> bool:
        async with self._db.client.start_session() as session:
            return await session.with_transaction(lambda s: self._pay(s, scored, rule))

    async def _pay(self, session: AsyncClientSession, scored: Round, rule: str) -> bool:
        if not await self._rounds.record_payment(scored, session):
            return False
        before = await self._standings.latest(scored.campaign_id, scored.round_index, session)
        settled = await asyncio.to_thread(ledger.settle, before, scored)
        after, rid, campaign_id = settled.after, scored.round_id, scored.campaign_id
        ids = {"contributor_ids": after.contributor_ids}
        parts = {
            STANDING_IDS: await self._chunks.write(campaign_id, STANDING_IDS, ids, session),
            STANDING: await self._chunks.write(rid, STANDING, {"points": after.points}, session),
            NEWCOMERS: await self._chunks.write(
                rid, NEWCOMERS, {"newcomer": settled.newcomers.astype(np.int64)}, session
            ),
        }
        await self._rounds_collection.update_one(
            {"_id": rid},
            {"$set": {**{f"parts.{p}": d for p, d in parts.items()}, "payment.rule": rule}},
            session=session,
        )
        return True
