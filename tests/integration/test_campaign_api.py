"""The campaign endpoints of the balances API over documents written into the real database.

Campaign `cmp` runs rounds: round 0 was scored (group 1 won), round 1 was decided without
improving, round 2 is open. Campaign `plain` is feedback-only and `idle` has a spec but no
rounds. Round documents carry the services' internal fields, which must never be served.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.domain.campaign import CampaignSpec, CampaignState, RoundPolicy
from crowdsft.domain.ids import candidate_model_id, root_model_id, round_id
from crowdsft.domain.round import CandidateResult, Decision, Opening, Round
from crowdsft.settings import Settings
from services.balances.app import create_app
from tests.support.paid_rounds import insert_round

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, tzinfo=UTC)
CROWD = ["ann", "ben", "cat", "dan"]
LABELS = [0, 1, 1, 0]
INTERNAL = ["users", "candidate_vectors", "rng_state", "rng_after", "contribution_ids",
            "base_model", "points", "labels", "candidates", "vector", "opening", "decision",
            "payment", "positions", "announced"]  # fmt: skip
SPEC = CampaignSpec(
    campaign_id="cmp",
    name="Vector campaign",
    target=[1.0, 2.0, 3.0],
    n_groups=2,
    policy=RoundPolicy(mode="auto", min_contributions=3, max_rounds=5),
    seed=7,
)


def candidate(index: int, group: int) -> str:
    return candidate_model_id(round_id("cmp", index), group)


def opened(index: int) -> Round:
    base = root_model_id("cmp") if index == 0 else candidate(0, 1)
    return Round(
        round_id=round_id("cmp", index),
        campaign_id="cmp",
        round_index=index,
        opening=Opening(
            base_model_id=base,
            contributor_ids=CROWD,
            contribution_ids=[[f"{who}-{index}"] for who in CROWD],
            positions=[[1.0, 2.0, 3.0]] * len(CROWD),
            points=[1.0] * len(CROWD),
            labels=LABELS,
            n_groups=2,
            rng_state='{"state": 1}',
        ),
        opened_at=T0 + timedelta(hours=index),
    )


def decided(index: int, ranking: list[int], scores: list[float], distances: list[float],
            accepted: bool, judged_wrong: bool) -> Round:  # fmt: skip
    positions = [[1.0, 1.0, 1.0], [1.0, 2.0, 2.5]]
    results = [
        CandidateResult(
            group_index=g,
            model_id=candidate(index, g),
            position=positions[g],
            score=scores[g],
            distance=distances[g],
            artifact_ref=f"artifacts:{candidate(index, g)}",
        )
        for g in (0, 1)
    ]
    decision = Decision(
        base_position=[0.5, 0.5, 0.5],
        candidates=results,
        ranking=ranking,
        accepted=accepted,
        judged_wrong=judged_wrong,
        winner_model_id=candidate(index, ranking[0]) if accepted else None,
        rng_after='{"state": 2}',
    )
    trained = (
        opened(index).with_candidate(0, candidate(index, 0)).with_candidate(1, candidate(index, 1))
    )
    return trained.decide(decision, T0 + timedelta(hours=index, minutes=5))


ROUNDS = [
    decided(0, [1, 0], [-2.2, -0.5], [2.2, 0.5], accepted=True, judged_wrong=False).pay(
        [0.0, 1.0, 1.0, 0.0], T0 + timedelta(minutes=6)
    ),
    decided(1, [0, 1], [-0.6, -0.7], [0.6, 0.7], accepted=False, judged_wrong=True),
    opened(2),
]


def lineage_doc(index: int, group: int) -> dict[str, Any]:
    decision = ROUNDS[index].decision
    assert decision is not None
    members = [who for who, label in zip(CROWD, LABELS, strict=True) if label == group]
    return {
        "_id": candidate(index, group),
        "campaign_id": "cmp",
        "round_index": index,
        "group_index": group,
        "parent_model_id": ROUNDS[index].base_model_id,
        "contributor_ids": members,
        "contribution_ids": [f"{who}-{index}" for who in members],
        "artifact_ref": f"artifacts:{candidate(index, group)}",
        "metrics": {
            "score": decision.candidates[group].score,
            "distance": decision.candidates[group].distance,
        },
        "rank": decision.ranking.index(group),
        "won": candidate(index, group) == decision.winner_model_id,
    }


SHAPLEY = {
    "_id": "cmp",
    "contributor_ids": CROWD,
    "values": [0.1, 0.4, 0.3, 0.2],
    "std_errors": [0.01, 0.02, 0.01, 0.02],
    "relative_error": 0.009,
    "method": "permutation",
    "fingerprint": "abc123",
    "as_of_round_index": 10,
    "updated_at": T0,
    # Keys are strings in MongoDB: "10" must sort after "2". NaN: a constant points vector.
    "fairness": {
        "10": {"pearson": 0.9, "spearman": 0.8},
        "2": {"pearson": 0.5, "spearman": 0.4},
        "0": {"pearson": float("nan"), "spearman": float("nan")},
    },
}


@pytest.fixture(scope="module")
async def client(settings: Settings, db: mongo.Database) -> AsyncIterator[httpx.AsyncClient]:
    store = CampaignStore(db)
    assert await store.create_with_spec(SPEC)
    assert await store.create_with_spec(CampaignSpec(campaign_id="idle", target=[0.0]))
    assert await store.create("plain", "Feedback only")
    state = CampaignState(next_round=2, model_id=candidate(0, 1), rng_state="{}", open_round=2)
    assert await store.advance("cmp", 0, state)
    for stored in ROUNDS:
        await insert_round(db, stored)
    await db[mongo.MODELS].insert_many([lineage_doc(i, g) for i in (0, 1) for g in (0, 1)])
    await db[mongo.SHAPLEY].insert_one(SHAPLEY)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://balances") as http:
            yield http


async def get_json(client: httpx.AsyncClient, url: str) -> Any:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    return response.json()


async def test_openapi_documents_campaign_endpoints(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    prefix = "/v1/campaigns/{campaign_id}"
    assert {prefix, f"{prefix}/rounds", f"{prefix}/lineage", f"{prefix}/shapley"} <= set(
        document["paths"]
    )
    schemas = document["components"]["schemas"]
    assert {"CampaignSummary", "CampaignSpec", "RoundSummary", "Lineage", "ShapleySummary"} <= set(
        schemas
    )
    assert "best_distance" in schemas["RoundSummary"]["properties"]


async def test_campaign_spec_and_state(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/v1/campaigns/cmp")
    assert body["campaign_id"] == "cmp" and body["name"] == "Vector campaign"
    assert body["spec"] == SPEC.model_dump(mode="json")
    assert body["state"] == {"next_round": 2, "model_id": candidate(0, 1), "open_round": 2}
    assert datetime.fromisoformat(body["created_at"]) > T0


async def test_feedback_only_campaign_has_no_spec(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/v1/campaigns/plain")
    assert body | {"created_at": None} == {
        "campaign_id": "plain",
        "name": "Feedback only",
        "created_at": None,
        "spec": None,
        "state": None,
    }


@pytest.mark.parametrize("suffix", ["", "/rounds", "/lineage", "/shapley"])
async def test_unknown_campaign_is_404(client: httpx.AsyncClient, suffix: str) -> None:
    assert (await client.get(f"/v1/campaigns/nope{suffix}")).status_code == 404
    assert (await client.get(f"/v1/campaigns/bad%20id{suffix}")).status_code == 422


async def test_rounds_list_outcomes_groups_and_times(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/v1/campaigns/cmp/rounds")
    assert body["campaign_id"] == "cmp" and body["offset"] == 0
    scored, decided, opened = body["rounds"]
    assert scored == {
        "round_id": "cmp:r00000",
        "round_index": 0,
        "status": "scored",
        "base_model_id": "cmp:base",
        "group_sizes": [2, 2],
        "winner_model_id": candidate(0, 1),
        "accepted": True,
        "judged_wrong": False,
        "ranking": [1, 0],
        "scores": [-2.2, -0.5],
        "distances": [2.2, 0.5],
        "best_distance": 0.5,
        "opened_at": scored["opened_at"],
        "decided_at": scored["decided_at"],
        "scored_at": scored["scored_at"],
    }
    assert datetime.fromisoformat(scored["opened_at"]) == T0
    assert datetime.fromisoformat(scored["scored_at"]) == T0 + timedelta(minutes=6)
    assert decided["status"] == "decided" and decided["scored_at"] is None
    assert decided["accepted"] is False and decided["judged_wrong"] is True
    assert decided["winner_model_id"] is None and decided["best_distance"] == 0.6
    assert opened["status"] == "open" and opened["group_sizes"] == [2, 2]
    assert opened["base_model_id"] == candidate(0, 1)
    undecided = ["ranking", "scores", "distances", "best_distance", "accepted", "decided_at"]
    assert all(opened[field] is None for field in undecided)
    for served in body["rounds"]:
        assert not set(INTERNAL) & set(served)


async def test_rounds_page_with_limit_and_offset(client: httpx.AsyncClient) -> None:
    page = await get_json(client, "/v1/campaigns/cmp/rounds?limit=1&offset=1")
    assert page["offset"] == 1 and [r["round_index"] for r in page["rounds"]] == [1]
    rest = await get_json(client, "/v1/campaigns/cmp/rounds?offset=2&limit=10")
    assert [r["round_index"] for r in rest["rounds"]] == [2]
    assert (await get_json(client, "/v1/campaigns/idle/rounds"))["rounds"] == []
    assert (await client.get("/v1/campaigns/cmp/rounds?limit=0")).status_code == 422
    assert (await client.get("/v1/campaigns/cmp/rounds?offset=-1")).status_code == 422


async def test_lineage_from_base_through_candidates(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/v1/campaigns/cmp/lineage")
    models = body["models"]
    assert [m["model_id"] for m in models] == ["cmp:base"] + [
        candidate(i, g) for i in (0, 1) for g in (0, 1)
    ]
    base = models[0]
    assert base["round_index"] is None and base["parent_model_id"] is None
    assert base["artifact_ref"] == "models:cmp:base" and base["won"] is None
    winner = models[2]
    assert winner == {
        "model_id": candidate(0, 1),
        "round_index": 0,
        "group_index": 1,
        "parent_model_id": "cmp:base",
        "contributor_ids": ["ben", "cat"],
        "contribution_ids": ["ben-0", "cat-0"],
        "artifact_ref": f"artifacts:{candidate(0, 1)}",
        "score": -0.5,
        "distance": 0.5,
        "heldout_distance": None,  # measured for LLM candidates only
        "metrics": {"score": -0.5, "distance": 0.5},
        "hyperparameters": {},
        "rank": 0,
        "won": True,
    }
    assert [m["parent_model_id"] for m in models[3:]] == [candidate(0, 1)] * 2
    assert not any(m["won"] for m in models[3:])
    assert all("vector" not in m for m in models)
    idle = await get_json(client, "/v1/campaigns/idle/lineage")
    assert [m["model_id"] for m in idle["models"]] == ["idle:base"]
    # Paged: the same order, a page at a time.
    page = await get_json(client, "/v1/campaigns/cmp/lineage?offset=2&limit=2")
    assert page["offset"] == 2 and page["models"] == models[2:4]
    assert (await get_json(client, "/v1/campaigns/cmp/lineage?offset=5"))["models"] == []
    assert (await client.get("/v1/campaigns/cmp/lineage?limit=1001")).status_code == 422


async def test_shapley_values_and_fairness_history(client: httpx.AsyncClient) -> None:
    body = await get_json(client, "/v1/campaigns/cmp/shapley")
    assert body["values"] == [
        {"contributor_id": c, "value": v, "std_error": e}
        for c, v, e in zip(CROWD, SHAPLEY["values"], SHAPLEY["std_errors"], strict=True)
    ]
    assert body["relative_error"] == 0.009 and body["method"] == "permutation"
    assert body["as_of_round_index"] == 10
    assert body["fairness"] == {"round_index": 10, "pearson": 0.9, "spearman": 0.8}
    assert body["fairness_history"] == [
        {"round_index": 0, "pearson": None, "spearman": None},
        {"round_index": 2, "pearson": 0.5, "spearman": 0.4},
        {"round_index": 10, "pearson": 0.9, "spearman": 0.8},
    ]
    assert "fingerprint" not in body
    assert body["contributors"] == len(CROWD) and body["offset"] == 0
    page = await get_json(client, "/v1/campaigns/cmp/shapley?offset=1&limit=2")
    assert page["offset"] == 1 and page["values"] == body["values"][1:3]
    mine = await get_json(client, f"/v1/campaigns/cmp/shapley?contributor={CROWD[2]}")
    assert mine["values"] == [body["values"][2]]


async def test_shapley_404_until_computed(client: httpx.AsyncClient) -> None:
    for campaign_id in ("idle", "plain"):
        response = await client.get(f"/v1/campaigns/{campaign_id}/shapley")
        assert response.status_code == 404
        assert response.json()["detail"] == "no shapley values for this campaign"


async def test_a_rounds_members_are_paged(client: httpx.AsyncClient) -> None:
    first = await get_json(client, "/v1/campaigns/cmp/rounds/0/members?limit=3")
    assert first["round_id"] == "cmp:r00000" and first["members"] == len(CROWD)
    rest = await get_json(client, "/v1/campaigns/cmp/rounds/0/members?offset=3")
    entries = first["entries"] + rest["entries"]
    assert [e["contributor_id"] for e in entries] == CROWD
    assert [e["group_index"] for e in entries] == LABELS
    assert entries[0]["contribution_ids"] == [f"{CROWD[0]}-0"] and entries[0]["points"] == 1.0
    assert (await client.get("/v1/campaigns/cmp/rounds/9/members")).status_code == 404
