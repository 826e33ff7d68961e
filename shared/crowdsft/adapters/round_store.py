"""Rounds in MongoDB: the only code that maps a `Round` to and from its document.

A round's `_id` is derived from its campaign and index, and every step is a compare-and-set on
its status (open -> decided -> scored), so a replayed event finds its work done and changes
nothing, and two processes racing on one step end with one outcome.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

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


def to_document(round_: Round) -> Document:
    return {
        "_id": round_.round_id,
        "campaign_id": round_.campaign_id,
        "round_index": round_.round_index,
        "status": round_.status.value,
        "opening": round_.opening.model_dump(),
        # MongoDB keys are strings.
        "candidates": {str(g): m for g, m in round_.candidates.items()},
        "decision": round_.decision.model_dump() if round_.decision else None,
        "payment": round_.payment.model_dump() if round_.payment else None,
        "announced": {step.value: True for step in round_.announced},
        "opened_at": round_.opened_at,
        "decided_at": round_.decided_at,
        "scored_at": round_.scored_at,
    }


def from_document(doc: Document) -> Round:
    return Round(
        round_id=doc["_id"],
        campaign_id=doc["campaign_id"],
        round_index=doc["round_index"],
        status=RoundStatus(doc["status"]),
        opening=Opening.model_validate(doc["opening"]),
        candidates={int(g): m for g, m in (doc.get("candidates") or {}).items()},
        decision=Decision.model_validate(doc["decision"]) if doc.get("decision") else None,
        payment=Payment.model_validate(doc["payment"]) if doc.get("payment") else None,
        announced=frozenset(
            RoundStep(s) for s, done in (doc.get("announced") or {}).items() if done
        ),
        opened_at=doc.get("opened_at"),
        decided_at=doc.get("decided_at"),
        scored_at=doc.get("scored_at"),
    )


class RoundStore:
    def __init__(self, db: Database) -> None:
        self._rounds = db[ROUNDS]

    async def get(self, campaign_id: str, round_index: int) -> Round | None:
        return await self.by_id(round_id(campaign_id, round_index))

    async def by_id(self, rid: str) -> Round | None:
        doc = await self._rounds.find_one({"_id": rid})
        return from_document(doc) if doc is not None else None

    async def _stored(self, rid: str, session: AsyncClientSession | None = None) -> Round:
        doc = await self._rounds.find_one({"_id": rid}, session=session)
        if doc is None:
            raise LookupError(f"round {rid} is not in the store")
        return from_document(doc)

    async def open(self, opened: Round) -> Round:
        if opened.status is not RoundStatus.OPEN:
            raise RoundStepError(f"{opened.round_id} is {opened.status}, not a new round")
        with contextlib.suppress(DuplicateKeyError):
            await self._rounds.insert_one(to_document(opened))
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
        await self._transition(
            decided,
            RoundStatus.OPEN,
            {"decision": decided.decision.model_dump(), "decided_at": decided.decided_at},
        )
        return await self._stored(decided.round_id)

    async def record_payment(
        self, scored: Round, session: AsyncClientSession | None = None
    ) -> bool:
        """decided -> scored; True when this call moved it (inside the ledger's transaction)."""
        if scored.status is not RoundStatus.SCORED or scored.payment is None:
            raise RoundStepError(f"{scored.round_id} carries no payment")
        fields = {"payment": scored.payment.model_dump(), "scored_at": scored.scored_at}
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
        cursor = (
            self._rounds.find({"campaign_id": campaign_id})
            .sort("round_index", 1)
            .skip(offset)
            .limit(limit)
        )
        return [from_document(doc) async for doc in cursor]

    async def waiting_since(self, opened_before: datetime) -> list[Round]:
        """Open rounds opened before the given time, in every campaign."""
        cursor = self._rounds.find(
            {"status": RoundStatus.OPEN.value, "opened_at": {"$lt": opened_before}}
        )
        return [from_document(doc) async for doc in cursor]

    async def count(self, campaign_id: str, status: RoundStatus | None = None) -> int:
        query: Document = {"campaign_id": campaign_id}
        if status is not None:
            query["status"] = status.value
        return await self._rounds.count_documents(query)
