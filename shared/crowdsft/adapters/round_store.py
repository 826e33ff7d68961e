"""Rounds in MongoDB: the only code that maps a `Round` to and from its documents.

A round's `_id` is derived from its campaign and index, and every step is a compare-and-set on
its status (open -> decided -> scored), so a replayed event finds its work done and changes
nothing, and two processes racing on one step end with one outcome.

The round document holds what does not grow with the crowd (the base, the group sizes, the
candidates, the outcome, the steps announced); the per-member columns live in content-addressed
chunks (`crowdsft.adapters.chunks`) that the document names by digest: who is in the round and
what they contributed (owned by the campaign, so rounds over the same crowd share it), their
points going in and their groups, where training placed them, and their awards. So a round of
100,000 contributors is a small document and a few dozen chunks of at most a few hundred KB.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from crowdsft.adapters.chunks import ChunkStore, Columns
from crowdsft.adapters.mongo import ROUNDS, Database, Document
from crowdsft.domain.ids import round_id
from crowdsft.domain.round import (
    Decision,
    Opening,
    Payment,
    Round,
    RoundStatus,
    RoundStep,
    RoundStepError,
)

CROWD, GROUPING, POSITIONS, AWARDS = "crowd", "grouping", "positions", "awards"
ROUND_PARTS = (CROWD, GROUPING, POSITIONS, AWARDS)  # others (the standing) are the ledger's
# The part each column set belongs to, and who owns it (the campaign or the round).
CAMPAIGN_OWNED = frozenset({CROWD})


def head_document(round_: Round, parts: dict[str, str]) -> Document:
    """The round without its per-member columns, which live in chunks named by `parts`."""
    opening = round_.opening
    decision = round_.decision.model_dump(exclude={"positions"}) if round_.decision else None
    return {
        "_id": round_.round_id,
        "campaign_id": round_.campaign_id,
        "round_index": round_.round_index,
        "status": round_.status.value,
        "opening": {
            "base_model_id": opening.base_model_id,
            "n_groups": opening.n_groups,
            "rng_state": opening.rng_state,
            "members": len(opening.contributor_ids),
            "group_sizes": round_.group_sizes(),
        },
        # MongoDB keys are strings.
        "candidates": {str(g): m for g, m in round_.candidates.items()},
        "decision": decision,
        "payment": {} if round_.payment is not None else None,
        "parts": parts,
        "announced": {step.value: True for step in round_.announced},
        "opened_at": round_.opened_at,
        "decided_at": round_.decided_at,
        "scored_at": round_.scored_at,
    }


def columns_of(round_: Round, part: str) -> Columns:
    """One per-member column set of the round (the part must exist at its status)."""
    opening = round_.opening
    if part == CROWD:
        crowd: Columns = {
            "contributor_ids": opening.contributor_ids,
            "contribution_ids": opening.contribution_ids,
        }
        if opening.positions is not None:
            crowd["positions"] = _matrix(opening.positions)
        return crowd
    if part == GROUPING:
        return {
            "points": np.asarray(opening.points, dtype=np.float64),
            "labels": np.asarray(opening.labels, dtype=np.int64),
        }
    if part == POSITIONS and round_.decision is not None and round_.decision.positions is not None:
        return {"positions": _matrix(round_.decision.positions)}
    if part == AWARDS and round_.payment is not None:
        return {"awards": np.asarray(round_.payment.awards, dtype=np.float64)}
    raise RoundStepError(f"{round_.round_id} has no {part} yet")


def parts_of(round_: Round) -> list[str]:
    """The parts a round has at its status."""
    parts = [CROWD, GROUPING]
    if round_.decision is not None and round_.decision.positions is not None:
        parts.append(POSITIONS)
    if round_.payment is not None:
        parts.append(AWARDS)
    return parts


def opening_of(head: Document, parts: dict[str, Columns]) -> Opening:
    """The round's opening from its document's summary and its crowd and grouping parts.
    Built without validation: what was stored was validated when the round was made."""
    crowd, grouping = parts[CROWD], parts[GROUPING]
    positions = crowd.get("positions")
    return Opening.model_construct(
        base_model_id=head["base_model_id"],
        contributor_ids=list(crowd["contributor_ids"]),
        contribution_ids=list(crowd["contribution_ids"]),
        positions=np.asarray(positions).tolist() if positions is not None else None,
        points=np.asarray(grouping["points"]).tolist(),
        labels=np.asarray(grouping["labels"]).tolist(),
        n_groups=head["n_groups"],
        rng_state=head["rng_state"],
    )


def round_of(doc: Document, parts: dict[str, Columns], opening: Opening | None = None) -> Round:
    """The round from its document and its parts' columns (and its opening, if built
    already: it never changes once the round is open)."""
    opening = opening or opening_of(doc["opening"], parts)
    decision = None
    if doc.get("decision"):
        placed = parts.get(POSITIONS)
        moved = np.asarray(placed["positions"]).tolist() if placed is not None else None
        decision = Decision.model_validate(doc["decision"] | {"positions": moved})
    payment = None
    if doc.get("payment") is not None:
        payment = Payment.model_construct(awards=np.asarray(parts[AWARDS]["awards"]).tolist())
    return Round.model_construct(
        round_id=doc["_id"],
        campaign_id=doc["campaign_id"],
        round_index=doc["round_index"],
        status=RoundStatus(doc["status"]),
        opening=opening,
        candidates={int(g): m for g, m in (doc.get("candidates") or {}).items()},
        decision=decision,
        payment=payment,
        announced=frozenset(
            RoundStep(s) for s, done in (doc.get("announced") or {}).items() if done
        ),
        opened_at=doc.get("opened_at"),
        decided_at=doc.get("decided_at"),
        scored_at=doc.get("scored_at"),
    )


def _matrix(rows: list[list[float]]) -> NDArray[np.float64]:
    width = len(rows[0]) if rows else 0
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def owner_of(round_: Round | Document, part: str) -> str:
    if isinstance(round_, Round):
        campaign_id, rid = round_.campaign_id, round_.round_id
    else:
        campaign_id, rid = round_["campaign_id"], round_["_id"]
    return campaign_id if part in CAMPAIGN_OWNED else rid


OPENINGS_KEPT = 16


class RoundStore:
    def __init__(self, db: Database, chunks: ChunkStore | None = None) -> None:
        self._rounds = db[ROUNDS]
        self._chunks = chunks or ChunkStore(db)
        # A round is read at every step, and its opening (lists of every member's ids,
        # points and position) took most of the time to rebuild at 10,000 members.
        self._openings: OrderedDict[tuple[Any, ...], Opening] = OrderedDict()

    async def _round(self, doc: Document, session: AsyncClientSession | None = None) -> Round:
        named = doc.get("parts") or {}
        parts = {
            part: await self._chunks.read(owner_of(doc, part), part, named[part], session)
            for part in ROUND_PARTS
            if part in named
        }
        head = doc["opening"]
        key = (named.get(CROWD), named.get(GROUPING), head["base_model_id"], head["n_groups"],
               head["rng_state"])  # fmt: skip
        opening = self._openings.get(key)
        if opening is None:  # lists of every member: built off the event loop
            opening = self._openings[key] = await asyncio.to_thread(opening_of, head, parts)
            while len(self._openings) > OPENINGS_KEPT:
                self._openings.popitem(last=False)
        self._openings.move_to_end(key)
        return round_of(doc, parts, opening)

    async def _write(self, round_: Round, part: str,
                     session: AsyncClientSession | None = None) -> str:  # fmt: skip
        columns = columns_of(round_, part)
        return await self._chunks.write(owner_of(round_, part), part, columns, session)

    async def get(self, campaign_id: str, round_index: int) -> Round | None:
        return await self.by_id(round_id(campaign_id, round_index))

    async def by_id(self, rid: str) -> Round | None:
        doc = await self._rounds.find_one({"_id": rid})
        return await self._round(doc) if doc is not None else None

    async def _stored(self, rid: str, session: AsyncClientSession | None = None) -> Round:
        doc = await self._rounds.find_one({"_id": rid}, session=session)
        if doc is None:
            raise LookupError(f"round {rid} is not in the store")
        return await self._round(doc, session)

    async def open(self, opened: Round) -> Round:
        """Members first, then the round naming them: a racing opener with another crowd
        writes other chunks, and whichever round document lands first says which count."""
        if opened.status is not RoundStatus.OPEN:
            raise RoundStepError(f"{opened.round_id} is {opened.status}, not a new round")
        parts = {part: await self._write(opened, part) for part in (CROWD, GROUPING)}
        with contextlib.suppress(DuplicateKeyError):
            await self._rounds.insert_one(head_document(opened, parts))
        return await self._stored(opened.round_id)

    async def add_candidate(self, rid: str, group_index: int, model_id: str) -> Round | None:
        current = await self.by_id(rid)
        if current is None:
            return None
        if current.status is RoundStatus.OPEN:
            current.with_candidate(group_index, model_id)  # refuses what the round cannot take
            await self._rounds.update_one(
                {"_id": rid, "status": RoundStatus.OPEN.value},
                {"$set": {f"candidates.{group_index}": model_id}},
            )
        return await self._stored(rid)

    async def decide(self, decided: Round) -> Round:
        if decided.status is not RoundStatus.DECIDED or decided.decision is None:
            raise RoundStepError(f"{decided.round_id} carries no decision")
        fields: dict[str, Any] = {
            "decision": decided.decision.model_dump(exclude={"positions"}),
            "decided_at": decided.decided_at,
        }
        if decided.decision.positions is not None:
            fields[f"parts.{POSITIONS}"] = await self._write(decided, POSITIONS)
        await self._transition(decided, RoundStatus.OPEN, fields)
        return await self._stored(decided.round_id)

    async def record_payment(
        self, scored: Round, session: AsyncClientSession | None = None
    ) -> bool:
        """decided -> scored; True when this call moved it (inside the ledger's transaction)."""
        if scored.status is not RoundStatus.SCORED or scored.payment is None:
            raise RoundStepError(f"{scored.round_id} carries no payment")
        digest = await self._write(scored, AWARDS, session)
        fields: dict[str, Any] = {
            "payment": {},
            f"parts.{AWARDS}": digest,
            "scored_at": scored.scored_at,
        }
        return await self._transition(scored, RoundStatus.DECIDED, fields, session)

    async def _transition(
        self,
        changed: Round,
        expected: RoundStatus,
        fields: dict[str, Any],
        session: AsyncClientSession | None = None,
    ) -> bool:
        result = await self._rounds.update_one(
            {"_id": changed.round_id, "status": expected.value},
            {"$set": fields | {"status": changed.status.value}},
            session=session,
        )
        return result.modified_count == 1

    async def mark_announced(self, rid: str, step: RoundStep) -> None:
        """After a step's events are out. A trigger that finds the flag set does nothing, so
        a duplicate event stops at the first service instead of replaying the rounds after it;
        a crash before the flag costs one repeated announcement, which consumers absorb."""
        await self._rounds.update_one({"_id": rid}, {"$set": {f"announced.{step.value}": True}})

    async def of_campaign(self, campaign_id: str, limit: int = 0, offset: int = 0) -> list[Round]:
        """Oldest first; `limit` 0 means all."""
        return [await self._round(doc) async for doc in self._heads(campaign_id, limit, offset)]

    async def heads_of_campaign(
        self, campaign_id: str, limit: int = 0, offset: int = 0
    ) -> list[Document]:
        """The rounds' documents alone, oldest first: what a listing shows without members."""
        return [doc async for doc in self._heads(campaign_id, limit, offset)]

    def _heads(self, campaign_id: str, limit: int, offset: int) -> Any:
        return (
            self._rounds.find({"campaign_id": campaign_id})
            .sort("round_index", 1)
            .skip(offset)
            .limit(limit)
        )

    async def waiting_since(self, opened_before: datetime) -> list[Round]:
        """Open rounds opened before the given time, in every campaign."""
        cursor = self._rounds.find(
            {"status": RoundStatus.OPEN.value, "opened_at": {"$lt": opened_before}}
        )
        return [await self._round(doc) async for doc in cursor]

    async def count(self, campaign_id: str, status: RoundStatus | None = None) -> int:
        query: Document = {"campaign_id": campaign_id}
        if status is not None:
            query["status"] = status.value
        return await self._rounds.count_documents(query)
