"""The balances API over documents written straight into the real database.

Scoring, which will write balances and the ledger, does not exist yet; these tests stand in
for it. Points: c1 alice 10, bob 10, carol 5; c2 alice 1, carol 20 (totals 25, 11, 10).
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

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, tzinfo=UTC)
BALANCES = [("c1", "alice", 10.0), ("c1", "bob", 10.0), ("c1", "carol", 5.0)]
BALANCES += [("c2", "alice", 1.0), ("c2", "carol", 20.0)]
LEDGER = [  # (campaign, round, contributor, rule, points, minutes after T0)
    ("c1", "r1", "alice", "loo", 4.0, 0),
    ("c1", "r2", "alice", "loo", 6.0, 20),
    ("c2", "r1", "alice", "loo", 1.0, 10),
    ("c1", "r1", "bob", "loo", 10.0, 0),
]
CONTRIBUTIONS = [("c1", "alice"), ("c1", "alice"), ("c2", "alice"), ("c1", "dave")]


@pytest.fixture(scope="module")
async def tokens(db: mongo.Database) -> dict[str, str]:
    await db[mongo.BALANCES].insert_many(
        [{"campaign_id": c, "contributor_id": who, "points": p} for c, who, p in BALANCES]
    )
    await db[mongo.LEDGER].insert_many(
        [
            {
                "campaign_id": c,
                "round_id": r,
                "round_index": int(r.removeprefix("r")),
                "contributor_id": who,
                "rule": rule,
                "points": p,
                "recorded_at": T0 + timedelta(minutes=m),
            }
            for c, r, who, rule, p, m in LEDGER
        ]
    )
    await db[mongo.CONTRIBUTIONS].insert_many(
        [
            {"_id": str(uuid.uuid4()), "campaign_id": c, "contributor_id": who, "content_hash": h}
            for h, (c, who) in enumerate(CONTRIBUTIONS)
        ]
    )
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


async def test_collections_and_unique_indexes_exist_before_anything_scores(
    settings: Settings,
) -> None:
    fresh = settings.model_copy(update={"mongo_db": f"fresh_{uuid.uuid4().hex[:8]}"})
    app = create_app(fresh)
    async with app.router.lifespan_context(app):
        db = app.state.db
        for name, keys in [
            (mongo.BALANCES, [("campaign_id", 1), ("contributor_id", 1)]),
            (
                mongo.LEDGER,
                [("campaign_id", 1), ("round_id", 1), ("contributor_id", 1), ("rule", 1)],
            ),
            (mongo.CONTRIBUTORS, [("token_hash", 1)]),
        ]:
            indexes = (await db[name].index_information()).values()
            assert any(ix.get("unique") and ix["key"] == keys for ix in indexes), name


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
    assert [(e["campaign_id"], e["round_id"]) for e in entries] == [
        ("c1", "r2"),
        ("c2", "r1"),
        ("c1", "r1"),
    ]
    assert entries[0]["points"] == 6.0 and entries[0]["rule"] == "loo"
    assert datetime.fromisoformat(entries[0]["recorded_at"]) == T0 + timedelta(minutes=20)
    c2 = await client.get(
        "/v1/contributors/alice/ledger", params={"campaign": "c2"}, headers=bearer(tokens["alice"])
    )
    assert [e["round_id"] for e in c2.json()["entries"]] == ["r1"]


async def test_ledger_needs_the_contributors_own_token(
    client: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    url = "/v1/contributors/alice/ledger"
    missing = await client.get(url)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert (await client.get(url, headers=bearer("csft_forged"))).status_code == 401
    assert (await client.get(url, headers=bearer(tokens["bob"]))).status_code == 403
