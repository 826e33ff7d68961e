"""The contributor web app: wiring only. Pages are rendered on the server from the gateway
and the read API (never Kafka or MongoDB); a little script (static/app.js) keeps the balance
live by polling a JSON view of it, which answers 304 while nothing changed."""

# No `from __future__ import annotations`: FastAPI must see the closures' real annotations.

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import yaml
from fastapi import FastAPI, Form, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from crowdsft.adapters.probes import http_answers
from crowdsft.auth import is_operator_token
from crowdsft.client import (
    CampaignsClient,
    Feedback,
    GatewayClient,
    OperatorClient,
    OperatorReads,
    ReadAs,
    ServiceError,
)
from crowdsft.contracts.feedback import (
    MAX_CORRECTION_CHARS,
    MAX_PROMPT_CHARS,
    MAX_RESPONSE_CHARS,
    RATING_MAX,
    RATING_MIN,
)
from crowdsft.settings import Settings, load_settings
from services.http_edges import guard_edges, secure_headers, serve
from services.http_probes import observe
from services.web.charts import line_chart
from services.web.session import Visitor, csrf_ok, forget, keep, visitor

HERE = Path(__file__).parent
# Strict: only this site's own script and style, no inline code, no framing, forms post here.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
LIMITS = {
    "prompt": MAX_PROMPT_CHARS,
    "response": MAX_RESPONSE_CHARS,
    "correction": MAX_CORRECTION_CHARS,
    "rating": (RATING_MIN, RATING_MAX),
}


UNAVAILABLE = "The crowdsft services do not answer just now. Try again in a minute."


class Page(Exception):
    """An error state shown as a page: what went wrong and what to do."""

    def __init__(self, status_code: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code, self.title, self.detail = status_code, title, detail


def create_app(settings: Settings) -> FastAPI:
    templates = Jinja2Templates(directory=HERE / "templates")
    gateway_url, api_url = settings.web_gateway_url, settings.web_balances_url
    secure = settings.web_secure_cookies

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with CampaignsClient(api_url, timeout_s=5) as public:
            app.state.public = public
            yield

    app = FastAPI(
        title="crowdsft web",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    guard_edges(app, settings.http_max_body_bytes)
    secure_headers(app, settings, POLICY)
    observe(app, "web", settings, lambda a: {
        "gateway": http_answers(f"{gateway_url}/livez"), "api": http_answers(f"{api_url}/livez")
    })  # fmt: skip
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def who(request: Request) -> Visitor:
        return visitor(request, settings.gateway_operator_token_sha256)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        me = who(request)
        page = templates.TemplateResponse(
            request, name, {"visitor": me, "limits": LIMITS, **context}, status_code=status_code
        )
        keep(page, me, secure)
        return page

    @app.exception_handler(Page)
    async def page_error(request: Request, exc: Page) -> Response:
        return render(request, "error.html", exc.status_code, title=exc.title, detail=exc.detail)

    async def call(work: Callable[[], Awaitable[Any]]) -> Any:
        """A service's answer, or the page that says why there is none."""
        try:
            return await work()
        except httpx.TransportError:
            raise Page(503, "Service unavailable", UNAVAILABLE) from None
        except ServiceError as exc:
            if exc.status_code == 401:
                raise Page(
                    401, "Signed out", "Your token is not valid (or no longer). Sign in again."
                ) from None
            if exc.status_code == 404:
                raise Page(404, "Not found", str(exc.reason)) from None
            if exc.status_code == 503:
                raise Page(
                    503,
                    "Service unavailable",
                    "The store or the broker is down; try again shortly.",
                ) from None
            raise Page(exc.status_code, "Refused", str(exc.reason)) from None

    def public(request: Request) -> CampaignsClient:
        client = request.app.state.public
        assert isinstance(client, CampaignsClient)
        return client

    async def contributor(request: Request) -> tuple[Visitor, dict[str, Any]]:
        me = who(request)
        if not me.token or me.operator:
            raise Page(401, "Sign in", "Sign in with your contributor token to see this page.")
        async with ReadAs(api_url, me.token, timeout_s=5) as reads:
            return me, await call(reads.me)

    def require_operator(request: Request) -> Visitor:
        me = who(request)
        if not me.operator:
            raise Page(401, "Operators only", "Sign in with the operator token.")
        return me

    async def dead_letters(me: Visitor, campaign_id: str | None = None) -> dict[str, Any]:
        async with OperatorReads(api_url, me.token, timeout_s=5) as reads:
            found: dict[str, Any] = await call(lambda: reads.dead_letters(campaign_id, limit=10))
            return found

    def check_form(request: Request, csrf: str | None) -> Visitor:
        me = who(request)
        if not csrf_ok(me, csrf, request):
            raise Page(
                403,
                "Form expired",
                "This form was not sent from this page. Reload the page and send it again.",
            )
        return me

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        found = await call(public(request).campaigns)
        return render(request, "campaigns.html", campaigns=found)

    @app.get("/signin", response_class=HTMLResponse)
    async def signin_form(request: Request) -> Response:
        return render(request, "signin.html")

    @app.post("/signin", response_class=HTMLResponse)
    async def signin(
        request: Request,
        token: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str | None, Form()] = None,
    ) -> Response:
        me = check_form(request, csrf)
        token = token.strip()
        if not is_operator_token(token, settings.gateway_operator_token_sha256):
            async with ReadAs(api_url, token, timeout_s=5) as reads:
                try:
                    await reads.me()
                except ServiceError as exc:
                    if exc.status_code in (401, 429):
                        return render(request, "signin.html", 401, error="That token is not valid.")
                    raise Page(503, "Service unavailable", str(exc)) from None
                except httpx.TransportError:
                    raise Page(
                        503, "Service unavailable", "The read API does not answer."
                    ) from None
        done = RedirectResponse(
            "/operator"
            if is_operator_token(token, settings.gateway_operator_token_sha256)
            else "/me",
            status.HTTP_303_SEE_OTHER,
        )
        keep(done, me, secure, token=token)
        return done

    @app.post("/signout")
    async def signout(request: Request, csrf: Annotated[str | None, Form()] = None) -> Response:
        check_form(request, csrf)
        done = RedirectResponse("/", status.HTTP_303_SEE_OTHER)
        forget(done)
        return done

    @app.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
    async def campaign(request: Request, campaign_id: str) -> Response:
        client = public(request)
        found = await call(lambda: client.campaign(campaign_id))
        samples = await call(lambda: client.samples(campaign_id)) if found.get("state") else []
        return render(
            request,
            "campaign.html",
            campaign=found,
            samples=samples,
            prompts=prompts_of(found),
            sent=request.query_params.get("sent"),
        )

    @app.post("/campaigns/{campaign_id}/feedback")
    async def submit(
        request: Request,
        campaign_id: str,
        prompt: Annotated[str, Form(max_length=MAX_PROMPT_CHARS)],
        response: Annotated[str, Form(max_length=MAX_RESPONSE_CHARS)],
        rating: Annotated[str | None, Form()] = None,
        correction: Annotated[str | None, Form(max_length=MAX_CORRECTION_CHARS)] = None,
        csrf: Annotated[str | None, Form()] = None,
    ) -> Response:
        me = check_form(request, csrf)
        if not me.token or me.operator:
            raise Page(401, "Sign in", "Sign in with your contributor token to submit.")
        feedback = Feedback(
            campaign_id, prompt, response, int(rating) if rating else None, correction or None
        )
        async with GatewayClient(gateway_url, me.token, timeout_s=5) as gateway:
            event_id = await call(lambda: gateway.submit(feedback))
        return RedirectResponse(f"/me/submissions?sent={event_id}", status.HTTP_303_SEE_OTHER)

    @app.get("/me/submissions", response_class=HTMLResponse)
    async def my_submissions(request: Request) -> Response:
        me, profile = await contributor(request)
        async with ReadAs(api_url, me.token, timeout_s=5) as reads:
            found = await call(lambda: reads.submissions(profile["contributor_id"]))
        return render(
            request,
            "submissions.html",
            me=profile,
            submissions=found,
            sent=request.query_params.get("sent"),
        )

    async def balance_view(request: Request, campaign_id: str | None) -> dict[str, Any]:
        me, profile = await contributor(request)
        cid = profile["contributor_id"]
        async with ReadAs(api_url, me.token, timeout_s=5) as reads:
            summary = await call(lambda: reads.contributor(cid, campaign_id))
            ledger = await call(lambda: reads.ledger(cid, campaign_id, 50))
        shapley = None
        if campaign_id:
            values = await call(lambda: public(request).shapley(campaign_id))
            shapley = shapley_of(values, cid)
        return {
            "me": profile,
            "summary": summary,
            "ledger": ledger,
            "shapley": shapley,
            "campaign_id": campaign_id,
        }

    @app.get("/me", response_class=HTMLResponse)
    async def my_balance(request: Request, campaign: str | None = None) -> Response:
        view = await balance_view(request, campaign)
        return render(request, "me.html", **view)

    @app.get("/me/live.json")
    async def my_balance_live(request: Request, campaign: str | None = None) -> Response:
        """The balance as JSON for the page's script; 304 while it has not changed."""
        view = await balance_view(request, campaign)
        body = {
            "balance": view["summary"]["balance"],
            "rank": view["summary"]["rank"],
            "contributions": view["summary"]["contributions"],
            "shapley": view["shapley"],
            "ledger": len(view["ledger"]),
        }
        tag = '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16] + '"'
        if request.headers.get("if-none-match") == tag:
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag})
        return JSONResponse(body, headers={"ETag": tag, "Cache-Control": "no-cache"})

    @app.get("/leaderboard", response_class=HTMLResponse)
    async def leaderboard(request: Request, campaign: str | None = None) -> Response:
        client = public(request)
        async with ReadAs(api_url, None, timeout_s=5) as reads:
            entries = await call(lambda: reads.leaderboard(campaign, 50))
        shapley = await call(lambda: client.shapley(campaign)) if campaign else None
        rounds = await call(lambda: client.rounds(campaign)) if campaign else []
        for entry in entries:
            entry["shapley"] = shapley_of(shapley, entry["contributor_id"])
        title = f"best candidate's distance to the target by round, {campaign}"
        chart = line_chart([r.get("best_distance") for r in rounds], title)
        return render(
            request,
            "leaderboard.html",
            entries=entries,
            campaign_id=campaign,
            chart=chart,
            campaigns=await call(client.campaigns),
            valuation=(shapley or {}).get("valuation"),
        )

    @app.get("/operator", response_class=HTMLResponse)
    async def operator(request: Request) -> Response:
        me = require_operator(request)
        found = await call(public(request).campaigns)
        return render(
            request,
            "operator.html",
            campaigns=found,
            letters=await dead_letters(me),
            done=request.query_params.get("done"),
        )

    @app.post("/operator/campaigns")
    async def create_campaign(
        request: Request,
        spec: Annotated[str, Form(max_length=500_000)],
        csrf: Annotated[str | None, Form()] = None,
    ) -> Response:
        me = check_form(request, csrf)
        require_operator(request)
        try:
            parsed = yaml.safe_load(spec)
        except yaml.YAMLError as exc:
            raise Page(422, "Not a spec", f"The spec is not YAML or JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise Page(422, "Not a spec", "A campaign spec is a mapping of settings.")
        async with OperatorClient(gateway_url, me.token, timeout_s=10) as gateway:
            created = await call(lambda: gateway.create_campaign(parsed))
        return RedirectResponse(
            f"/operator/campaigns/{created}?done=created", status.HTTP_303_SEE_OTHER
        )

    @app.get("/operator/campaigns/{campaign_id}", response_class=HTMLResponse)
    async def operator_campaign(request: Request, campaign_id: str) -> Response:
        me = require_operator(request)
        client = public(request)
        found = await call(lambda: client.campaign(campaign_id))
        rounds = await call(lambda: client.rounds(campaign_id)) if found.get("state") else []
        models = await call(lambda: client.lineage(campaign_id)) if found.get("state") else []
        return render(
            request,
            "operator_campaign.html",
            campaign=found,
            rounds=rounds,
            models=models,
            letters=await dead_letters(me, campaign_id),
            done=request.query_params.get("done"),
        )

    @app.post("/operator/campaigns/{campaign_id}/rounds")
    async def start_round(
        request: Request, campaign_id: str, csrf: Annotated[str | None, Form()] = None
    ) -> Response:
        me = check_form(request, csrf)
        require_operator(request)
        async with OperatorClient(gateway_url, me.token, timeout_s=10) as gateway:
            index = await call(lambda: gateway.start_round(campaign_id))
        return RedirectResponse(
            f"/operator/campaigns/{campaign_id}?done=round-{index}", status.HTTP_303_SEE_OTHER
        )

    return app


def prompts_of(campaign: dict[str, Any]) -> list[str]:
    """What a contributor is asked to answer: a lora campaign's prompts, else a free prompt."""
    backend = (campaign.get("spec") or {}).get("backend") or {}
    llm = backend.get("llm") or {}
    return list(llm.get("eval_prompts") or [])


def shapley_of(values: dict[str, Any] | None, contributor_id: str) -> dict[str, float] | None:
    if not values:
        return None
    for entry in values.get("values", []):
        if entry.get("contributor_id") == contributor_id:
            return {"value": entry["value"], "std_error": entry["std_error"]}
    return None


def main() -> None:
    settings = load_settings()
    serve(create_app(settings), settings, settings.web_port)
