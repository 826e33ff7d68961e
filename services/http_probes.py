"""What every HTTP service shows an orchestrator: /livez, /readyz, /metrics, and traces.

Requests are timed by their route template (so ids never become label values) and traced by
OpenTelemetry's ASGI middleware, which continues a caller's `traceparent`; the gateway's
publishes then carry that trace into Kafka.
"""

# No `from __future__ import annotations`: FastAPI must see the closures' real annotations.

import time
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from crowdsft.adapters.metrics import HTTP_SECONDS
from crowdsft.adapters.probes import Check, Readiness
from crowdsft.adapters.tracing import configure_tracing
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

    @app.middleware("http")
    async def timed(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                    ) -> Response:  # fmt: skip
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path not in PROBE_PATHS:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            HTTP_SECONDS.labels(service, request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

    app.add_middleware(OpenTelemetryMiddleware, excluded_urls=",".join(PROBE_PATHS))
