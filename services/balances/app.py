"""Balances API: wiring only. Reads what scoring wrote; the leaderboard and campaigns (spec,
rounds, lineage, Shapley values) are public, a ledger is shown only to its own contributor."""

# No `from __future__ import annotations`: FastAPI must see the closures' real annotations.

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Path, Query, Request, status
from pydantic import BaseModel
from pymongo.errors import PyMongoError

from crowdsft.adapters import mongo
from crowdsft.adapters.balance_store import BalanceStore
from crowdsft.adapters.campaign_reads import (
    CampaignReads,
    CampaignSummary,
    ModelEntry,
    RoundSummary,
    ShapleySummary,
)
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.contracts.envelope import ID_PATTERN
from crowdsft.domain.backends import load_plugins
from crowdsft.domain.ledger import LedgerEntry
from crowdsft.settings import Settings, load_settings
from services.http_auth import CurrentContributor, contributor_store, require_self
from services.http_edges import anonymous_limiter, guard_edges

ContributorId = Annotated[str, Path(pattern=ID_PATTERN)]
CampaignId = Annotated[str, Path(pattern=ID_PATTERN)]
CampaignFilter = Annotated[
    str | None, Query(alias="campaign", pattern=ID_PATTERN, description="Omit for all campaigns.")
]


class ContributorSummary(BaseModel):
    contributor_id: str
    campaign_id: str | None
    balance: float
    contributions: int
    rank: int


class LeaderboardEntry(BaseModel):
    rank: int
    contributor_id: str
    points: float


class Leaderboard(BaseModel):
    campaign_id: str | None
    entries: list[LeaderboardEntry]


class Ledger(BaseModel):
    contributor_id: str
    campaign_id: str | None
    entries: list[LedgerEntry]


class Health(BaseModel):
    status: str


class Rounds(BaseModel):
    campaign_id: str
    offset: int
    rounds: list[RoundSummary]


class Lineage(BaseModel):
    campaign_id: str
    models: list[ModelEntry]


MAX_OFFSET = 1_000_000_000  # far past any campaign's rounds, and inside what a store can skip


def create_app(settings: Settings) -> FastAPI:
    load_plugins(settings.backend_modules)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Balances and ledger exist with their unique indexes before anything scores.
        async with mongo.opened(settings, settings.http_store_timeout_ms) as db:
            app.state.db = db
            app.state.anonymous_limiter = anonymous_limiter(settings)
            app.state.contributors = ContributorStore(db)
            app.state.balances = BalanceStore(db)
            app.state.campaigns = CampaignReads(db)
            yield

    app = FastAPI(title="crowdsft balances", version="1", lifespan=lifespan)
    guard_edges(app, settings.http_max_body_bytes)

    def balances(request: Request) -> BalanceStore:
        store = request.app.state.balances
        assert isinstance(store, BalanceStore)
        return store

    def campaigns(request: Request) -> CampaignReads:
        reads = request.app.state.campaigns
        assert isinstance(reads, CampaignReads)
        return reads

    async def known_campaign(request: Request, campaign_id: str) -> None:
        if not await campaigns(request).exists(campaign_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown campaign")

    @app.get("/healthz", responses={503: {"description": "MongoDB does not answer."}})
    async def healthz(request: Request) -> Health:
        """Healthy only while MongoDB answers: every endpoint here needs it."""
        try:
            await request.app.state.db.command("ping")
        except PyMongoError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "mongo unreachable") from exc
        return Health(status="ok")

    @app.get(
        "/v1/contributors/{contributor_id}",
        responses={404: {"description": "Never registered, paid or seen."}},
    )
    async def contributor(
        request: Request, contributor_id: ContributorId, campaign: CampaignFilter = None
    ) -> ContributorSummary:
        """Balance, contribution count and rank (1 + contributors with strictly more points)."""
        store = balances(request)
        known = await contributor_store(request).exists(contributor_id)
        if not known and not await store.has_activity(contributor_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown contributor")
        count = await store.contribution_count(contributor_id, campaign)
        points = await store.balance(contributor_id, campaign)
        return ContributorSummary(
            contributor_id=contributor_id,
            campaign_id=campaign,
            balance=points,
            contributions=count,
            rank=await store.rank(points, campaign),
        )

    @app.get("/v1/leaderboard")
    async def leaderboard(
        request: Request,
        campaign: CampaignFilter = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    ) -> Leaderboard:
        """Public: top contributors by points, ties share a rank and are ordered by id."""
        standings = await balances(request).leaderboard(campaign, limit)
        entries = [LeaderboardEntry(**vars(standing)) for standing in standings]
        return Leaderboard(campaign_id=campaign, entries=entries)

    @app.get(
        "/v1/contributors/{contributor_id}/ledger",
        responses={
            401: {"description": "Missing or unknown bearer token."},
            403: {"description": "The token belongs to another contributor."},
        },
    )
    async def ledger(
        request: Request,
        contributor_id: ContributorId,
        caller: CurrentContributor,
        campaign: CampaignFilter = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Ledger:
        """Newest first; only the contributor's own token may read it."""
        require_self(caller, contributor_id)
        entries = await balances(request).ledger(contributor_id, campaign, limit)
        return Ledger(
            contributor_id=contributor_id,
            campaign_id=campaign,
            entries=entries,
        )

    unknown_campaign: dict[int | str, dict[str, Any]] = {404: {"description": "No such campaign."}}

    @app.get("/v1/campaigns/{campaign_id}", responses=unknown_campaign)
    async def campaign(request: Request, campaign_id: CampaignId) -> CampaignSummary:
        """Public: the spec and where the rounds stand (both null for feedback-only ones)."""
        found = await campaigns(request).campaign(campaign_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown campaign")
        return found

    @app.get("/v1/campaigns/{campaign_id}/rounds", responses=unknown_campaign)
    async def rounds(
        request: Request,
        campaign_id: CampaignId,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Rounds:
        """Public: rounds oldest first, with their groups and, once decided, the outcome."""
        await known_campaign(request, campaign_id)
        found = await campaigns(request).rounds(campaign_id, limit, offset)
        return Rounds(
            campaign_id=campaign_id,
            offset=offset,
            rounds=found,
        )

    @app.get("/v1/campaigns/{campaign_id}/lineage", responses=unknown_campaign)
    async def lineage(request: Request, campaign_id: CampaignId) -> Lineage:
        """Public: every model, from the base through each round's candidates, with parents."""
        await known_campaign(request, campaign_id)
        found = await campaigns(request).lineage(campaign_id)
        return Lineage(campaign_id=campaign_id, models=found)

    @app.get(
        "/v1/campaigns/{campaign_id}/shapley",
        responses={404: {"description": "No such campaign, or no Shapley values yet."}},
    )
    async def shapley(request: Request, campaign_id: CampaignId) -> ShapleySummary:
        """Public: the latest Shapley values and how well points tracked them, round by round."""
        found = await campaigns(request).shapley(campaign_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no shapley values for this campaign")
        return found

    return app


def main() -> None:
    settings = load_settings()
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.balances_port)
