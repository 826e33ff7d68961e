"""Read side of points: balances, ranks, the leaderboard and a contributor's ledger.

Scoring stores each paid round's awards and the campaign's standing after it as chunks
(`ledger_store`); this module only reads them. A campaign's balances, ranks and leaderboard
come from its latest standing, sorted once per standing and kept; without a campaign, a
contributor's balance is the sum over every campaign's standing (a view kept per set of
standings). A contributor's ledger is derived from the paid rounds they were in, reading one
chunk per round.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from crowdsft.adapters.chunks import ChunkStore
from crowdsft.adapters.ledger_store import NEWCOMERS, Standings
from crowdsft.adapters.mongo import CONTRIBUTIONS, ROUNDS, SUBMISSIONS, Database, Document
from crowdsft.adapters.round_store import AWARDS, CROWD
from crowdsft.domain import ledger
from crowdsft.domain.ledger import LedgerEntry, PaidRound
from crowdsft.domain.ledger import Standing as Points
from crowdsft.domain.round import RoundStatus

KEPT_VIEWS = 8
IDS_PER_READ = 200  # a `$in` stays short: SecantusDB's cost grows with its square


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


def totals(standings: list[Points]) -> Points:
    """Every contributor's points summed over campaigns."""
    summed: dict[str, float] = {}
    for standing in standings:
        for contributor_id, points in zip(standing.contributor_ids, standing.points.tolist(),
                                          strict=True):  # fmt: skip
            summed[contributor_id] = summed.get(contributor_id, 0.0) + points
    return Points(list(summed), np.asarray(list(summed.values()), dtype=np.float64))


class BalanceStore:
    def __init__(self, db: Database) -> None:
        self._rounds = db[ROUNDS]
        self._contributions = db[CONTRIBUTIONS]
        self._submissions = db[SUBMISSIONS]
        self._chunks = ChunkStore(db)
        self._standings = Standings(db, self._chunks)
        self._views: OrderedDict[tuple[str, ...], Points] = OrderedDict()
        self._crowd_rows: OrderedDict[str, dict[str, int]] = OrderedDict()

    async def _points(self, campaign_id: str | None) -> Points:
        """A campaign's latest standing, or the totals over every campaign."""
        if campaign_id is not None:
            return await self._standings.latest(campaign_id)
        paid = await self._rounds.distinct("campaign_id", {"status": RoundStatus.SCORED.value})
        latest = [
            doc
            for campaign_id in sorted(paid)
            if (doc := await self._standings.latest_round(str(campaign_id))) is not None
        ]
        key = tuple(f"{doc['_id']}:{doc['parts']['standing']}" for doc in latest)
        view = self._views.get(key)
        if view is None:
            view = totals([await self._standings.of_round(doc) for doc in latest])
            self._views[key] = view
            while len(self._views) > KEPT_VIEWS:
                self._views.popitem(last=False)
        return view

    async def balance(self, contributor_id: str, campaign_id: str | None = None) -> float:
        return (await self._points(campaign_id)).balance(contributor_id) or 0.0

    async def has_activity(self, contributor_id: str) -> bool:
        """Known to scoring or intake, even if never registered (e.g. CLI-only submitters)."""
        if (await self._points(None)).balance(contributor_id) is not None:
            return True
        return await self._submissions.find_one({"contributor_id": contributor_id}) is not None

    async def contribution_count(self, contributor_id: str, campaign_id: str | None = None) -> int:
        """Found through the submissions' contributor index (contributions carry no secondary
        index: it slowed intake's inserts), then their contributions by id, a few hundred at
        a time; a submission whose content someone else sent first is not theirs."""
        hashes = sorted({
            str(doc["content_hash"])
            async for doc in self._submissions.find(
                {"contributor_id": contributor_id}, {"content_hash": 1}
            )
        })  # fmt: skip
        count = 0
        for start in range(0, len(hashes), IDS_PER_READ):
            query = _scope(contributor_id, campaign_id)
            query["_id"] = {"$in": hashes[start : start + IDS_PER_READ]}
            count += await self._contributions.count_documents(query)
        return count

    async def rank(self, points: float, campaign_id: str | None = None) -> int:
        """1 + how many contributors hold strictly more points (ties share a rank)."""
        return 1 + (await self._points(campaign_id)).above(points)

    async def leaderboard(self, campaign_id: str | None = None, limit: int = 10) -> list[Standing]:
        """Top `limit` by points, ties broken by contributor id so pages are stable."""
        standing = await self._points(campaign_id)
        rows = [
            (standing.contributor_ids[row], float(standing.points[row]))
            for row in standing.best_first[:limit].tolist()
        ]
        return competition_ranks(rows)

    async def ledger(
        self, contributor_id: str, campaign_id: str | None = None, limit: int = 100
    ) -> list[LedgerEntry]:
        """Newest first: every paid round the contributor was in, and their starting point."""
        query: Document = {"status": RoundStatus.SCORED.value} | _scope(None, campaign_id)
        cursor = self._rounds.find(
            query, {"campaign_id": 1, "round_index": 1, "parts": 1, "decision.accepted": 1,
                    "payment": 1, "scored_at": 1},
        ).sort([("scored_at", -1), ("_id", 1)])  # fmt: skip
        entries: list[LedgerEntry] = []
        async for doc in cursor:
            paid = await self._paid(doc, contributor_id)
            if paid is not None:
                entries += ledger.entries(contributor_id, paid)
            if len(entries) >= limit:
                break
        return entries[:limit]

    async def _paid(self, doc: Document, contributor_id: str) -> PaidRound | None:
        """What the round paid the contributor, or None if they were not in it."""
        parts, campaign_id, rid = doc["parts"], doc["campaign_id"], doc["_id"]
        row = (await self._rows(campaign_id, parts[CROWD])).get(contributor_id)
        if row is None:
            return None
        award = await self._chunks.read_row(rid, AWARDS, parts[AWARDS], row)
        newcomer = await self._chunks.read_row(rid, NEWCOMERS, parts[NEWCOMERS], row)
        payment: dict[str, Any] = doc.get("payment") or {}
        scored_at: datetime = doc["scored_at"]
        return PaidRound(
            campaign_id=campaign_id,
            round_id=rid,
            round_index=int(doc["round_index"]),
            rule=str(payment.get("rule", "")),
            accepted=bool((doc.get("decision") or {}).get("accepted")),
            award=float(award["awards"]),
            newcomer=bool(newcomer["newcomer"]),
            recorded_at=scored_at,
        )

    async def _rows(self, campaign_id: str, digest: str) -> dict[str, int]:
        """Each member's row in a round's crowd, kept per crowd (rounds share one)."""
        rows = self._crowd_rows.get(digest)
        if rows is None:
            crowd = await self._chunks.read(campaign_id, CROWD, digest)
            rows = {str(c): row for row, c in enumerate(crowd["contributor_ids"])}
            self._crowd_rows[digest] = rows
            while len(self._crowd_rows) > KEPT_VIEWS:
                self._crowd_rows.popitem(last=False)
        return rows
