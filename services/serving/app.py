"""Serving: a campaign's current model behind an OpenAI-compatible chat API.

`POST /v1/chat/completions` (`model`: a campaign id, for its current winner, or a model id;
`stream: true` answers with server-sent events) and `GET /v1/models`. Any registered
contributor's token, or the operator's, may ask. Each replica follows `round.decided` (no
consumer group: every replica sees every decision) to load a new winner before it is asked
for; the campaign's stored state decides which model answers, so a missed event only costs
the first request a load."""

# No `from __future__ import annotations`: FastAPI must see the closures' real annotations.

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from crowdsft.adapters import mongo
from crowdsft.adapters.consuming import header_tolerant_parser, raw_decoder
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.adapters.kafka import make_broker
from crowdsft.adapters.probes import broker_answers, store_answers
from crowdsft.adapters.service import wait_for_broker
from crowdsft.auth import is_operator_token
from crowdsft.contracts import RoundDecided, topics
from crowdsft.domain.backends import load_plugins
from crowdsft.llm_runtime.sft import chat_of
from crowdsft.settings import Settings, load_settings
from services.http_auth import bearer_scheme, contributor_store, unauthorized
from services.http_edges import anonymous_limiter, guard_edges, serve
from services.http_probes import observe
from services.serving.batcher import ChatBatcher, ChatJob, Piece
from services.serving.models import ServedModels, UnknownModel

log = structlog.get_logger()
CLIENT_ID = "crowdsft-serving"


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=32_000)


class ChatRequest(BaseModel):
    """The OpenAI fields this server honours; others the official client sends are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    n: int = Field(1, ge=1, le=1, description="One answer per request.")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "crowdsft"
    current_model_id: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """A contributor's token or the operator's; 401 otherwise."""
    if credentials is not None:
        token = credentials.credentials
        if is_operator_token(token, request.app.state.operator_token_sha256):
            return "operator"
        found = await contributor_store(request).find_by_token(token)
        if found is not None:
            return found.contributor_id
    raise unauthorized(request)


Caller = Annotated[str, Depends(caller)]


def create_app(settings: Settings) -> FastAPI:
    load_plugins(settings.backend_modules)
    broker = make_broker(settings, client_id=CLIENT_ID)
    batcher = ChatBatcher(settings.serving_batch_wait_ms)
    state: dict[str, ServedModels] = {}

    @broker.subscriber(topics.ROUND_DECIDED, auto_offset_reset="latest",
                       parser=header_tolerant_parser, decoder=raw_decoder)  # fmt: skip
    async def on_round_decided(body: bytes) -> None:
        try:
            decided = RoundDecided.model_validate_json(body)
        except ValueError:
            return  # not ours to judge: selection's consumers dead-letter bad records
        if decided.winner_model_id is not None and "models" in state:
            await state["models"].warm(decided.campaign_id)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mongo.opened(settings, settings.http_store_timeout_ms) as db:
            await wait_for_broker(settings)
            app.state.db = db
            state["models"] = app.state.models = ServedModels(db, settings)
            app.state.contributors = ContributorStore(db, settings.http_token_cache_s)
            app.state.anonymous_limiter = anonymous_limiter(settings)
            app.state.operator_token_sha256 = settings.gateway_operator_token_sha256
            batcher.start()
            await broker.start()
            try:
                yield
            finally:
                await broker.stop()
                await batcher.stop()

    app = FastAPI(title="crowdsft serving", version="1", lifespan=lifespan)
    guard_edges(app, settings.http_max_body_bytes)
    observe(app, "serving", settings, lambda a: {
        "store": store_answers(a.state.db), "broker": broker_answers(broker)
    })  # fmt: skip

    def models(request: Request) -> ServedModels:
        served = request.app.state.models
        assert isinstance(served, ServedModels)
        return served

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def list_models(request: Request, _: Caller) -> ModelList:
        """Every campaign that trains a language model, with the model answering for it."""
        served = models(request)
        cards = []
        for campaign_id in await served.campaigns():
            resolved = await served.resolve(campaign_id)
            cards.append(ModelCard(id=campaign_id, created=0, current_model_id=resolved.model_id))
        return ModelList(data=cards)

    @app.post(
        "/v1/chat/completions",
        responses={404: {"description": "No such campaign or model."}},
        response_model=None,
    )
    async def chat(request: Request, body: ChatRequest, _: Caller) -> Any:
        try:
            loaded = await models(request).load(body.model)
        except UnknownModel as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        limit = body.max_completion_tokens or body.max_tokens or settings.serving_max_tokens
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        messages = [m.model_dump() for m in body.messages]
        job = ChatJob(
            loaded=loaded,
            chat=chat_of(loaded.tokenizer, messages),
            max_tokens=min(limit, settings.serving_max_tokens),
            temperature=body.temperature,
            top_p=body.top_p,
            stop=tuple(s for s in stop if s),
            seed=body.seed,
        )
        prompt_tokens = len(loaded.tokenizer(job.chat, add_special_tokens=False)["input_ids"])
        answer_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        head = {"id": answer_id, "created": created, "model": loaded.model_id}
        pieces = batcher.answer(job)
        if body.stream:
            return StreamingResponse(stream(head, pieces), media_type="text/event-stream")
        text, last = "", Piece()
        async for piece in pieces:
            text, last = text + piece.text, piece
        return {
            **head,
            "object": "chat.completion",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": last.finish_reason,
            }],
            "usage": usage(prompt_tokens, last.completion_tokens),
        }  # fmt: skip

    return app


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip


async def stream(head: dict[str, Any], pieces: AsyncIterator[Piece]) -> AsyncIterator[bytes]:
    """Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`."""

    def event(delta: dict[str, str], finish_reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        chunk = {**head, "object": "chat.completion.chunk", "choices": [choice]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    yield event({"role": "assistant", "content": ""}, None)
    async for piece in pieces:
        if piece.text:
            yield event({"content": piece.text}, None)
        if piece.finish_reason is not None:
            yield event({}, piece.finish_reason)
    yield b"data: [DONE]\n\n"


def main() -> None:
    settings = load_settings()
    serve(create_app(settings), settings, settings.serving_port)
