"""No record blocks a partition: poison is set aside with its reason, store trouble is waited
out, and a dead letter always fits the broker."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from crowdsft.adapters.consuming import EventReader, Failure, ThrottledLog, classify
from crowdsft.contracts import EventDeadLettered, RoundDecided
from crowdsft.contracts.feedback import DEAD_LETTER_COPY_BYTES
from crowdsft.domain.round import RoundStepError
from tests.support.fakes import FakeBus, fake_message

BROKER_LIMIT = 1024 * 1024


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (ServerSelectionTimeoutError("no primary"), Failure.TRANSIENT),
        (AutoReconnect("connection reset"), Failure.TRANSIENT),
        (KafkaConnectionError(), Failure.TRANSIENT),
        (KafkaTimeoutError(), Failure.TRANSIENT),
        (ConnectionRefusedError(), Failure.TRANSIENT),
        (RoundStepError("c:r00000 has groups 0-3, not 99"), Failure.PERMANENT),
        (LookupError("round c:r00999 is not in the store"), Failure.PERMANENT),
        (OverflowError("date value out of range"), Failure.PERMANENT),
        (RecursionError(), Failure.PERMANENT),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), Failure.PERMANENT),
        (DuplicateKeyError("E11000"), Failure.UNKNOWN),
        (MessageSizeTooLargeError(), Failure.UNKNOWN),
        (RuntimeError("a bug"), Failure.UNKNOWN),
    ],
)
def test_failures_are_told_apart_by_kind(error: Exception, failure: Failure) -> None:
    assert classify(error) is failure


def test_a_transaction_error_labelled_transient_is_retried() -> None:
    error = OperationFailure("write conflict", code=112)
    error._error_labels = {"TransientTransactionError"}  # as the server labels it
    assert classify(error) is Failure.TRANSIENT


def reader(bus: FakeBus, max_attempts: int = 3) -> EventReader:
    return EventReader(bus, "scoring", max_attempts=max_attempts, pause=lambda attempt: 0.0)


async def never_called(event: RoundDecided) -> None:
    raise AssertionError("a record that does not parse never reaches its handler")


@pytest.mark.parametrize(
    "value",
    [
        b"\x00\x01 garbage",  # what a content-type: application/json header would not make JSON
        b"[" * 100_000 + b"]" * 100_000,  # nesting deeper than any recursive parser
        "café".encode("latin-1"),  # not UTF-8
        b'{"event_type": "round.decided"}',
    ],
)
async def test_a_poison_record_is_dead_lettered_once_with_its_reason(value: bytes) -> None:
    bus = FakeBus()
    await reader(bus).consume(
        fake_message("crowdsft.round.decided", [value]), RoundDecided, never_called
    )
    [(topic, _, letter)] = bus.published
    assert topic == "crowdsft.dlq" and isinstance(letter, EventDeadLettered)
    assert letter.reason == "not a valid RoundDecided"
    assert letter.source_topic == "crowdsft.round.decided"
    assert letter.original.length == len(value)


async def test_a_dead_letter_of_a_huge_record_fits_the_broker_and_names_the_original() -> None:
    bus = FakeBus()
    huge = b"x" * 800_000
    await reader(bus).consume(
        fake_message("crowdsft.round.decided", [huge]), RoundDecided, never_called
    )
    [(_, _, letter)] = bus.published
    assert isinstance(letter, EventDeadLettered)
    assert len(letter.model_dump_json().encode()) < BROKER_LIMIT
    assert letter.original.truncated and letter.original.length == len(huge)
    assert letter.original.value() == huge[:DEAD_LETTER_COPY_BYTES]
    import hashlib

    assert letter.original.sha256 == hashlib.sha256(huge).hexdigest()


def decided_record() -> bytes:
    return RoundDecided(
        event_id="e", producer="selection", campaign_id="c", round_id="c:r00999",
        round_index=999, ranking=[0], scores=[1.0], base_model_id="c:base",
        winner_model_id="c:r00999:g0", improved=True, group_sizes=[],
    ).model_dump_json().encode()  # fmt: skip


async def test_an_event_the_store_contradicts_is_dead_lettered_at_once() -> None:
    bus = FakeBus()
    calls = 0

    async def refuse(event: RoundDecided) -> None:
        nonlocal calls
        calls += 1
        raise LookupError(f"round {event.round_id} is not in the store")

    await reader(bus).consume(fake_message("crowdsft.round.decided", [decided_record()]),
                              RoundDecided, refuse)  # fmt: skip
    [(_, _, letter)] = bus.published
    assert calls == 1
    assert isinstance(letter, EventDeadLettered) and letter.reason == "refused: LookupError"
    assert "c:r00999" in letter.detail


async def test_an_unknown_error_is_retried_a_bounded_number_of_times() -> None:
    bus = FakeBus()
    events = reader(bus, max_attempts=3)
    message = fake_message("crowdsft.round.decided", [decided_record()])

    async def buggy(event: RoundDecided) -> None:
        raise RuntimeError("a defect")

    for _ in range(2):  # each raise makes the subscriber redeliver the record
        with pytest.raises(RuntimeError):
            await events.consume(message, RoundDecided, buggy)
    await events.consume(message, RoundDecided, buggy)  # the third attempt sets it aside
    [(_, _, letter)] = bus.published
    assert isinstance(letter, EventDeadLettered) and letter.attempts == 3


async def test_store_trouble_is_waited_out_and_never_dead_letters_valid_data() -> None:
    bus = FakeBus()
    events = reader(bus, max_attempts=2)
    message = fake_message("crowdsft.round.decided", [decided_record()])
    down = True

    async def store(event: RoundDecided) -> None:
        if down:
            raise ServerSelectionTimeoutError("store is down")

    for _ in range(10):
        with pytest.raises(ServerSelectionTimeoutError):
            await events.consume(message, RoundDecided, store)
    down = False
    await events.consume(message, RoundDecided, store)
    assert bus.published == []


def test_a_repeated_failure_is_logged_once_per_interval() -> None:
    throttled = ThrottledLog(interval_s=60)
    logged = [throttled.warning("k", "store down") for _ in range(1_000)]
    assert logged.count(True) == 1
    assert throttled.warning("other", "store down")
