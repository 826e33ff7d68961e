"""How the round loop scales with the crowd: 100 to 100,000 contributors, one contribution each.

Private Tansu + SecantusDB; intake, selection, training, scoring, shapley and the read API as
their own processes; a vector campaign (4 groups, rank points, random grouping, l2) whose
contributors each submit their point through the producer, then rounds under the auto policy.
For each crowd size it records:
- round wall time (each round's opened -> scored, from the round documents) and rounds/s
  (first round opened -> last round scored);
- the largest document in every collection the rounds write, and the largest record on every
  round topic (the limits: MongoDB 16 MB, Kafka's default 1 MiB; the issue's bar is 1 MB);
- the read API's leaderboard and a contributor's summary (balance and rank) latencies, p50 and
  p95 over repeated requests, for the campaign and over all campaigns.
Writes bench/results/scale.json.

    .venv/bin/python bench/scale.py [--sizes 100 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdsft.adapters import mongo  # noqa: E402
from crowdsft.adapters.campaign_store import CampaignStore  # noqa: E402
from crowdsft.adapters.feedback_producer import FeedbackProducer  # noqa: E402
from crowdsft.adapters.kafka import ensure_topics, started_broker  # noqa: E402
from crowdsft.contracts import topics  # noqa: E402
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy  # noqa: E402
from crowdsft.domain.crowd import point_submissions  # noqa: E402
from crowdsft.domain.round import RoundStatus  # noqa: E402
from crowdsft.engine.crowd import sample_crowd, synthetic_population  # noqa: E402
from crowdsft.settings import settings_from  # noqa: E402
from infra.localstack import free_port  # noqa: E402
from tests.integration.campaign_runs import start_service, start_services  # noqa: E402
from tests.support.kafka_io import record_sizes  # noqa: E402
from tests.support.sizes import largest_documents  # noqa: E402
from tests.support.stack import localstack, wait_until  # noqa: E402

SIZES = (100, 1_000, 10_000, 100_000)
ROUNDS = {100: 10, 1_000: 10, 10_000: 10, 100_000: 3}
LIMIT_BYTES = 1_000_000
ROUND_TOPICS = [topics.ROUND_OPENED, topics.TRAINING_REQUESTED, topics.CANDIDATE_TRAINED,
                topics.CANDIDATE_EVALUATED, topics.ROUND_DECIDED, topics.POINTS_AWARDED,
                topics.SHAPLEY_COMPUTED]  # fmt: skip
REQUESTS = 30
FETCH_WAIT_MS = "100"


def spec_of(n: int, rounds: int, target: list[float]) -> CampaignSpec:
    return CampaignSpec(
        campaign_id=f"scale{n}",
        target=target,
        n_groups=4,
        grouping="random",
        evaluation="l2",
        points_rule="rank",
        policy=RoundPolicy(mode="auto", min_contributions=n, max_rounds=rounds),
        seed=3,
    )


async def latencies(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    seconds = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = await client.get(url)
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
    ordered = sorted(seconds)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 2),
    }


async def run(n: int, rounds: int, run_dir: Path) -> dict[str, Any]:
    env = {**localstack().up(run_dir), "CROWDSFT_MONGO_DB": "bench", "CROWDSFT_ENV_FILE": ""}
    env["CROWDSFT_BALANCES_PORT"] = str(free_port())
    env["CROWDSFT_KAFKA_FETCH_MAX_WAIT_MS"] = FETCH_WAIT_MS  # as make demo runs the services
    settings = settings_from(env)
    # A MovieLens-like population as large as the crowd (the built-in one has 610 people).
    rng = np.random.default_rng(2)
    crowd = sample_crowd(synthetic_population(rng, n_people=n + 1), n, rng)
    spec = spec_of(n, rounds, [float(x) for x in crowd.expert])
    ids = [f"c{i:06d}" for i in range(n)]
    async with mongo.opened(settings) as db:
        await ensure_topics(settings)
        services = start_services(env, run_dir)
        services["balances"] = start_service("balances", env, run_dir)
        try:
            for service in services.values():
                wait_until(lambda s=service: "start" in s.log(), 60, "service start")
            await CampaignStore(db).create_with_spec(spec)
            submitted = time.perf_counter()
            async with started_broker(settings, "bench-crowd") as broker:
                events = point_submissions(spec.campaign_id, ids, crowd.users, producer="bench")
                await FeedbackProducer(broker).submit(events)
            while await db[mongo.ROUNDS].find_one({"campaign_id": spec.campaign_id}) is None:
                await asyncio.sleep(0.05)
            first_opened = time.perf_counter()
            deadline = first_opened + 3_600
            last = f"{spec.campaign_id}:r{rounds - 1:05d}"
            while (await db[mongo.ROUNDS].find_one({"_id": last, "status": "scored"})) is None:
                dead = [name for name, s in services.items() if not s.alive]
                assert not dead, f"{dead} died: " + services[dead[0]].log()[-3000:]
                assert time.perf_counter() < deadline, "the rounds did not finish in an hour"
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - first_opened
            # Shapley runs beside the rounds (nothing waits for it) and may lag behind them.
            while ((record := await db[mongo.SHAPLEY].find_one({"_id": spec.campaign_id}))
                   is None or record["as_of_round_index"] < rounds - 1):  # fmt: skip
                assert time.perf_counter() < deadline, "Shapley did not finish in an hour"
                await asyncio.sleep(0.1)
            shapley_done = time.perf_counter() - first_opened
            heads = [doc async for doc in db[mongo.ROUNDS].find({"campaign_id": spec.campaign_id})]
            assert all(h["status"] == RoundStatus.SCORED.value for h in heads)
            per_round = [(h["scored_at"] - h["opened_at"]).total_seconds() for h in heads]
            base = f"http://127.0.0.1:{env['CROWDSFT_BALANCES_PORT']}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                reads = {
                    "leaderboard_campaign": await latencies(
                        client, f"/v1/leaderboard?campaign={spec.campaign_id}&limit=10"
                    ),
                    "leaderboard_all": await latencies(client, "/v1/leaderboard?limit=10"),
                    "contributor_rank_campaign": await latencies(
                        client, f"/v1/contributors/{ids[n // 2]}?campaign={spec.campaign_id}"
                    ),
                    "contributor_rank_all": await latencies(
                        client, f"/v1/contributors/{ids[n // 2]}"
                    ),
                }
            documents = await largest_documents(db)
            events = await record_sizes(env["CROWDSFT_KAFKA_BOOTSTRAP"], ROUND_TOPICS)
        finally:
            for service in services.values():
                service.stop()
            localstack().down(run_dir, quiet=True)
    largest = max([*documents.values(), *events.values()])
    return {
        "contributors": n,
        "rounds": rounds,
        "submission_to_first_round_s": round(first_opened - submitted, 2),
        "rounds_seconds": round(elapsed, 2),
        "rounds_per_second": round(rounds / elapsed, 3),
        "round_seconds_median": round(float(np.median(per_round)), 3),
        "round_seconds_max": round(max(per_round), 3),
        "last_shapley_after_s": round(shapley_done, 2),
        "largest_document_bytes": documents,
        "largest_event_bytes": events,
        "nothing_above_1_mb": largest <= LIMIT_BYTES,
        "read_api": reads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = {int(r["contributors"]): r for r in results.get("runs", [])}
    for n in args.sizes:
        print(f"{n} contributors ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="crowdsft-scale-") as tmp:
            runs[n] = asyncio.run(run(n, ROUNDS.get(n, 3), Path(tmp)))
        print(json.dumps(runs[n], indent=2), flush=True)
    result = {
        "setting": "vector backend, one contribution per contributor, 4 groups, rank points, "
        "random grouping, l2; Shapley every round (size_strata above 500 contributors for l2); "
        f"CROWDSFT_KAFKA_FETCH_MAX_WAIT_MS={FETCH_WAIT_MS}",
        "runs": [runs[n] for n in sorted(runs)],
        "targets": {"10000_rounds_per_second": 1.0, "100000_largest_bytes": LIMIT_BYTES},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
