"""Dead letters reach operators: what intake and selection set aside is kept by the
deadletters service once each, counted by reason and campaign in the read API, and a record on
a dead-letter topic that is no dead letter is kept as unreadable instead of looping."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import DEAD_LETTERS, Database
from crowdsft.auth import hash_token, new_token
from crowdsft.contracts import topics
from crowdsft.settings import Settings
from services.balances.app import create_app
from tests.support.kafka_io import produce_raw, read_topic
from tests.support.stack import ServiceProcess

OPERATOR_TOKEN = new_token()
KEY = b"same-partition"  # the re-sent letter and the unreadable record after it, in order


async def read_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={"gateway_operator_token_sha256": hash_token(OPERATOR_TOKEN)}
    )
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://balances") as client:
            yield client


async def letters_of(bootstrap: str, topic: str, campaign: str, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [
            letter
            for letter in await read_topic(bootstrap, topic, idle_s=0.5)
            if campaign.encode() in base64.b64decode(letter["original"]["value_b64"])
        ]
        if len(found) >= n:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"{n} dead letters naming {campaign} never reached {topic}")


async def test_operators_see_every_dead_letter_once_by_reason(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    campaign = f"dlq-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    bootstrap = stack_env["CROWDSFT_KAFKA_BOOTSTRAP"]
    services = [
        ServiceProcess(f"services.{name}", stack_env, tmp_path / f"{name}.log").start()
        for name in ("intake", "selection")
    ]
    try:
        await produce_raw(
            bootstrap,
            topics.FEEDBACK_SUBMITTED,
            [
                (b"a", json.dumps({"campaign_id": campaign, "prompt": "x"}).encode()),
                (b"b", json.dumps({"campaign_id": campaign, "response": 7}).encode()),
            ],
        )
        await produce_raw(  # not a StartRound: selection sets it aside
            bootstrap, topics.ROUND_START, [(b"c", json.dumps({"campaign_id": campaign}).encode())]
        )
        feedback = await letters_of(bootstrap, topics.FEEDBACK_DLQ, campaign, 2)
        await letters_of(bootstrap, topics.DEAD_LETTERS, campaign, 1)
    finally:
        for service in services:
            service.stop()
    # A letter delivered twice (a producer's retry), then a record that is no letter at all.
    await produce_raw(
        bootstrap,
        topics.FEEDBACK_DLQ,
        [
            (KEY, json.dumps(feedback[0]).encode()),
            (KEY, json.dumps({"campaign_id": campaign, "nothing": "else"}).encode()),
        ],
    )

    keeper = ServiceProcess("services.deadletters", stack_env, tmp_path / "keeper.log").start()
    try:
        async for api in read_api(settings):
            operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            deadline = time.monotonic() + 60
            while True:
                answer = await api.get(
                    "/v1/dead-letters", params={"campaign": campaign}, headers=operator
                )
                assert answer.status_code == 200, answer.text
                seen = answer.json()
                unreadable = [c for c in seen["counts"] if c["kind"] == "unreadable"]
                if unreadable or time.monotonic() > deadline:
                    break
                assert keeper.alive, keeper.log()[-3000:]
                await asyncio.sleep(0.3)
            counts = {
                (c["kind"], c["source_topic"], c["reason"]): c["count"] for c in seen["counts"]
            }
            assert counts == {
                ("feedback", topics.FEEDBACK_SUBMITTED, "invalid_fields"): 2,
                ("internal", topics.ROUND_START, "not a valid StartRound"): 1,
                ("unreadable", topics.FEEDBACK_DLQ, "not a dead letter"): 1,
            }
            assert seen["total"] == 4 and len(seen["recent"]) == 4
            assert all(letter["campaign_id"] == campaign for letter in seen["recent"])
            for refused in ({}, {"Authorization": f"Bearer {new_token()}"}):
                answer = await api.get("/v1/dead-letters", headers=refused)
                assert answer.status_code == 401
        assert keeper.alive
        assert await db[DEAD_LETTERS].count_documents({"campaign_id": campaign}) == 4
    finally:
        keeper.stop()
