"""Operators create campaigns over HTTP with their token; nobody else can."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.mongo import Database
from crowdsft.auth import hash_token, new_token
from crowdsft.settings import Settings
from services.gateway.app import create_app

OPERATOR_TOKEN = new_token()


async def gateway(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={"gateway_operator_token_sha256": hash_token(OPERATOR_TOKEN)}
    )
    async for c in gateway(configured):
        yield c


def spec(campaign_id: str, **changes: Any) -> dict[str, Any]:
    return {"campaign_id": campaign_id, "target": [1.0, 2.0, 3.0], "n_groups": 2} | changes


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_operator_creates_a_campaign_once(client: httpx.AsyncClient, db: Database) -> None:
    reply = await client.post(
        "/v1/campaigns", json=spec("made-by-http"), headers=bearer(OPERATOR_TOKEN)
    )
    assert reply.status_code == 201, reply.text
    stored = await CampaignStore(db).spec("made-by-http")
    assert stored is not None and stored.target == [1.0, 2.0, 3.0] and stored.n_groups == 2
    again = await client.post(
        "/v1/campaigns", json=spec("made-by-http"), headers=bearer(OPERATOR_TOKEN)
    )
    assert again.status_code == 409


@pytest.mark.parametrize("headers", [{}, bearer(new_token()), bearer("junk")])
async def test_others_are_refused(
    client: httpx.AsyncClient, db: Database, headers: dict[str, str]
) -> None:
    reply = await client.post("/v1/campaigns", json=spec("not-allowed"), headers=headers)
    assert reply.status_code == 401
    assert await CampaignStore(db).spec("not-allowed") is None


async def test_a_contributor_token_is_not_an_operator_token(
    client: httpx.AsyncClient, db: Database
) -> None:
    from crowdsft.adapters.contributor_store import ContributorStore

    _, contributor_token = await ContributorStore(db).register("someone")
    reply = await client.post(
        "/v1/campaigns", json=spec("by-contributor"), headers=bearer(contributor_token)
    )
    assert reply.status_code == 401


async def test_unrunnable_settings_are_refused(client: httpx.AsyncClient) -> None:
    for bad in (spec("bad-1", grouping="alphabetical"), spec("bad-2", target=[]),
                spec("bad-3", backend={"kind": "vector", "start": [1.0]}),
                spec("bad-4", backend="magic")):  # fmt: skip
        reply = await client.post("/v1/campaigns", json=bad, headers=bearer(OPERATOR_TOKEN))
        assert reply.status_code == 422, bad


async def test_without_a_configured_token_nobody_creates(settings: Settings, db: Database) -> None:
    async for client in gateway(settings):
        reply = await client.post(
            "/v1/campaigns", json=spec("no-ops"), headers=bearer(OPERATOR_TOKEN)
        )
        assert reply.status_code == 401
    assert await CampaignStore(db).spec("no-ops") is None
