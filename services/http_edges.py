"""What every HTTP service refuses before it does any work, and how it says it is unavailable.

A body over the limit is refused from its Content-Length (or as soon as a chunked body passes
it) before anything parses it or checks a token; a store or broker that does not answer is a
503 with Retry-After within the configured timeout, never a hang.
"""

from __future__ import annotations

import uvicorn
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, WaitQueueTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crowdsft.logs import configure_logging
from crowdsft.ratelimit import RateLimiter
from crowdsft.settings import Settings

RETRY_AFTER_S = 5


def _refusal(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class BodyLimit:
    """Pure ASGI, outermost: counts bytes as they arrive, so memory never holds more."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        detail = f"request body exceeds {self._max_bytes} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max_bytes):
            await _refusal(413, detail)(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self._max_bytes:
                    # Answer now and tell the app the client left: whatever it makes of
                    # that (FastAPI answers 400) is dropped below.
                    refused = True
                    await _refusal(413, detail)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        await self._app(scope, counted, unless_refused)


class DefaultHeaders:
    """Pure ASGI: adds these headers to every answer that does not set them itself (Starlette's
    `@app.middleware("http")` would wrap each request and response in extra tasks and streams,
    a fifth of the gateway's time)."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self._app = app
        self._headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self._headers if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self._app(scope, receive, with_headers)


def _unavailable(what: str) -> JSONResponse:
    return _refusal(503, f"{what} unavailable; try again", {"Retry-After": str(RETRY_AFTER_S)})


async def _store_down(request: Request, exc: Exception) -> JSONResponse:
    return _unavailable("store")


async def _broker_down(request: Request, exc: Exception) -> JSONResponse:
    return _unavailable("broker")


def anonymous_limiter(settings: Settings) -> RateLimiter:
    return RateLimiter(
        settings.anonymous_rate_limit_per_minute, settings.anonymous_rate_limit_burst
    )


API_POLICY = "default-src 'none'; frame-ancestors 'none'"  # JSON only: nothing to load or frame


def secure_headers(app: FastAPI, settings: Settings, policy: str = API_POLICY) -> None:
    """Security headers on every answer, and CORS for the origins the settings allow (none by
    default: the web app calls these services from its server, not from the browser)."""
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    app.add_middleware(DefaultHeaders, headers=headers)

    if settings.http_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http_cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )


def guard_edges(app: FastAPI, max_body_bytes: int) -> None:
    """The body limit and the 503 answers, installed the same way on every HTTP service."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(ConnectionFailure, _store_down)
    app.add_exception_handler(WaitQueueTimeoutError, _store_down)
    app.add_exception_handler(KafkaError, _broker_down)
    app.add_exception_handler(BrokerTimeout, _broker_down)


class BrokerTimeout(Exception):
    """The broker did not take a publish within the gateway's timeout."""


def serve(app: FastAPI | str, settings: Settings, port: int, workers: int = 1) -> None:
    """Run an HTTP service with the process's logging (uvicorn's own config left out, so its
    access and error lines come out in the same format as everything else). Several workers
    need `app` as the import string of a factory that also configures logging (each worker
    is its own process)."""
    configure_logging(settings)
    uvicorn.run(app, host=settings.http_host, port=port, log_config=None, workers=workers,
                factory=isinstance(app, str), access_log=settings.http_access_log)  # fmt: skip
