"""Dead-letter keeper: wiring only. Stores every dead letter so operators can count and find
them through the read API; it publishes nothing, so a bad record on a dead-letter topic can
never loop."""

from __future__ import annotations

import structlog
from faststream.asgi import AsgiFastStream
from faststream.kafka.annotations import KafkaMessage

from crowdsft.adapters.consuming import batch_records
from crowdsft.adapters.dead_letter_store import DeadLetterStore
from crowdsft.adapters.kafka import subscriber_options
from crowdsft.adapters.service import run_service, service_parts
from crowdsft.contracts import topics
from crowdsft.domain.dead_letters import dead_letter_of
from crowdsft.settings import Settings

GROUP_ID = "crowdsft-deadletters"
MAX_RECORDS = 500

log = structlog.get_logger(GROUP_ID)


def create_app(settings: Settings) -> AsgiFastStream:
    parts = service_parts(settings, GROUP_ID)
    store = DeadLetterStore(parts.db)

    @parts.broker.subscriber(  # type: ignore[untyped-decorator]
        topics.FEEDBACK_DLQ,
        topics.DEAD_LETTERS,
        batch=True,
        max_records=MAX_RECORDS,
        title="deadletters:dlq",
        # A store failure raises: the batch is not committed and comes back.
        **subscriber_options(settings, GROUP_ID),
    )
    async def on_dead_letters(message: KafkaMessage) -> None:
        letters = [
            dead_letter_of(r.topic, r.partition, r.offset, r.value or b"")
            for r in batch_records(message)
        ]
        await store.keep(letters)
        log.info("dead letters kept", records=len(letters),
                 unreadable=sum(letter.kind == "unreadable" for letter in letters))  # fmt: skip

    return parts.app


def main() -> None:
    run_service(create_app)
