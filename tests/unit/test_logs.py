"""Logs as collectors read them: one JSON object per line, with the handled event's ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from crowdsft.contracts import StartRound
from crowdsft.logs import bound_ids, configure_logging
from crowdsft.settings import Settings


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_events_ids_and_the_libraries_records_too(restored: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="json"), stream)
    event = StartRound.asking("camp-1", 3, producer="test")
    with bound_ids(event):
        structlog.get_logger("crowdsft.selection").info("round opened", groups=4)
    logging.getLogger("uvicorn.error").warning("a library's %s", "record")
    structlog.get_logger("crowdsft.selection").debug("not shown at INFO")
    first, second = lines(stream)
    assert first["event"] == "round opened" and first["groups"] == 4
    assert first["campaign_id"] == "camp-1" and first["event_id"] == event.event_id
    assert first["level"] == "info" and first["logger"] == "crowdsft.selection"
    assert "timestamp" in first
    assert second["event"] == "a library's record" and second["logger"] == "uvicorn.error"
    assert "campaign_id" not in second  # bound only while the event was handled


def test_an_exception_is_one_json_line_with_its_traceback(restored: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="json"), stream)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("crowdsft.x").exception("failed")
    [line] = lines(stream)
    assert line["event"] == "failed" and "ValueError" in json.dumps(line["exception"])


def test_the_console_form_stays_readable(restored: None) -> None:
    stream = io.StringIO()
    configure_logging(Settings(log_format="console"), stream)
    structlog.get_logger("crowdsft.x").info("hello", n=1)
    assert "hello" in stream.getvalue() and "n=1" in stream.getvalue()
