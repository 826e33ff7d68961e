"""The balances API over paid rounds written through the real stores, as scoring leaves
them. Everyone starts with one point when first paid. c1 round 0 pays alice 3, bob 9, carol 4
(T0); c2 round 0 pays alice 0, carol 19 (T0 + 10 min); c1 round 1 pays alice 6 (T0 + 20 min).
Points: c1 alice 10, bob 10, carol 5; c2 alice 1, carol 20 (totals 25, 11, 10).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.settings import Settings
from services.balances.app import create_app
from tests.support.paid_rounds import pay_round

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, tzinfo=UTC)
PAID = [  # (campaign, round index, awards, minutes after T0)
    ("c1", 0, {"alice": 3.0, "bob": 9.0, "carol": 4.0}, 0),
    ("c2", 0, {"alice": 0.0, "carol": 19.0}, 10),
    ("c1", 1, {"alice": 6.0}, 20),
]
CONTRIBUTIONS = [("c1", "alice"), ("c1", "alice"), ("c2", "alice"), ("c1", "dave")]


@pytest.fixture(scope="module")
async def tokens(db: mongo.Database) -> dict[str, str]:
    for campaign_id, index, awards, minutes in PAID:
        await pay_round(db, campaign_id, index, awards, T0 + timedelta(minutes=minutes))
    # As intake stores them: the contribution keyed by content hash, its submission by event id.
    hashes = [f"hash-{uuid.uuid4().hex}" for _ in CONTRIBUTIONS]
    await db[mongo.CONTRIBUTIONS].insert_many([
        {"_id": h, "campaign_id": c, "contributor_id": who}
        for h, (c, who) in zip(hashes, CONTRIBUTIONS, strict=True)
    ])  # fmt: skip
    await db[mongo.SUBMISSIONS].insert_many([
        {"_id": str(uuid.uuid4()), "content_hash": h, "contributor_id": who}
        for h, (_, who) in zip(hashes, CONTRIBUTIONS, strict=True)
    ])  # fmt: skip
    store = ContributorStore(db)
    return {name: (await store.register(name))[1] for name in ("alice", "bob", "erin")}


@pytest.fixture(scope="module")
async def client(settings: Settings, tokens: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://balances") as http:
            yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_healthz_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/v1/contributors/{contributor_id}", "/v1/leaderboard"} <= set(paths)
    assert (await client.get("/docs")).status_code == 200


async def test_collections_and_indexes_exist_before_anything_scores(
    settings: Settings,
) -> None:
    fresh = settings.model_copy(update={"mongo_db": f"fresh_{uuid.uuid4().hex[:8]}"})
    app = create_app(fresh)
    async with app.router.lifespan_context(app):
        db = app.state.db
        assert mongo.CHUNKS in await db.list_collection_names()
        for name, keys, unique in [
            (mongo.CONTRIBUTORS, [("token_hash", 1)], True),
            (mongo.SUBMISSIONS, [("contributor_id", 1)], False),
        ]:
            indexes = (await db[name].index_information()).values()
            assert any(bool(ix.get("unique")) == unique and ix["key"] == keys
                       for ix in indexes), (name, keys)  # fmt: skip


@pytest.mark.parametrize(
    ("contributor", "campaign", "balance", "contributions", "rank"),
    [
        ("alice", None, 11.0, 3, 2),
        ("alice", "c1", 10.0, 2, 1),
        ("bob", "c1", 10.0, 0, 1),  # tied with alice: both first
        ("carol", "c1", 5.0, 0, 3),
        ("carol", None, 25.0, 0, 1),
        ("bob", None, 10.0, 0, 3),
        ("dave", None, 0.0, 1, 4),  # contributed but never registered or paid
        ("erin", None, 0.0, 0, 4),  # registered, nothing else yet
        ("alice", "c9", 0.0, 0, 1),
    ],
)
async def test_contributor_summary(
    client: httpx.AsyncClient,
    contributor: str,
    campaign: str | None,
    balance: float,
    contributions: int,
    rank: int,
) -> None:
    params = {"campaign": campaign} if campaign else {}
    response = await client.get(f"/v1/contributors/{contributor}", params=params)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "contributor_id": contributor,
        "campaign_id": campaign,
        "balance": balance,
        "contributions": contributions,
        "rank": rank,
    }


async def test_unknown_contributor_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/contributors/zed")).status_code == 404
    assert (await client.get("/v1/contributors/bad%20id")).status_code == 422


async def test_leaderboard_is_public_sorted_and_ranks_ties(client: httpx.AsyncClient) -> None:
    overall = (await client.get("/v1/leaderboard")).json()
    assert overall == {
        "campaign_id": None,
        "entries": [
            {"rank": 1, "contributor_id": "carol", "points": 25.0},
            {"rank": 2, "contributor_id": "alice", "points": 11.0},
            {"rank": 3, "contributor_id": "bob", "points": 10.0},
        ],
    }
    c1 = (await client.get("/v1/leaderboard", params={"campaign": "c1"})).json()["entries"]
    assert [(e["rank"], e["contributor_id"], e["points"]) for e in c1] == [
        (1, "alice", 10.0),
        (1, "bob", 10.0),
        (3, "carol", 5.0),
    ]
    top = await client.get("/v1/leaderboard", params={"campaign": "c2", "limit": 1})
    assert top.json()["entries"] == [{"rank": 1, "contributor_id": "carol", "points": 20.0}]
    empty = await client.get("/v1/leaderboard", params={"campaign": "c9"})
    assert empty.json() == {"campaign_id": "c9", "entries": []}
    for limit in (0, 1001):
        response = await client.get("/v1/leaderboard", params={"limit": limit})
        assert response.status_code == 422


async def test_ledger_is_newest_first_and_filterable(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    response = await client.get("/v1/contributors/alice/ledger", headers=bearer(tokens["alice"]))
    assert response.status_code == 200, response.text
    entries = response.json()["entries"]
    assert [(e["campaign_id"], e["round_id"], e["rule"], e["points"]) for e in entries] == [
        ("c1", "c1:r00001", "rank", 6.0),
        ("c2", "c2:r00000", "rank", 0.0),
        ("c2", "initial", "initial", 1.0),
        ("c1", "c1:r00000", "rank", 3.0),
        ("c1", "initial", "initial", 1.0),
    ]
    assert datetime.fromisoformat(entries[0]["recorded_at"]) == T0 + timedelta(minutes=20)
    assert sum(e["points"] for e in entries) == 11.0  # the ledger sums to the balance
    c2 = await client.get(
        "/v1/contributors/alice/ledger", params={"campaign": "c2"}, headers=bearer(tokens["alice"])
    )
    assert [e["round_id"] for e in c2.json()["entries"]] == ["c2:r00000", "initial"]
    first = await client.get(
        "/v1/contributors/alice/ledger", params={"limit": 1}, headers=bearer(tokens["alice"])
    )
    assert [e["round_id"] for e in first.json()["entries"]] == ["c1:r00001"]


async def test_ledger_needs_the_contributors_own_token(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    url = "/v1/contributors/alice/ledger"
    missing = await client.get(url)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get(url, headers=bearer("csft_forged"))).status_code == 401
    assert (await client.get(url, headers=bearer(tokens["bob"]))).status_code == 403
