"""Read side of points: balances, ranks, the leaderboard and a contributor's ledger.

Scoring writes these collections; this module only reads them. Without a campaign, a
contributor's balance is the sum over every campaign they earned points in.
"""

from __future__ import annotations

from dataclasses import dataclass

from crowdsft.adapters.mongo import BALANCES, CONTRIBUTIONS, LEDGER, Database, Document
from crowdsft.domain.ledger import LedgerEntry


@dataclass(frozen=True)
class Standing:
    rank: int
    contributor_id: str
    points: float


def _scope(contributor_id: str | None = None, campaign_id: str | None = None) -> Document:
    query: Document = {}
    if contributor_id is not None:
        query["contributor_id"] = contributor_id
    if campaign_id is not None:
        query["campaign_id"] = campaign_id
    return query


def competition_ranks(rows: list[tuple[str, float]]) -> list[Standing]:
    """ "1224" ranking of rows sorted by points desc: equal points share the better rank."""
    standings: list[Standing] = []
    for position, (contributor_id, points) in enumerate(rows, start=1):
        tied = standings and standings[-1].points == points
        rank = standings[-1].rank if tied else position
        standings.append(Standing(rank, contributor_id, points))
    return standings


class BalanceStore:
    def __init__(self, db: Database) -> None:
        self._balances = db[BALANCES]
        self._ledger = db[LEDGER]
        self._contributions = db[CONTRIBUTIONS]

    async def balance(self, contributor_id: str, campaign_id: str | None = None) -> float:
        total = 0.0
        async for doc in self._balances.find(_scope(contributor_id, campaign_id), {"points": 1}):
            total += float(doc.get("points", 0.0))
        return total

    async def has_activity(self, contributor_id: str) -> bool:
        """Known to scoring or intake, even if never registered (e.g. CLI-only submitters)."""
        query = _scope(contributor_id)
        if await self._balances.count_documents(query, limit=1):
            return True
        return await self._contributions.count_documents(query, limit=1) > 0

    async def contribution_count(self, contributor_id: str, campaign_id: str | None = None) -> int:
        return await self._contributions.count_documents(_scope(contributor_id, campaign_id))

    async def rank(self, points: float, campaign_id: str | None = None) -> int:
        """1 + how many contributors hold strictly more points (ties share a rank)."""
        if campaign_id is not None:
            query = {"campaign_id": campaign_id, "points": {"$gt": points}}
            return 1 + await self._balances.count_documents(query)
        pipeline: list[Document] = [
            {"$group": {"_id": "$contributor_id", "points": {"$sum": "$points"}}},
            {"$match": {"points": {"$gt": points}}},
            {"$count": "above"},
        ]
        cursor = await self._balances.aggregate(pipeline)
        counted = [doc async for doc in cursor]
        return 1 + (int(counted[0]["above"]) if counted else 0)

    async def leaderboard(self, campaign_id: str | None = None, limit: int = 10) -> list[Standing]:
        """Top `limit` by points, ties broken by contributor id so pages are stable."""
        if campaign_id is not None:
            # One balance per (campaign, contributor): the leaderboard index answers this.
            found = (
                self._balances.find(
                    {"campaign_id": campaign_id}, {"contributor_id": 1, "points": 1}
                )
                .sort([("points", -1), ("contributor_id", 1)])
                .limit(limit)
            )
            rows = [(str(doc["contributor_id"]), float(doc["points"])) async for doc in found]
        else:
            pipeline: list[Document] = [
                {"$group": {"_id": "$contributor_id", "points": {"$sum": "$points"}}},
                {"$sort": {"points": -1, "_id": 1}},
                {"$limit": limit},
            ]
            totals = await self._balances.aggregate(pipeline)
            rows = [(str(doc["_id"]), float(doc["points"])) async for doc in totals]
        return competition_ranks(rows)

    async def ledger(
        self, contributor_id: str, campaign_id: str | None = None, limit: int = 100
    ) -> list[LedgerEntry]:
        """Newest first; the ledger is append-only, so this is the full history of points."""
        cursor = (
            self._ledger.find(_scope(contributor_id, campaign_id), {"_id": 0})
            .sort([("recorded_at", -1), ("_id", 1)])
            .limit(limit)
        )
        return [LedgerEntry.model_validate(doc) async for doc in cursor]
