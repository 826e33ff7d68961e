"""The envelope every event carries, and deterministic ids for at-least-once delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Namespace for uuid5 ids: the same inputs give the same id in every process, so a replayed
# or re-derived event is recognised and stored once.
CROWDSFT_NAMESPACE = uuid.UUID("5b0f8f0e-6a3c-4c55-9d0e-2b9b5ad3c7a1")

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$"

# The largest integer MongoDB stores (signed 64-bit): a bound on every integer a client sets.
MAX_STORED_INT = 2**63 - 1


def derive_event_id(*parts: object) -> str:
    """A stable id for an event derived from others (replays produce the same id)."""
    return str(uuid.uuid5(CROWDSFT_NAMESPACE, "\x1f".join(str(part) for part in parts)))


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


# Times outside this window are refused where they enter (the gateway answers 422), so no
# consumer meets a time that its store cannot encode (year 9999 at UTC-12 is year 10000 in
# UTC). The future allows a day of client clock skew.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)


def _sane_time(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is outside the representable range") from None
    if utc < EARLIEST_TIME:
        raise ValueError(f"time is before {EARLIEST_TIME.isoformat()}")
    if utc > utc_now() + FUTURE_SKEW:
        raise ValueError("time is more than a day in the future")
    return utc


SaneDatetime = Annotated[AwareDatetime, AfterValidator(_sane_time)]


class Event(BaseModel):
    """Base of every event: immutable, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=64, description="Unique id; dedup key.")
    schema_version: int = Field(1, ge=1, description="Bumped on breaking changes.")
    occurred_at: SaneDatetime = Field(default_factory=utc_now)
    producer: str = Field(min_length=1, max_length=64, description="Service or client name.")


class CampaignEvent(Event):
    campaign_id: str = Field(pattern=ID_PATTERN)


class RoundEvent(CampaignEvent):
    round_id: str = Field(pattern=ID_PATTERN)
