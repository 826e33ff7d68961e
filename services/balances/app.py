"""Balances API: wiring only. Reads what scoring wrote; the leaderboard and campaigns (spec,
rounds, lineage, Shapley values) are public, a ledger is shown only to its own contributor,
and a campaign's exports (its dataset, a model's adapter) and the dead letters only to
operators."""

# No `from __future__ import annotations`: FastAPI must see the closures' real annotations.

import io
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path as PathLib
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, StringConstraints
from pymongo.errors import PyMongoError

from crowdsft.adapters import mongo
from crowdsft.adapters.artifact_store import ArtifactStore
from crowdsft.adapters.balance_store import BalanceStore
from crowdsft.adapters.campaign_reads import (
    CampaignReads,
    CampaignSummary,
    ModelEntry,
    RoundMembers,
    RoundSummary,
    ShapleySummary,
)
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.adapters.dead_letter_store import DeadLetterStore
from crowdsft.adapters.export_reads import campaign_data, model_lineage
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.probes import store_answers
from crowdsft.adapters.submission_reads import SubmissionReads, SubmissionStatus
from crowdsft.contracts.envelope import ID_PATTERN
from crowdsft.domain.backends import load_plugins
from crowdsft.domain.dataset import Status, rows
from crowdsft.domain.dead_letters import DeadLetter, DeadLetterCount
from crowdsft.domain.ledger import LedgerEntry
from crowdsft.domain.model_card import adapter_keys
from crowdsft.reporting.dataset_files import DatasetFormat, encoded
from crowdsft.settings import Settings, load_settings
from services.http_auth import CurrentContributor, Operator, contributor_store, require_self
from services.http_edges import anonymous_limiter, guard_edges, secure_headers, serve
from services.http_probes import observe

ContributorId = Annotated[str, Path(pattern=ID_PATTERN)]
CampaignId = Annotated[str, Path(pattern=ID_PATTERN)]
ShapleyFilter = Annotated[
    list[Annotated[str, StringConstraints(pattern=ID_PATTERN)]] | None,
    Query(max_length=1_000, description="Only these contributors' values (repeatable)."),
]
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


class Samples(BaseModel):
    campaign_id: str
    model_id: str
    samples: list[str]


class CampaignList(BaseModel):
    campaigns: list[CampaignSummary]


class Me(BaseModel):
    contributor_id: str
    name: str


class Submissions(BaseModel):
    contributor_id: str
    submissions: list[SubmissionStatus]


class DeadLetters(BaseModel):
    campaign_id: str | None
    total: int
    counts: list[DeadLetterCount]
    recent: list[DeadLetter]


class Health(BaseModel):
    status: str


class Rounds(BaseModel):
    campaign_id: str
    offset: int
    rounds: list[RoundSummary]


class Lineage(BaseModel):
    campaign_id: str
    offset: int = 0
    models: list[ModelEntry]


MAX_OFFSET = 1_000_000_000  # far past any campaign's rounds, and inside what a store can skip
PageLimit = Annotated[int, Query(ge=1, le=1000)]  # items per page, for most listings
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]  # items skipped before the page


def create_app(settings: Settings) -> FastAPI:
    load_plugins(settings.backend_modules)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Balances and ledger exist with their unique indexes before anything scores.
        async with mongo.opened(settings, settings.http_store_timeout_ms) as db:
            app.state.db = db
            app.state.anonymous_limiter = anonymous_limiter(settings)
            app.state.contributors = ContributorStore(db, settings.http_token_cache_s)
            app.state.balances = BalanceStore(db)
            app.state.campaigns = CampaignReads(db)
            app.state.operator_token_sha256 = settings.gateway_operator_token_sha256
            yield

    app = FastAPI(title="crowdsft balances", version="1", lifespan=lifespan)
    guard_edges(app, settings.http_max_body_bytes)
    secure_headers(app, settings)
    observe(app, "balances", settings, lambda a: {"store": store_answers(a.state.db)})

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
        limit: PageLimit = 10,
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
        limit: PageLimit = 100,
    ) -> Ledger:
        """Newest first; only the contributor's own token may read it."""
        require_self(caller, contributor_id)
        entries = await balances(request).ledger(contributor_id, campaign, limit)
        return Ledger(
            contributor_id=contributor_id,
            campaign_id=campaign,
            entries=entries,
        )

    own: dict[int | str, dict[str, Any]] = {
        401: {"description": "Missing or unknown bearer token."},
        403: {"description": "The token belongs to another contributor."},
    }

    @app.get("/v1/me", responses=own)
    async def me(caller: CurrentContributor) -> Me:
        """Who the token belongs to: what a sign-in checks."""
        return Me(contributor_id=caller.contributor_id, name=caller.name)

    @app.get("/v1/contributors/{contributor_id}/submissions", responses=own)
    async def submissions(
        request: Request,
        contributor_id: ContributorId,
        caller: CurrentContributor,
        limit: PageLimit = 100,
    ) -> Submissions:
        """Newest first, each stored, flagged as a near-copy, or rejected with its reason."""
        require_self(caller, contributor_id)
        found = await SubmissionReads(request.app.state.db).of_contributor(contributor_id, limit)
        return Submissions(contributor_id=contributor_id, submissions=found)

    @app.get("/v1/submissions/{event_id}", responses=own)
    async def submission(
        request: Request, event_id: Annotated[str, Path(pattern=ID_PATTERN)],
        caller: CurrentContributor,
    ) -> SubmissionStatus:  # fmt: skip
        """What became of one of the caller's submissions (`pending` until intake decides)."""
        reads = SubmissionReads(request.app.state.db)
        return await reads.status(caller.contributor_id, event_id)

    unknown_campaign: dict[int | str, dict[str, Any]] = {404: {"description": "No such campaign."}}

    @app.get("/v1/campaigns")
    async def campaign_list(request: Request, limit: PageLimit = 100) -> CampaignList:
        """Public: campaigns, newest first, with their specs and where their rounds stand."""
        return CampaignList(campaigns=await campaigns(request).listed(limit))

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
        limit: PageLimit = 100,
        offset: Offset = 0,
    ) -> Rounds:
        """Public: rounds oldest first, with their group sizes and, once decided, the outcome
        (who was in each group: the round's members)."""
        await known_campaign(request, campaign_id)
        found = await campaigns(request).rounds(campaign_id, limit, offset)
        return Rounds(
            campaign_id=campaign_id,
            offset=offset,
            rounds=found,
        )

    @app.get("/v1/campaigns/{campaign_id}/rounds/{round_index}/members",
             responses=unknown_campaign)  # fmt: skip
    async def members(
        request: Request,
        campaign_id: CampaignId,
        round_index: Annotated[int, Path(ge=0, le=MAX_OFFSET)],
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1_000,
        offset: Offset = 0,
    ) -> RoundMembers:
        """Public: a round's members in its own order, with their group, points going in
        and contributions, paged (a round may hold 100,000)."""
        found = await campaigns(request).members(campaign_id, round_index, limit, offset)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown campaign or round")
        return found

    @app.get("/v1/campaigns/{campaign_id}/lineage", responses=unknown_campaign)
    async def lineage(
        request: Request,
        campaign_id: CampaignId,
        limit: PageLimit = 100,
        offset: Offset = 0,
    ) -> Lineage:
        """Public: the models, from the base through each round's candidates by group, with
        parents and each candidate's group; paged, `limit` after skipping `offset`."""
        await known_campaign(request, campaign_id)
        found = await campaigns(request).lineage(campaign_id, limit, offset)
        return Lineage(campaign_id=campaign_id, offset=offset, models=found)

    @app.get("/v1/campaigns/{campaign_id}/samples", responses=unknown_campaign)
    async def samples(request: Request, campaign_id: CampaignId) -> Samples:
        """Public: a few answers of the campaign's current model, as training measured it."""
        found = await campaigns(request).campaign(campaign_id)
        if found is None or found.state is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown campaign, or no rounds")
        model_id = found.state.model_id
        measured = await MeasurementStore(request.app.state.db).get([model_id])
        texts = measured[model_id].samples if model_id in measured else []
        return Samples(campaign_id=campaign_id, model_id=model_id, samples=texts)

    @app.get(
        "/v1/campaigns/{campaign_id}/shapley",
        responses={404: {"description": "No such campaign, or no Shapley values yet."}},
    )
    async def shapley(
        request: Request,
        campaign_id: CampaignId,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
        offset: Offset = 0,
        contributor: ShapleyFilter = None,
    ) -> ShapleySummary:
        """Public: the latest Shapley values (a page of them in crowd order, or the named
        contributors' only) and how well points tracked them, round by round."""
        found = await campaigns(request).shapley(campaign_id, offset, limit, contributor)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no shapley values for this campaign")
        return found

    operator_only: dict[int | str, dict[str, Any]] = {
        401: {"description": "Missing or wrong operator token."},
        404: {"description": "No such campaign, or no such model in it."},
    }

    @app.get("/v1/dead-letters", responses={401: operator_only[401]})
    async def dead_letters(
        request: Request,
        _: Operator,
        campaign: CampaignFilter = None,
        limit: Annotated[int, Query(ge=0, le=100)] = 20,
    ) -> DeadLetters:
        """Operators: what the services set aside, counted by reason, and the newest records
        with their bytes. `campaign` keeps those whose original names that campaign."""
        store = DeadLetterStore(request.app.state.db)
        counts = await store.counts(campaign)
        recent = await store.recent(campaign, limit) if limit else []
        total = sum(c.count for c in counts)
        return DeadLetters(campaign_id=campaign, total=total, counts=counts, recent=recent)

    @app.get(
        "/v1/campaigns/{campaign_id}/export",
        responses=operator_only,
        response_class=Response,
    )
    async def export(
        request: Request,
        campaign_id: CampaignId,
        _: Operator,
        format: Annotated[DatasetFormat, Query()] = "jsonl",
        status_: Annotated[
            list[Status], Query(alias="status", description="Rows to keep; repeatable.")
        ] = ["accepted"],  # noqa: B006 - FastAPI copies defaults
        real_ids: Annotated[bool, Query(description="Contributors' ids, not pseudonyms.")] = False,
    ) -> Response:
        """Operators: the campaign's dataset file (the `crowdsft export` rows)."""
        data = await campaign_data(request.app.state.db, campaign_id)
        if data is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown campaign")
        key = None if real_ids else pseudonym_key(settings)
        body = encoded(rows(data, status_, key), format)
        media = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
        return attachment(body, media[format], f"{campaign_id}.{format}")

    @app.get(
        "/v1/campaigns/{campaign_id}/models/{model_id}/adapter",
        responses=operator_only,
        response_class=Response,
    )
    async def adapter(
        request: Request,
        campaign_id: CampaignId,
        model_id: Annotated[str, Path(pattern=ID_PATTERN)],
        _: Operator,
    ) -> Response:
        """Operators: a model's LoRA adapter folder (PEFT format) as a tar."""
        try:
            lineage = await model_lineage(request.app.state.db, campaign_id, model_id)
        except LookupError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such model") from None
        keys = adapter_keys(lineage.chain)
        folder = ArtifactStore(PathLib(settings.artifact_root)).path(keys[-1]) if keys else None
        if folder is None or not folder.is_dir():
            raise HTTPException(status.HTTP_404_NOT_FOUND, "this model has no stored adapter")
        return attachment(tar_of(folder), "application/x-tar", f"{model_id}.tar")

    return app


def attachment(body: bytes, media_type: str, filename: str) -> Response:
    safe = filename.replace(":", "_")
    disposition = {"Content-Disposition": f'attachment; filename="{safe}"'}
    return Response(body, media_type=media_type, headers=disposition)


def tar_of(folder: PathLib) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    return buffer.getvalue()


def pseudonym_key(settings: Settings) -> bytes | None:
    """The configured key; without one the API refuses pseudonymous exports (a fresh key per
    download would give the same contributor a new name each time)."""
    if settings.export_pseudonym_key is None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            "set CROWDSFT_EXPORT_PSEUDONYM_KEY, or ask for real_ids")  # fmt: skip
    return settings.export_pseudonym_key.get_secret_value().encode()


def main() -> None:
    settings = load_settings()
    serve(create_app(settings), settings, settings.balances_port)
