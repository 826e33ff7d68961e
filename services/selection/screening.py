"""Screening accepted feedback for near-copies before it can enter a crowd.

Selection consumes `feedback.accepted`, keyed by campaign, so each campaign's stream reaches
exactly one selection replica at a time: that replica keeps the campaign's band index in
memory (`domain.near_copies.CampaignIndex`) and checks a new text in microseconds, where a
store lookup per band would cost milliseconds. The index is rebuilt from the stored
fingerprints whenever their count shows another replica has written since (a rebalance).
A near-copy stays stored but is flagged, so `of_campaign` leaves it out of every crowd, and
its sender is told on `feedback.rejected` with the original's id.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

from crowdsft.contracts import FeedbackAccepted, FeedbackRejected, RejectionReason, derive_event_id
from crowdsft.domain import near_copies
from crowdsft.domain.near_copies import CampaignIndex, Fingerprint, FlaggedCopy, NearCopy
from crowdsft.domain.ports import Campaigns, FeedbackStore, NearCopies, Publish

PRODUCER = "selection"


def near_copy_rejection(flagged: FlaggedCopy) -> FeedbackRejected:
    verdict = flagged.verdict
    return FeedbackRejected(
        event_id=derive_event_id("feedback.rejected", f"near-copy/{verdict.copy_id}"),
        producer=PRODUCER,
        submission_event_id=flagged.submission_event_id,
        campaign_id=flagged.campaign_id,
        contributor_id=flagged.contributor_id,
        reason=RejectionReason.NEAR_DUPLICATE,
        detail=(
            f"about {verdict.similarity:.0%} the same text as {verdict.original_id}, submitted "
            "earlier: stored, but a near-copy earns nothing"
        ),
        duplicate_of=verdict.original_id,
    )


def fingerprint_of(event: FeedbackAccepted) -> Fingerprint | None:
    if event.near_copy_signature is None or event.submitted_at is None:
        return None
    signature = near_copies.decode(event.near_copy_signature)
    if signature is None:
        return None
    return Fingerprint(event.contribution_id, event.campaign_id, event.submitted_at, signature)


class Screening:
    def __init__(self, store: NearCopies, rejections: FeedbackStore, publish: Publish,
                 threshold: float) -> None:  # fmt: skip
        self._store = store
        self._rejections = rejections
        self._publish = publish
        self._threshold = threshold
        self._indexes: dict[str, CampaignIndex] = {}
        self._versions: dict[str, int] = {}  # the crowd version each index is complete at

    async def screen(self, accepted: list[FeedbackAccepted], version: int | None = None) -> int:
        """Flags the near-copies among these and earlier texts; returns how many. Replay-safe:
        the same events judge the same pairs, and flags and rejections are idempotent.
        `version`: the campaign's crowd version now (a campaign's texts are screened against
        the fingerprints kept in memory while the version is the one this process left)."""
        by_campaign: dict[str, list[Fingerprint]] = defaultdict(list)
        for event in accepted:
            if (fingerprint := fingerprint_of(event)) is not None:
                by_campaign[event.campaign_id].append(fingerprint)
        flagged: list[FlaggedCopy] = []
        for campaign_id, fingerprints in sorted(by_campaign.items()):
            flagged += await self._screen_campaign(campaign_id, fingerprints, version)
        if flagged:
            rejected = [
                (near_copy_rejection(f), f"contribution/{f.verdict.copy_id}") for f in flagged
            ]
            await self._rejections.record_rejections(rejected)
            await self._publish(
                [(f.campaign_id, r) for f, (r, _) in zip(flagged, rejected, strict=True)]
            )
        return len(flagged)

    async def _screen_campaign(
        self, campaign_id: str, fresh: list[Fingerprint], version: int | None
    ) -> list[FlaggedCopy]:
        index = await self._index(campaign_id, version)
        verdicts: dict[str, NearCopy] = {}
        for fingerprint in fresh:
            for verdict in index.add(fingerprint):
                verdicts.setdefault(verdict.copy_id, verdict)
        await self._store.save(fresh)
        return await self._store.flag(list(verdicts.values())) if verdicts else []

    async def _index(self, campaign_id: str, version: int | None) -> CampaignIndex:
        """The campaign's fingerprints, loaded again when another process may have added
        some: its crowd version is not the one this process left (without a version, when
        the stored count differs: a scan of every fingerprint of the campaign)."""
        index = self._indexes.get(campaign_id)
        if version is not None:
            fresh = index is not None and self._versions.get(campaign_id) == version
        else:
            fresh = index is not None and len(index) == await self._store.count(campaign_id)
        if index is None or not fresh:
            index = CampaignIndex(self._threshold, await self._store.known(campaign_id))
            self._indexes[campaign_id] = index
        return index

    def left(self, campaign_id: str, before: int, after: int) -> None:
        """This process moved the crowd's version from `before` to `after`: if nothing else
        moved it meanwhile, its fingerprints stay complete at `after`."""
        if after == before + 1:
            self._versions[campaign_id] = after
        else:
            self._versions.pop(campaign_id, None)


class RoundStarter(Protocol):
    async def start_when_ready(self, campaign_id: str) -> None: ...


class Acceptance:
    """One campaign's batch of accepted feedback, in order: screened for near-copies against
    the fingerprints this process holds (reloaded if the crowd's version moved elsewhere),
    then the crowd's version moved (rounds read the crowd again), then the first round
    started if the auto policy says so."""

    def __init__(self, campaigns: Campaigns, screening: Screening,
                 handler: RoundStarter) -> None:  # fmt: skip
        self._campaigns = campaigns
        self._screening = screening
        self._handler = handler

    async def accept(self, batch: list[FeedbackAccepted]) -> None:
        campaign_id = batch[0].campaign_id
        before = (await self._campaigns.crowd(campaign_id)).version
        await self._screening.screen(batch, before)
        after = await self._campaigns.note_accepted(campaign_id, len(batch))
        self._screening.left(campaign_id, before, after)
        await self._handler.start_when_ready(campaign_id)
