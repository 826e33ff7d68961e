"""What every event-driven service starts with: broker, app, database, publisher, reader,
and how it runs: its consumers and its probe routes in one process."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import structlog
import uvicorn
from aiokafka.errors import KafkaConnectionError
from faststream.asgi import AsgiFastStream
from faststream.asgi.types import Receive, Scope, Send
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from crowdsft.adapters import mongo
from crowdsft.adapters.consuming import EventReader, backoff
from crowdsft.adapters.kafka import TooFewPartitions, announcer, ensure_topics, make_broker
from crowdsft.adapters.probes import (
    Readiness,
    broker_answers,
    consumers_assigned,
    store_answers,
    worker_routes,
)
from crowdsft.adapters.tracing import configure_tracing
from crowdsft.domain.backends import load_plugins
from crowdsft.domain.ports import Publish
from crowdsft.logs import configure_logging
from crowdsft.settings import Settings, load_settings

# A broker that is restarting or not yet up when a service starts is waited for this long.
BROKER_WAIT_S = 300.0

log = structlog.get_logger("crowdsft.service")


async def wait_for_broker(settings: Settings, timeout_s: float = BROKER_WAIT_S) -> None:
    """Topics ensured once the broker answers: a service started while the broker is down
    (a deploy in any order, a broker restart) waits for it instead of exiting."""
    deadline = time.monotonic() + timeout_s
    for attempt in itertools.count(1):
        try:
            await ensure_topics(settings)
            return
        except KafkaConnectionError as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("the broker does not answer yet; waiting", attempt=attempt, error=str(exc))
            await asyncio.sleep(backoff(attempt))


class _StartupError:
    """Keeps what failed the app's start-up: uvicorn logs it and returns, and the caller
    decides from its kind whether to start again."""

    def __init__(self, app: AsgiFastStream) -> None:
        self.app = app
        self.error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            if scope["type"] == "lifespan":
                self.error = exc
            raise


class _Server(uvicorn.Server):
    """Stops on SIGTERM or SIGINT as uvicorn does, then returns rather than raising the signal
    again: the process flushes its logs and exits 0 after its consumers' last commit."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


async def serve_worker(app: AsgiFastStream, settings: Settings) -> None:
    """The consumers and the probe routes in one process, stopped by SIGTERM through the
    ASGI lifespan (which stops the broker after its last commit)."""
    watched = _StartupError(app)
    config = uvicorn.Config(
        watched,
        host=settings.http_host,
        port=settings.probe_port,
        log_config=None,
        access_log=False,  # probes every few seconds would drown the service's own lines
    )
    server = _Server(config)
    await server.serve()
    if watched.error is not None:
        raise watched.error


def run_service(create_app: Callable[[Settings], AsgiFastStream], attempts: int = 20) -> None:
    """Runs a service; if the broker goes away between the wait and the broker's own start,
    the app is built and started again rather than the process exiting. Settings or topics
    that cannot work (too few partitions) stop it with the reason, not a traceback."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        raise SystemExit(f"crowdsft: invalid settings: {exc}") from None
    configure_logging(settings)
    for attempt in range(1, attempts + 1):
        try:
            asyncio.run(serve_worker(create_app(settings), settings))
            return
        except TooFewPartitions as exc:
            log.error("refusing to start", reason=str(exc))
            raise SystemExit(f"crowdsft: {exc}") from None
        except KafkaConnectionError as exc:
            if attempt == attempts:
                raise
            log.warning("the broker went away while starting; starting again", error=str(exc))
            time.sleep(backoff(attempt))


@dataclass(frozen=True)
class ServiceParts:
    app: AsgiFastStream
    broker: KafkaBroker
    db: mongo.Database
    publish: Publish
    events: EventReader


def service_parts(settings: Settings, group_id: str) -> ServiceParts:
    """Topics and indexes are ensured at start-up; the database client closes at shutdown.
    Backends named in the settings register first, so every campaign spec validates. Every
    worker is traced, counted (`make_broker`'s middlewares) and serves its probes."""
    load_plugins(settings.backend_modules)
    configure_tracing(settings, group_id.removeprefix("crowdsft-"))
    broker = make_broker(settings, client_id=group_id)
    client = mongo.connect(settings)
    db = mongo.database(client, settings)
    readiness = Readiness(
        {
            "store": store_answers(db),
            "broker": broker_answers(broker),
            "consumers": consumers_assigned(broker),
        }
    )
    app = AsgiFastStream(
        broker,
        asgi_routes=worker_routes(readiness, group_id, broker),
        logger=logging.getLogger("crowdsft.app"),
    )
    publish = announcer(broker)

    @app.on_startup
    async def prepare() -> None:
        await wait_for_broker(settings)
        await mongo.ensure_indexes(db)

    @app.after_shutdown
    async def close() -> None:
        await client.close()

    return ServiceParts(app, broker, db, publish, EventReader(publish, group_id))
