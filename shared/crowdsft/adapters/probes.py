"""Liveness, readiness and /metrics for every service, worker or HTTP.

Live: the process's event loop answers. Ready: every dependency the service needs answers
within a short timeout (the store, the broker) and every Kafka consumer it runs holds
partitions; an orchestrator stops routing to, or scaling on, a replica that is not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx
from faststream.asgi import AsgiResponse, get
from faststream.asgi.types import ASGIApp, Receive, Scope, Send
from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY, make_asgi_app

from crowdsft.adapters import mongo
from crowdsft.adapters.metrics import consumers, measure_lag

CHECK_TIMEOUT_S = 2.0
Check = Callable[[], Awaitable[bool]]


def store_answers(db: mongo.Database) -> Check:
    async def check() -> bool:
        await db.command("ping")
        return True

    return check


def broker_answers(broker: KafkaBroker) -> Check:
    async def check() -> bool:
        return bool(await broker.ping(CHECK_TIMEOUT_S))

    return check


def http_answers(url: str) -> Check:
    """Another service this one calls answers its liveness probe."""

    async def check() -> bool:
        async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as http:
            return (await http.get(url)).status_code == 200

    return check


def consumers_assigned(broker: KafkaBroker) -> Check:
    """Every subscriber's consumer holds at least one partition (not during a rebalance)."""

    async def check() -> bool:
        held = consumers(broker)
        return len(held) == len(broker.subscribers) and all(c.assignment() for c in held)

    return check


@dataclass
class Readiness:
    checks: Mapping[str, Check] = field(default_factory=dict)

    async def report(self) -> dict[str, bool]:
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._bounded(self.checks[n]) for n in names))
        return dict(zip(names, outcomes, strict=True))

    async def verdict(self) -> tuple[dict[str, object], int]:
        """The /readyz body and status, the same for workers and HTTP services."""
        report = await self.report()
        ready = all(report.values())
        return {"ready": ready, "checks": report}, 200 if ready else 503

    @staticmethod
    async def _bounded(check: Check) -> bool:
        try:
            return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
        except Exception:  # unreachable, timed out or refused: not ready, whatever the cause
            return False


def _json(body: object, status: int) -> AsgiResponse:
    return AsgiResponse(json.dumps(body).encode(), status, {"content-type": "application/json"})


def worker_routes(
    readiness: Readiness, group: str, broker: KafkaBroker
) -> list[tuple[str, ASGIApp]]:
    """The routes a FastStream worker serves beside its consumers."""

    @get(include_in_schema=False)
    async def livez(scope: Scope) -> AsgiResponse:
        return _json({"status": "live"}, 200)

    @get(include_in_schema=False)
    async def readyz(scope: Scope) -> AsgiResponse:
        return _json(*await readiness.verdict())

    exposition = make_asgi_app(REGISTRY)

    async def metrics(scope: Scope, receive: Receive, send: Send) -> None:
        """Lag is read from the broker at scrape time, so it is never older than the scrape."""
        # The broker away: the last values stay, and readiness says why.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(measure_lag(group, consumers(broker)), CHECK_TIMEOUT_S)
        await exposition(scope, receive, send)

    return [("/livez", livez), ("/readyz", readyz), ("/metrics", metrics)]
