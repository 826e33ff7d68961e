"""`make demo`: the whole system on the local stack, with a synthetic crowd.

Starts Tansu + SecantusDB and every service (intake, selection, training, scoring, shapley,
gateway, balances) as its own process, registers a crowd of contributors, has them submit
feedback through both producers (the HTTP gateway with their tokens, and the Kafka producer
the CLI uses), mixes in duplicates and malformed records, and waits until intake has
accounted for every record. Then the same crowd submits preference points to a campaign whose
rounds run on their own (auto policy) through the services, and the demo prints the
leaderboard, the fairness figures and the check against the in-process engine, writes the
plots and tells where the APIs listen. The services stay up; `make down` stops everything.

    python -m infra.demo [--contributors 100] [--per-contributor 3] [--out out/demo]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorExists, ContributorStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import ensure_topics, started_broker
from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
from crowdsft.contracts.topics import FEEDBACK_SUBMITTED
from crowdsft.settings import Settings, settings_from
from infra import localstack
from infra.demo_rounds import run_campaign

REPO = Path(__file__).resolve().parents[1]
RUN_DIR = REPO / ".run"
CAMPAIGN = "demo"
PROMPT = "write a reddit comment."
OPENERS = ["Honestly,", "Wow,", "Ugh,", "Not gonna lie,", "Haha,", "Well,", "Man,"]
FEELINGS = [
    "this made my day",
    "I'm so proud of you",
    "that is really disappointing",
    "I'm a bit nervous about it",
    "thanks for sharing",
    "what a surprise",
    "this is hilarious",
    "I feel bad for them",
    "that's so sweet",
]
ENDINGS = ["!", ".", " :)", "...", " lol", " <3"]
ROUND_SERVICES = ("intake", "selection", "training", "scoring", "shapley")
SERVICE_PORTS = {"gateway": "CROWDSFT_GATEWAY_PORT", "balances": "CROWDSFT_BALANCES_PORT"}

console = Console()


def comment(rng: random.Random) -> str:
    text = f"{rng.choice(OPENERS)} {rng.choice(FEELINGS)}{rng.choice(ENDINGS)}"
    return f"{text} (#{rng.randrange(10**6)})"


def start_services(env: dict[str, str], run_dir: Path) -> dict[str, str]:
    """Each service in its own process with its PID file next to the stack's."""
    env = dict(env)
    for key in SERVICE_PORTS.values():
        env.setdefault(key, str(localstack.free_port()))
    for name in (*ROUND_SERVICES, *SERVICE_PORTS):
        pid = localstack.read_pid(run_dir, name)
        if pid is not None and localstack.pid_alive(pid):
            continue
        localstack.spawn(run_dir, name, [sys.executable, "-m", f"services.{name}"], env=env)
    (run_dir / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


async def wait_healthy(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not healthy after {timeout_s:.0f} s; see the run dir's logs/")


async def register_crowd(db: mongo.Database, size: int) -> dict[str, str]:
    """Contributor id -> token. Re-running the demo re-registers under fresh ids."""
    store = ContributorStore(db)
    suffix = time.strftime("%H%M%S")
    tokens: dict[str, str] = {}
    for n in range(size):
        contributor_id = f"crowd{n:03d}-{suffix}"
        try:
            _, tokens[contributor_id] = await store.register(contributor_id)
        except ContributorExists:
            continue
    return tokens


async def submit_all(
    settings: Settings, gateway: str, tokens: dict[str, str], per_contributor: int, seed: int
) -> dict[str, int]:
    rng = random.Random(seed)
    sent = {"gateway": 0, "producer": 0, "duplicates": 0, "malformed": 0}
    async with started_broker(settings, "crowdsft-demo") as broker:
        producer = FeedbackProducer(broker)
        events: list[FeedbackSubmitted] = []
        total = len(tokens) * per_contributor
        async with httpx.AsyncClient(base_url=gateway, timeout=10) as client:
            with Progress(console=console) as progress:
                task = progress.add_task("crowd submitting", total=total)
                for n, (contributor_id, token) in enumerate(tokens.items()):
                    for _ in range(per_contributor):
                        body = {"campaign_id": CAMPAIGN, "prompt": PROMPT, "response": comment(rng)}
                        if n % 5 < 3:  # three in five contributors use the HTTP gateway
                            reply = await client.post(
                                "/v1/feedback",
                                json=body,
                                headers={"Authorization": f"Bearer {token}"},
                            )
                            reply.raise_for_status()
                            sent["gateway"] += 1
                        else:
                            event = FeedbackSubmitted(
                                event_id=new_event_id(),
                                producer="demo-cli",
                                contributor_id=contributor_id,
                                client_timestamp=utc_now(),
                                **body,
                            )
                            events.append(event)
                            await producer.submit([event])
                            sent["producer"] += 1
                        progress.advance(task)
        # Some of the crowd resubmit, and some clients are broken: intake must cope.
        for event in rng.sample(events, min(5, len(events))):
            twin = event.model_copy(update={"event_id": new_event_id()})
            await producer.submit([twin])
            sent["duplicates"] += 1
        for raw in (
            b"{not json",
            b'{"campaign_id": "demo"}',
            b"[1, 2, 3]",
            json.dumps({"campaign_id": "nope", "prompt": "x"}).encode(),
            b"\xff\xfe",
        ):
            await broker.publish(raw, FEEDBACK_SUBMITTED)
            sent["malformed"] += 1
    return sent


async def wait_accounted(
    db: mongo.Database, expected: int, timeout_s: float = 120
) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = {
            "stored": await db[mongo.CONTRIBUTIONS].count_documents({"campaign_id": CAMPAIGN}),
            "rejected": await db[mongo.REJECTIONS].count_documents({}),
        }
        if counts["stored"] + counts["rejected"] >= expected:
            return counts
        await asyncio.sleep(0.3)
    raise RuntimeError(f"intake accounted for {counts} of {expected} records in {timeout_s} s")


async def latencies_ms(db: mongo.Database) -> list[float]:
    cursor = db[mongo.CONTRIBUTIONS].find(
        {"campaign_id": CAMPAIGN}, {"stored_at": 1, "submitted_at": 1}
    )
    return [(d["stored_at"] - d["submitted_at"]).total_seconds() * 1000 async for d in cursor]


async def rejection_reasons(db: mongo.Database) -> dict[str, int]:
    pipeline: list[dict[str, Any]] = [{"$group": {"_id": "$reason", "n": {"$sum": 1}}}]
    return {doc["_id"]: doc["n"] async for doc in await db[mongo.REJECTIONS].aggregate(pipeline)}


def plot(out: Path, sent: dict[str, int], reasons: dict[str, int], latency: list[float]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = ["via gateway", "via producer", *reasons]
    values = [sent["gateway"], sent["producer"], *reasons.values()]
    left.barh(labels, values, color=["#4C72B0", "#4C72B0", *["#C44E52"] * len(reasons)])
    left.set_title("Submitted (blue) and rejected by reason (red)")
    right.hist(latency, bins=30, color="#55A868")
    right.set_xlabel("submit-to-stored latency (ms)")
    right.set_title(f"{len(latency)} stored contributions")
    fig.tight_layout()
    path = out / "intake.png"
    fig.savefig(path, dpi=110)
    return path


async def run(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    env = start_services(localstack.up(args.run_dir), args.run_dir)
    settings = settings_from(env)
    gateway = f"http://127.0.0.1:{env['CROWDSFT_GATEWAY_PORT']}"
    balances = f"http://127.0.0.1:{env['CROWDSFT_BALANCES_PORT']}"
    async with mongo.opened(settings) as db:
        await ensure_topics(settings)
        await CampaignStore(db).create(CAMPAIGN, "make demo")
        await wait_healthy(f"{gateway}/openapi.json")
        await wait_healthy(f"{balances}/healthz")
        before = await wait_accounted(db, 0)
        tokens = await register_crowd(db, args.contributors)
        sent = await submit_all(settings, gateway, tokens, args.per_contributor, args.seed)
        expected = before["stored"] + before["rejected"] + sum(sent.values())
        counts = await wait_accounted(db, expected)
        reasons = await rejection_reasons(db)
        latency = await latencies_ms(db)
        console.print(f"feedback accounted for; now {args.rounds} rounds of a crowd campaign")
        crowd = await run_campaign(
            db, settings, list(tokens), balances, args.seed, args.rounds, args.out, console
        )

    summary = {
        "sent": sent,
        "stored_total": counts["stored"],
        "rejections_by_reason": reasons,
        "contributors": len(tokens),
        "gateway": gateway,
        "balances_api": balances,
        "round_campaign": crowd,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    png = plot(args.out, sent, reasons, latency)

    table = Table(title="crowdsft demo: feedback intake")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in sent.items():
        table.add_row(f"sent: {key}", str(value))
    table.add_row("stored contributions (campaign demo)", str(counts["stored"]))
    for reason, n in sorted(reasons.items()):
        table.add_row(f"rejected: {reason}", str(n))
    console.print(table)
    console.print(rounds_table(crowd))
    console.print(
        f"fairness (points vs Shapley, {crowd['rounds']} rounds): Pearson {crowd['pearson']:.3f},"
        f" Spearman {crowd['spearman']:.3f}; Shapley relative error"
        f" {crowd['shapley_relative_error']:.2%}"
    )
    console.print(
        f"same run in the in-process engine: final distance {crowd['engine_final_distance']:.4f}"
        f" vs {crowd['final_distance']:.4f} through the services; largest points difference"
        f" {crowd['max_points_difference_vs_engine']:.1e}"
    )
    console.print(f"results: {args.out / 'summary.json'}  plots: {png}, {crowd['plot']}")
    console.print(f"gateway:  {gateway}/docs   (POST /v1/feedback with a contributor token)")
    campaign = crowd["campaign_id"]
    console.print(f"balances API: {balances}/docs")
    console.print(f"  leaderboard: {balances}/v1/leaderboard?campaign={campaign}")
    console.print(f"  rounds:      {balances}/v1/campaigns/{campaign}/rounds")
    console.print(f"  shapley:     {balances}/v1/campaigns/{campaign}/shapley")
    console.print("services keep running for you to explore; stop everything with `make down`")


def rounds_table(crowd: dict[str, Any]) -> Table:
    table = Table(title=f"leaderboard of {crowd['campaign_id']} (top 10)")
    for column in ("rank", "contributor", "points"):
        table.add_column(column, justify="right" if column != "contributor" else "left")
    for entry in crowd["leaderboard"]["entries"]:
        table.add_row(str(entry["rank"]), entry["contributor_id"], f"{entry['points']:.3f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--contributors", type=int, default=100)
    parser.add_argument("--per-contributor", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="stack state and logs")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
