"""Publishes contributors' feedback to Kafka: shared by the CLI and the HTTP gateway."""

from __future__ import annotations

from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from crowdsft.adapters.kafka import announcer
from crowdsft.contracts import FeedbackSubmitted


class FeedbackProducer:
    def __init__(self, broker: KafkaBroker) -> None:
        self._publish = announcer(broker)

    async def submit(self, events: Sequence[FeedbackSubmitted]) -> list[str]:
        """Returns the event ids; keyed by contributor so one person's feedback stays ordered."""
        await self._publish([(e.contributor_id, e) for e in events])
        return [event.event_id for event in events]
