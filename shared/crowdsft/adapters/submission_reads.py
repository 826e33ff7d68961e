"""What became of a contributor's submissions: stored (and earning), flagged as a near-copy,
or rejected with the reason, read by event id; the gateway's 202 says only "received"."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from crowdsft.adapters.mongo import CONTRIBUTIONS, REJECTIONS, SUBMISSIONS, Database, Document
from crowdsft.contracts.feedback import RejectionReason

SubmissionState = Literal["pending", "accepted", "flagged", "rejected"]
NEAR_DUPLICATE = RejectionReason.NEAR_DUPLICATE.value


class SubmissionStatus(BaseModel):
    event_id: str
    status: SubmissionState
    campaign_id: str | None = None
    contribution_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    duplicate_of: str | None = None
    response: str | None = None
    at: datetime | None = None


def _stored(event_id: str, contribution: Document | None, content_hash: str) -> SubmissionStatus:
    if contribution is None:  # the submission document is written with its contribution
        return SubmissionStatus(event_id=event_id, status="accepted", contribution_id=content_hash)
    copy_of = contribution.get("near_copy_of")
    return SubmissionStatus(
        event_id=event_id,
        status="flagged" if copy_of else "accepted",
        campaign_id=contribution.get("campaign_id"),
        contribution_id=content_hash,
        reason=NEAR_DUPLICATE if copy_of else None,
        duplicate_of=copy_of,
        response=contribution.get("response"),
        at=contribution.get("stored_at"),
    )


def _owns(event_id: str, contribution: Document | None) -> bool:
    """A copy's submission is recorded too, but the contribution is the first sender's: the
    copy's fate is its rejection."""
    return contribution is None or contribution.get("event_id") == event_id


def _rejected(doc: Document) -> SubmissionStatus:
    """A refusal, or the note selection makes when it flags a stored text as a near-copy."""
    return SubmissionStatus(
        event_id=str(doc.get("submission_event_id") or doc["_id"]),
        status="flagged" if doc.get("reason") == NEAR_DUPLICATE else "rejected",
        campaign_id=doc.get("campaign_id"),
        reason=doc.get("reason"),
        detail=doc.get("detail"),
        duplicate_of=doc.get("duplicate_of"),
        at=doc.get("recorded_at"),
    )


class SubmissionReads:
    def __init__(self, db: Database) -> None:
        self._submissions = db[SUBMISSIONS]
        self._contributions = db[CONTRIBUTIONS]
        self._rejections = db[REJECTIONS]

    async def status(self, contributor_id: str, event_id: str) -> SubmissionStatus:
        """`pending` until intake has stored or refused it (or for another's event id)."""
        found = await self._submissions.find_one(
            {"_id": event_id, "contributor_id": contributor_id}
        )
        if found is not None:
            contribution = await self._contributions.find_one({"_id": found["content_hash"]})
            if _owns(event_id, contribution):
                return _stored(event_id, contribution, found["content_hash"])
        refused = await self._rejections.find_one(
            {"submission_event_id": event_id, "contributor_id": contributor_id}
        )
        if refused is not None:
            return _rejected(refused)
        return SubmissionStatus(event_id=event_id, status="pending")

    async def of_contributor(self, contributor_id: str, limit: int) -> list[SubmissionStatus]:
        """Newest first: stored ones and refusals together."""
        out = [_rejected(doc) async for doc in self._rejections.find(
            {"contributor_id": contributor_id}).sort("recorded_at", -1).limit(limit)]  # fmt: skip
        async for doc in self._submissions.find({"contributor_id": contributor_id}).limit(limit):
            contribution = await self._contributions.find_one({"_id": doc["content_hash"]})
            if _owns(str(doc["_id"]), contribution):
                out.append(_stored(str(doc["_id"]), contribution, str(doc["content_hash"])))
        # A flagged text has both records (stored, then flagged): show it once, flagged.
        flagged = {s.event_id for s in out if s.status == "flagged"}
        out = [s for s in out if s.status != "accepted" or s.event_id not in flagged]
        oldest = datetime.min.replace(tzinfo=None)
        out.sort(key=lambda s: s.at.replace(tzinfo=None) if s.at else oldest, reverse=True)
        return out[:limit]
