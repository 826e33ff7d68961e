"""What every event-driven service starts with: broker, app, database, publisher, reader."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiokafka.errors import KafkaConnectionError
from faststream import FastStream
from faststream.kafka import KafkaBroker

from crowdsft.adapters import mongo
from crowdsft.adapters.consuming import EventReader, backoff
from crowdsft.adapters.kafka import announcer, ensure_topics, make_broker
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


def run_service(create_app: Callable[[Settings], FastStream], attempts: int = 20) -> None:
    """Runs a service; if the broker goes away between the wait and the broker's own start,
    the app is built and started again rather than the process exiting."""
    settings = load_settings()
    configure_logging(settings)
    for attempt in range(1, attempts + 1):
        try:
            asyncio.run(create_app(settings).run())
            return
        except KafkaConnectionError as exc:
            if attempt == attempts:
                raise
            log.warning("the broker went away while starting; starting again", error=str(exc))
            time.sleep(backoff(attempt))


@dataclass(frozen=True)
class ServiceParts:
    app: FastStream
    broker: KafkaBroker
    db: mongo.Database
    publish: Publish
    events: EventReader


def service_parts(settings: Settings, group_id: str) -> ServiceParts:
    """Topics and indexes are ensured at start-up; the database client closes at shutdown.
    Backends named in the settings register first, so every campaign spec validates."""
    load_plugins(settings.backend_modules)
    broker = make_broker(settings, client_id=group_id)
    app = FastStream(broker, logger=logging.getLogger("crowdsft.app"))
    client = mongo.connect(settings)
    db = mongo.database(client, settings)
    publish = announcer(broker)

    @app.on_startup
    async def prepare() -> None:
        await wait_for_broker(settings)
        await mongo.ensure_indexes(db)

    @app.after_shutdown
    async def close() -> None:
        await client.close()

    return ServiceParts(app, broker, db, publish, EventReader(publish, group_id))
