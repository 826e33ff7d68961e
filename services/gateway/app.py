"""HTTP gateway: wiring only. Authenticates, rate-limits and publishes feedback to Kafka.

Whether the campaign exists is intake's decision, made downstream; the gateway checks only
who is submitting, how often, and that the event is well formed. The rate limit lives in
this process: with several replicas, each enforces it separately.
"""

# No `from __future__ import annotations`: FastAPI must see the closures' real annotations.

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import Contributor, ContributorStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import announcer, make_broker
from crowdsft.adapters.metrics import RATE_LIMIT_REFUSALS
from crowdsft.adapters.probes import broker_answers, store_answers
from crowdsft.adapters.rate_limit_store import LocalRateLimit, RateLimit, SharedRateLimit
from crowdsft.adapters.service import wait_for_broker
from crowdsft.contracts import FeedbackSubmitted, StartRound, new_event_id, utc_now
from crowdsft.contracts.envelope import ID_PATTERN, SaneDatetime
from crowdsft.contracts.feedback import (
    MAX_CORRECTION_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_PROMPT_CHARS,
    MAX_RESPONSE_CHARS,
    RATING_MAX,
    RATING_MIN,
)
from crowdsft.domain.backends import load_plugins
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.logs import configure_logging
from crowdsft.ratelimit import RateLimiter, Windows
from crowdsft.settings import Settings, load_settings
from services.http_auth import CurrentContributor, Operator, require_self
from services.http_edges import BrokerTimeout, anonymous_limiter, guard_edges, secure_headers, serve
from services.http_probes import observe

CLIENT_ID = "crowdsft-gateway"
PRODUCER = "gateway"
SHUTDOWN_S = 5.0


class FeedbackRequest(BaseModel):
    """The same limits as `FeedbackSubmitted`, so the docs show them; the event re-checks."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    campaign_id: str = Field(pattern=ID_PATTERN)
    contributor_id: str | None = Field(
        None, pattern=ID_PATTERN, description="Defaults to the token's contributor."
    )
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    response: str = Field(min_length=1, max_length=MAX_RESPONSE_CHARS)
    rating: int | None = Field(None, ge=RATING_MIN, le=RATING_MAX)
    correction: str | None = Field(None, min_length=1, max_length=MAX_CORRECTION_CHARS)
    client_timestamp: SaneDatetime | None = Field(
        None, description="Defaults to now; at most a day ahead, not before 2000."
    )
    event_id: str | None = Field(
        None, pattern=ID_PATTERN, description="Choose one to make retries safe; else a new uuid4."
    )


class FeedbackReceipt(BaseModel):
    event_id: str


class CampaignReceipt(BaseModel):
    campaign_id: str


class RoundReceipt(BaseModel):
    campaign_id: str
    round_index: int
    event_id: str


CampaignId = Annotated[str, Path(pattern=ID_PATTERN)]


def contributor_rate_limit(settings: Settings, db: mongo.Database) -> RateLimit:
    per_minute, burst = settings.gateway_rate_limit_per_minute, settings.gateway_rate_limit_burst
    if settings.gateway_rate_limit_shared:
        sync_s = settings.gateway_rate_limit_sync_ms / 1000
        return SharedRateLimit(db, Windows(per_minute, burst), sync_s=sync_s)
    return LocalRateLimit(RateLimiter(per_minute, burst))


def create_app(settings: Settings) -> FastAPI:
    load_plugins(settings.backend_modules)
    broker = make_broker(settings, client_id=CLIENT_ID)
    producer = FeedbackProducer(broker)
    publish = announcer(broker)
    publish_timeout_s = settings.gateway_publish_timeout_ms / 1000

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mongo.opened(settings, settings.http_store_timeout_ms) as db:
            await wait_for_broker(settings)
            app.state.db = db
            app.state.anonymous_limiter = anonymous_limiter(settings)
            app.state.rate_limit = contributor_rate_limit(settings, db)
            app.state.contributors = ContributorStore(db, settings.http_token_cache_s)
            app.state.campaigns = CampaignStore(db)
            app.state.operator_token_sha256 = settings.gateway_operator_token_sha256
            await broker.start()
            try:
                yield
            finally:
                # Bounded: sends still pending were answered 503 and will be retried.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(app.state.rate_limit.close(), SHUTDOWN_S)
                    await asyncio.wait_for(broker.stop(), SHUTDOWN_S)

    async def rate_limited(request: Request, contributor: CurrentContributor) -> Contributor:
        """Before body validation, so invalid requests count too; async so it runs on the
        event loop, never in a thread pool that would race on the limiter's buckets."""
        rate_limit: RateLimit = request.app.state.rate_limit
        decision = await rate_limit.acquire(contributor.contributor_id)
        if not decision.allowed:
            RATE_LIMIT_REFUSALS.labels("contributor").inc()
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                "rate limit exceeded",
                headers={"Retry-After": str(max(1, math.ceil(decision.retry_after_s)))},
            )
        return contributor

    # FastAPI's own telemetry off: `observe` traces requests where the process traces, and
    # the native one asks the environment for a provider on every request (7% of the time).
    off = TelemetryConfig(tracing=False, metrics=False, logs=False)
    app = FastAPI(title="crowdsft gateway", version="1", lifespan=lifespan, telemetry=off)
    guard_edges(app, settings.http_max_body_bytes)
    secure_headers(app, settings)
    observe(app, PRODUCER, settings, lambda a: {
        "store": store_answers(a.state.db), "broker": broker_answers(broker)
    })  # fmt: skip

    @app.post(
        "/v1/feedback",
        status_code=status.HTTP_202_ACCEPTED,
        responses={
            401: {"description": "Missing or unknown bearer token."},
            403: {"description": "The token belongs to another contributor."},
            413: {"description": "The event would exceed 64 KiB."},
            429: {"description": "Rate limit exceeded; see Retry-After."},
            503: {"description": "The broker or the store is down; see Retry-After."},
        },
    )
    async def submit_feedback(
        body: FeedbackRequest, contributor: Annotated[Contributor, Depends(rate_limited)]
    ) -> FeedbackReceipt:
        """Publish to `crowdsft.feedback.submitted`; 202 because intake stores it later."""
        contributor_id = body.contributor_id or contributor.contributor_id
        require_self(contributor, contributor_id)
        fields = body.model_dump(exclude={"event_id", "contributor_id", "client_timestamp"})
        try:
            event = FeedbackSubmitted(
                **fields,
                event_id=body.event_id or new_event_id(),
                producer=PRODUCER,
                contributor_id=contributor_id,
                client_timestamp=body.client_timestamp or utc_now(),
            )
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        if len(event.model_dump_json().encode()) > MAX_MESSAGE_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "feedback exceeds 64 KiB")
        try:
            [event_id] = await asyncio.wait_for(producer.submit([event]), publish_timeout_s)
        except TimeoutError as exc:  # not sent: the client retries with the same event id
            raise BrokerTimeout from exc
        return FeedbackReceipt(event_id=event_id)

    @app.post(
        "/v1/campaigns",
        status_code=status.HTTP_201_CREATED,
        responses={
            401: {"description": "Missing or wrong operator token."},
            409: {"description": "A campaign with this id exists."},
        },
    )
    async def create_campaign(spec: CampaignSpec, _: Operator, request: Request) -> CampaignReceipt:
        """Create a campaign that runs rounds; its settings are validated against the engine."""
        if not await request.app.state.campaigns.create_with_spec(spec):
            raise HTTPException(status.HTTP_409_CONFLICT, f"campaign {spec.campaign_id} exists")
        return CampaignReceipt(campaign_id=spec.campaign_id)

    @app.post(
        "/v1/campaigns/{campaign_id}/rounds",
        status_code=status.HTTP_202_ACCEPTED,
        responses={
            401: {"description": "Missing or wrong operator token."},
            404: {"description": "No campaign that runs rounds."},
            409: {"description": "The campaign's rounds are all done."},
            503: {"description": "The broker is down; see Retry-After."},
        },
    )
    async def start_round(campaign_id: CampaignId, _: Operator, request: Request) -> RoundReceipt:
        """Ask selection to open the campaign's next round (a manual policy's step); asking
        twice for the same round is one command."""
        campaigns: CampaignStore = request.app.state.campaigns
        spec, state = await campaigns.spec(campaign_id), await campaigns.state(campaign_id)
        if spec is None or state is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no campaign that runs rounds")
        if state.next_round >= spec.policy.max_rounds:
            raise HTTPException(status.HTTP_409_CONFLICT, "the campaign's rounds are all done")
        command = StartRound.asking(campaign_id, state.next_round, producer=PRODUCER)
        try:
            await asyncio.wait_for(publish([(campaign_id, command)]), publish_timeout_s)
        except TimeoutError as exc:
            raise BrokerTimeout from exc
        return RoundReceipt(campaign_id=campaign_id, round_index=state.next_round,
                            event_id=command.event_id)  # fmt: skip

    return app


def app_from_environment() -> FastAPI:
    """What each uvicorn worker process builds (settings from its environment)."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)


def main() -> None:
    settings = load_settings()
    serve(f"{__name__}:app_from_environment", settings, settings.gateway_port,
          workers=settings.gateway_workers)  # fmt: skip
