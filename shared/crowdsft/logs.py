"""Logging, configured once per process: structlog's events and the libraries' stdlib records
(uvicorn, FastStream, aiokafka, PyMongo) go through the same processors, so with
`CROWDSFT_LOG_FORMAT=json` every line is one JSON object, with the campaign, round and event ids
bound to whatever is handled at the time."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from crowdsft.settings import Settings

BOUND_IDS = ("event_id", "campaign_id", "round_id")


def configure_logging(settings: Settings, stream: Any = None) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    foreign = [*shared, structlog.stdlib.ExtraAdder()]  # FastStream's topic, group, message id
    json = settings.log_format == "json"
    stream = stream or sys.stderr
    colors = bool(getattr(stream, "isatty", lambda: False)())  # no escape codes in log files
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=colors)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    finishing: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        finishing.append(structlog.processors.dict_tracebacks)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=foreign, processors=[*finishing, renderer]
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level)
    # aiokafka narrates every group join at INFO; its warnings and errors are what matter.
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))


@contextmanager
def bound_ids(event: object) -> Iterator[None]:
    """Every line logged while `event` is handled carries its ids."""
    ids = {name: value for name in BOUND_IDS if (value := getattr(event, name, None))}
    with structlog.contextvars.bound_contextvars(**ids):
        yield
