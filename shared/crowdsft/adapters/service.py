"""What every event-driven service starts with: broker, app, database, publisher, reader."""

from __future__ import annotations

from dataclasses import dataclass

from faststream import FastStream
from faststream.kafka import KafkaBroker

from crowdsft.adapters import mongo
from crowdsft.adapters.consuming import EventReader
from crowdsft.adapters.kafka import announcer, ensure_topics, make_broker
from crowdsft.domain.backends import load_plugins
from crowdsft.domain.ports import Publish
from crowdsft.settings import Settings


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
    app = FastStream(broker)
    client = mongo.connect(settings)
    db = mongo.database(client, settings)
    publish = announcer(broker)

    @app.on_startup
    async def prepare() -> None:
        await ensure_topics(settings)
        await mongo.ensure_indexes(db)

    @app.after_shutdown
    async def close() -> None:
        await client.close()

    return ServiceParts(app, broker, db, publish, EventReader(publish, group_id))
