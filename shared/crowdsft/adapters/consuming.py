"""How every service reads a record and judges a failure, so that no record blocks a partition.

A failure is either transient (the store or the broker is unreachable: wait, stay on the
record, try again) or permanent (the record can never succeed: set it aside on the dead-letter
topic with its reason, its source and its bytes, commit, move on). An error of neither known
kind is retried a bounded number of times and then treated as permanent. Bytes decide nothing
before the event model has judged them: headers never pick a decoder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from functools import partial
from typing import Any, TypeVar

import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faststream.message import StreamMessage
from pydantic import BaseModel, ValidationError
from pymongo.errors import ConnectionFailure, PyMongoError, WaitQueueTimeoutError

from crowdsft.adapters.metrics import EVENTS_DEAD_LETTERED
from crowdsft.contracts import EventDeadLettered, OriginalCopy, derive_event_id
from crowdsft.domain.ports import Publish
from crowdsft.logs import bound_ids

M = TypeVar("M", bound=BaseModel)
log = structlog.get_logger("crowdsft.consuming")

MAX_ATTEMPTS = 5  # of an error of no known kind before its record is dead-lettered
BACKOFF_S = (0.2, 5.0)  # first and longest pause before a record is tried again
TRANSIENT_LABELS = ("TransientTransactionError", "RetryableWriteError")


class Failure(Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    UNKNOWN = "unknown"


# Deterministic errors: the same record fails the same way every time. Domain refusals
# (`RoundStepError`, unknown rounds and campaigns) are ValueError or LookupError.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes ValidationError, UnicodeError and every domain refusal
    LookupError,
    TypeError,
    ArithmeticError,  # includes OverflowError
    RecursionError,
)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, ConnectionFailure | WaitQueueTimeoutError | KafkaTimeoutError):
        return Failure.TRANSIENT
    if isinstance(exc, TimeoutError | ConnectionError):
        return Failure.TRANSIENT
    if isinstance(exc, KafkaError) and exc.retriable:
        return Failure.TRANSIENT
    if isinstance(exc, PyMongoError) and any(exc.has_error_label(x) for x in TRANSIENT_LABELS):
        return Failure.TRANSIENT
    if isinstance(exc, PERMANENT_ERRORS):
        return Failure.PERMANENT
    return Failure.UNKNOWN


def backoff(attempt: int) -> float:
    first, longest = BACKOFF_S
    return float(min(longest, first * 2 ** max(0, attempt - 1)))


class ThrottledLog:
    """A failure repeated on every redelivery is logged once per interval, with a count."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self._interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str, **fields: Any) -> bool:
        now = time.monotonic()
        last, suppressed = self._last.get(key, (float("-inf"), 0))
        if now - last < self._interval_s:
            self._last[key] = (last, suppressed + 1)
            return False
        self._last[key] = (now, 0)
        log.warning(message, suppressed=suppressed, **fields)
        return True


async def raw_decoder(message: StreamMessage[Any], original: Any) -> Any:
    """The body undecoded (bytes, or a batch's list of them), whatever its content-type
    header says: the event model decides what the bytes are."""
    return message.body


def _utf8_safe(record: ConsumerRecord[Any, Any]) -> ConsumerRecord[Any, Any]:
    headers = [(k, v.decode("utf-8", "replace").encode()) for k, v in record.headers or ()]
    return dataclasses.replace(record, headers=headers)


async def header_tolerant_parser(
    records: ConsumerRecord[Any, Any] | tuple[ConsumerRecord[Any, Any], ...],
    original: Callable[[Any], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    """FastStream decodes every header as UTF-8 before the handler runs, so one record with a
    binary header would fail (and be redelivered) forever. Replace undecodable bytes first:
    the record still reaches the handler, which judges (and dead-letters) its body as usual."""
    if isinstance(records, tuple):
        return await original(tuple(_utf8_safe(record) for record in records))
    return await original(_utf8_safe(records))


def batch_records(message: StreamMessage[Any]) -> tuple[Any, ...]:
    """The raw records behind a batch subscriber's message (one record is a batch of one)."""
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def _position(record: Any) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


class EventReader:
    """Typed events from raw records, and each event's handling guarded.

    Services subscribe to raw records rather than typed bodies so that a record that does not
    parse, or one the store contradicts, is dead-lettered and skipped instead of failing on
    every redelivery. Attempts are counted per record in this process: a restarted process
    starts counting again, which only delays a poison record, never loops on it.
    """

    def __init__(
        self,
        publish: Publish,
        producer: str,
        max_attempts: int = MAX_ATTEMPTS,
        pause: Callable[[int], float] = backoff,
    ) -> None:
        self._publish = publish
        self._producer = producer
        self._max_attempts = max_attempts
        self._pause = pause
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._throttled = ThrottledLog()

    async def consume(
        self, message: StreamMessage[Any], model: type[M], handle: Callable[[M], Awaitable[Any]]
    ) -> None:
        for record in batch_records(message):
            if (event := await self.parse_record(record, model)) is not None:
                with bound_ids(event):
                    await self.guarded(record, partial(handle, event))

    async def consume_each(
        self, message: StreamMessage[Any], model: type[M], handle: Callable[[M], Awaitable[Any]]
    ) -> None:
        """A batch handled record by record, concurrently; a transient failure of any rewinds
        the batch once all have finished (those done are found done on the next try)."""
        parsed = [(r, await self.parse_record(r, model)) for r in batch_records(message)]

        async def one(record: Any, event: M) -> None:
            with bound_ids(event):  # each task has its own context: ids never mix
                await self.guarded(record, partial(handle, event))

        outcomes = await asyncio.gather(
            *(one(r, e) for r, e in parsed if e is not None), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def parse_record(self, record: Any, model: type[M]) -> M | None:
        try:
            # pydantic's parser bounds nesting depth itself and never trusts a header.
            return model.model_validate_json(record.value or b"")
        except ValidationError as exc:
            await self.dead_letter(record, f"not a valid {model.__name__}", str(exc))
            return None

    async def guarded(self, record: Any, work: Callable[[], Awaitable[Any]]) -> None:
        """Run one record's work; raise only to be redelivered, never for a poison record."""
        key = _position(record)
        try:
            await work()
        except Exception as exc:
            failure = classify(exc)
            attempts = self._attempts.get(key, 0) + 1
            where = "/".join(map(str, key))
            if failure is Failure.PERMANENT or (
                failure is Failure.UNKNOWN and attempts >= self._max_attempts
            ):
                self._attempts.pop(key, None)
                reason = f"refused: {type(exc).__name__}"
                await self.dead_letter(record, reason, str(exc), attempts)
                log.warning("record dead-lettered", source=where, reason=reason,
                            detail=str(exc)[:300], attempts=attempts)  # fmt: skip
                return
            self._attempts[key] = attempts
            self._throttled.warning(
                f"{self._producer}:{type(exc).__name__}", "record will be retried",
                source=where, failure=failure.value, attempts=attempts,
                error=f"{type(exc).__name__}: {str(exc)[:300]}",
            )  # fmt: skip
            await asyncio.sleep(self._pause(attempts))
            raise
        self._attempts.pop(key, None)

    async def dead_letter(self, record: Any, reason: str, detail: str, attempts: int = 1) -> None:
        letter = EventDeadLettered(
            event_id=derive_event_id("dead_lettered", *_position(record)),
            producer=self._producer,
            source_topic=record.topic,
            source_partition=record.partition,
            source_offset=record.offset,
            reason=reason[:200],
            detail=detail[:2_000],
            attempts=attempts,
            original=OriginalCopy.of(record.value or b""),
        )
        await self._publish([(None, letter)])
        EVENTS_DEAD_LETTERED.labels(self._producer, letter.reason).inc()
