"""Dead letters reach operators: what intake and selection set aside is kept by the
deadletters service once each, counted by reason and campaign in the read API, and a record on
a dead-letter topic that is no dead letter is kept as unreadable instead of looping. After a
fix, `crowdsft dlq replay` sends a letter's original back, and it is stored once."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.dead_letter_store import DeadLetterStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, DEAD_LETTERS, Database
from crowdsft.auth import hash_token, new_token
from crowdsft.contracts import topics
from crowdsft.settings import Settings
from services.balances.app import create_app
from tests.support.corpus import feedback
from tests.support.kafka_io import produce_raw, read_topic
from tests.support.stack import ServiceProcess, run_cli

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

    json_logs = {**stack_env, "CROWDSFT_LOG_FORMAT": "json"}
    keeper = ServiceProcess("services.deadletters", json_logs, tmp_path / "keeper.log").start()
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
                # The unreadable record follows the re-sent letter on its partition; selection's
                # letter is on the other topic and may land in a later batch.
                if (unreadable and seen["total"] >= 4) or time.monotonic() > deadline:
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
        # Its log is one JSON object per line, FastStream's and aiokafka's lines included.
        lines = [json.loads(line) for line in keeper.log().splitlines() if line.strip()]
        assert any(line["event"] == "dead letters kept" for line in lines)
        assert {"crowdsft.app", "crowdsft.broker"} <= {str(line.get("logger")) for line in lines}
    finally:
        keeper.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli({**os.environ, **env}, *args, timeout_s=120)


async def test_a_record_set_aside_for_an_unknown_campaign_is_stored_once_replayed(
    stack_env: dict[str, str], db: Database, tmp_path: Path
) -> None:
    campaign = f"later-{uuid.uuid4().hex[:6]}"
    early = feedback(campaign, "dora", 1, random.Random(1))
    services = [
        ServiceProcess(f"services.{name}", stack_env, tmp_path / f"{name}.log").start()
        for name in ("intake", "deadletters")
    ]
    try:
        await produce_raw(stack_env["CROWDSFT_KAFKA_BOOTSTRAP"], topics.FEEDBACK_SUBMITTED,
                          [(b"dora", early.model_dump_json().encode())])  # fmt: skip
        store = DeadLetterStore(db)
        deadline = time.monotonic() + 60
        while not (kept := await store.matching(campaign)):
            assert time.monotonic() < deadline, services[0].log()[-2000:]
            await asyncio.sleep(0.3)
        assert [letter.reason for letter in kept] == ["unknown_campaign"]

        dry = cli(stack_env, "dlq", "replay", "--campaign", campaign, "--dry-run")
        assert "1 of 1 dead letters would be replayed" in dry.stderr
        await CampaignStore(db).create(campaign)  # the fix
        sent = cli(stack_env, "dlq", "replay", "--campaign", campaign)
        assert "replayed 1 of 1" in sent.stderr
        while not await db[CONTRIBUTIONS].count_documents({"event_id": early.event_id}):
            assert time.monotonic() < deadline + 60, services[0].log()[-2000:]
            await asyncio.sleep(0.3)
        again = cli(stack_env, "dlq", "replay", "--campaign", campaign)
        assert "replayed 0 of 0" in again.stderr  # each letter is replayed once unless --again
        forced = cli(stack_env, "dlq", "replay", "--campaign", campaign, "--again")
        assert "replayed 1 of 1" in forced.stderr
        await asyncio.sleep(2.0)  # intake sees the copy and stores nothing new
        assert await db[CONTRIBUTIONS].count_documents({"event_id": early.event_id}) == 1
        [letter] = await store.matching(campaign, again=True)
        assert letter.replays == 2 and letter.replayed_at is not None
    finally:
        for service in services:
            service.stop()
