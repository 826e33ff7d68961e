"""What every HTTP service shows an orchestrator: /livez, /readyz, /metrics, and traces.

Requests are timed by their route template (so ids never become label values) and, where the
process traces (an OTLP endpoint), traced by OpenTelemetry's ASGI middleware, which continues a
caller's `traceparent`; the gateway's publishes then carry that trace into Kafka.
"""

# No `from __future__ import annotations`: FastAPI must see the closures' real annotations.

import time
from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crowdsft.adapters.metrics import HTTP_SECONDS
from crowdsft.adapters.probes import Check, Readiness
from crowdsft.adapters.tracing import configure_tracing, telemetry_middlewares
from crowdsft.settings import Settings

PROBE_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/healthz"})
ChecksOf = Callable[[FastAPI], Mapping[str, Check]]


def observe(app: FastAPI, service: str, settings: Settings, checks_of: ChecksOf) -> None:
    """`checks_of` reads the app's state at request time: the lifespan fills it."""
    configure_tracing(settings, service)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "live"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            checks = checks_of(request.app)
        except AttributeError:  # the lifespan has not filled the state yet
            return JSONResponse({"ready": False, "checks": {}}, status_code=503)
        body, status = await Readiness(checks).verdict()
        return JSONResponse(body, status_code=status)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Timed, service=service)
    if telemetry_middlewares(settings):  # the process traces: continue callers' traces
        app.add_middleware(OpenTelemetryMiddleware, excluded_urls=",".join(PROBE_PATHS))


class Timed:
    """Times each request by its route template; a plain ASGI middleware (Starlette's
    `@app.middleware("http")` wraps every request and response in extra tasks and streams)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = ["500"]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router set it
            HTTP_SECONDS.labels(self.service, scope["method"], route, status[0]).observe(
                time.perf_counter() - started
            )
