"""The HTTP gateway against a real broker and database: who may submit, and how often.

Every refused request carries its own event id, so reading the topic back proves that
nothing from a refused request was published.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.auth import new_token
from crowdsft.contracts.topics import FEEDBACK_SUBMITTED
from crowdsft.settings import Settings
from services.gateway.app import create_app
from tests.support.kafka_io import read_topic
from tests.support.stack import run_cli

pytestmark = pytest.mark.integration

BURST = 3
TOKEN_CACHE_S = 0.5
ACCEPTED: set[str] = set()
REFUSED: set[str] = set()


@pytest.fixture(scope="module")
async def tokens(db: mongo.Database) -> dict[str, str]:
    store = ContributorStore(db)
    return {name: (await store.register(name))[1] for name in ("alice", "bob", "burster")}


@pytest.fixture(scope="module")
async def client(settings: Settings, db: mongo.Database) -> AsyncIterator[httpx.AsyncClient]:
    # A slow refill, so the burst test is deterministic whatever the machine's speed.
    limited = settings.model_copy(update={
        "gateway_rate_limit_burst": BURST, "gateway_rate_limit_per_minute": 1,
        "http_token_cache_s": TOKEN_CACHE_S,
    })  # fmt: skip
    app = create_app(limited)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http


def body(**fields: Any) -> dict[str, Any]:
    event_id = fields.pop("event_id", None) or str(uuid.uuid4())
    return {
        "campaign_id": "c1",
        "prompt": "What is 2 + 2?",
        "response": "4",
        "rating": 5,
        "event_id": event_id,
        **fields,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(
    client: httpx.AsyncClient, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    response = await client.post("/v1/feedback", json=payload, headers=headers or {})
    (ACCEPTED if response.status_code == 202 else REFUSED).add(payload["event_id"])
    return response


async def test_accepts_own_feedback_and_returns_the_event_id(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    named = body(contributor_id="alice")
    response = await post(client, named, bearer(tokens["alice"]))
    assert response.status_code == 202, response.text
    assert response.json() == {"event_id": named["event_id"]}

    # contributor_id and event_id may be left out: the token and a fresh uuid4 fill them.
    anonymous = {k: v for k, v in body().items() if k != "event_id"}
    response = await client.post("/v1/feedback", json=anonymous, headers=bearer(tokens["bob"]))
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    assert uuid.UUID(event_id).version == 4
    ACCEPTED.add(event_id)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer(new_token()),
        bearer("not-a-token"),
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "unknown", "junk", "basic", "empty"],
)
async def test_missing_or_wrong_token_is_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await post(client, body(contributor_id="alice"), headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_token_cannot_submit_in_another_contributors_name(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    response = await post(client, body(contributor_id="alice"), bearer(tokens["bob"]))
    assert response.status_code == 403


INVALID: list[dict[str, Any]] = [
    {"rating": 9},
    {"prompt": "x" * 4_001},
    {"response": ""},
    {"campaign_id": "no spaces allowed"},
    {"client_timestamp": "2025-01-01T00:00:00"},  # naive: whose midnight?
    {"event_id": "x" * 65},
    {"extra_field": 1},
]


@pytest.mark.parametrize("fields", INVALID, ids=[next(iter(f)) for f in INVALID])
async def test_invalid_feedback_is_refused(
    client: httpx.AsyncClient, db: mongo.Database, fields: dict[str, Any]
) -> None:
    # Its own contributor per case: every authenticated request counts against the limit.
    _, token = await ContributorStore(db).register(f"careless-{next(iter(fields))}")
    payload = body(**fields)
    payload.setdefault("event_id", str(uuid.uuid4()))
    response = await client.post("/v1/feedback", json=payload, headers=bearer(token))
    assert response.status_code == 422, response.text
    REFUSED.add(payload["event_id"])


async def test_feedback_over_the_message_size_limit_is_refused(
    client: httpx.AsyncClient, db: mongo.Database
) -> None:
    """Within every field's character limit, yet over 64 KiB once encoded as UTF-8."""
    _, token = await ContributorStore(db).register("verbose")
    payload = body(prompt="😀" * 4_000, response="😀" * 8_000, correction="😀" * 8_000)
    response = await post(client, payload, bearer(token))
    assert response.status_code == 413


async def test_a_burst_over_the_rate_limit_is_refused(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    statuses = []
    for _ in range(BURST + 3):
        response = await post(client, body(), bearer(tokens["burster"]))
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    assert statuses == [202] * BURST + [429] * 3
    # The limit is per contributor: alice is not slowed down by the burster.
    assert (await post(client, body(), bearer(tokens["alice"]))).status_code == 202


async def test_only_accepted_feedback_reached_the_topic(
    settings: Settings, db: mongo.Database
) -> None:
    assert len(ACCEPTED) == 2 + BURST + 1
    assert REFUSED and not ACCEPTED & REFUSED
    # The gateway answers only after the broker confirmed, so everything is there already.
    events = await read_topic(settings.kafka_bootstrap, FEEDBACK_SUBMITTED)
    assert sorted(event["event_id"] for event in events) == sorted(ACCEPTED)
    assert {event["producer"] for event in events} == {"gateway"}
    assert {event["contributor_id"] for event in events} == {"alice", "bob", "burster"}
    # The gateway stores nothing itself; refused requests registered no one either.
    assert await db[mongo.CONTRIBUTIONS].count_documents({}) == 0
    assert await db[mongo.CONTRIBUTORS].count_documents({}) == 4 + len(INVALID)


async def test_a_rotated_token_replaces_the_old_one_within_the_token_cache_time(
    client: httpx.AsyncClient, db: mongo.Database, stack_env: dict[str, str]
) -> None:
    """`crowdsft contributor rotate-token`, as an operator runs it: the printed token works,
    the old one is refused once the gateway's cached answer for it has expired."""
    _, old = await ContributorStore(db).register("rotator")
    assert (await post(client, body(), bearer(old))).status_code == 202
    done = run_cli(stack_env, "contributor", "rotate-token", "--id", "rotator")
    new = done.stdout.strip()
    assert new and new != old and "old one no longer works" in done.stderr
    await asyncio.sleep(TOKEN_CACHE_S)
    assert (await post(client, body(), bearer(old))).status_code == 401
    assert (await post(client, body(), bearer(new))).status_code == 202
    missing = subprocess.run(
        [sys.executable, "-c", "from crowdsft.cli import main; main()", "contributor",
         "rotate-token", "--id", "nobody"],
        env=stack_env | {"PATH": os.environ["PATH"]}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "no contributor nobody" in missing.stderr
