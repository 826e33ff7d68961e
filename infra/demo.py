"""`make demo`: the whole system on the local stack, a crowd fine-tuning a real LLM.

Starts Tansu + SecantusDB and every service (intake, selection, training, scoring, shapley,
deadletters, gateway, balances, web) as its own process, then:
1. registers 24 contributors of different quality (kind, grumpy, a spammer, a copier), who
   send demonstrations to the campaign in `infra/campaigns/kind-replies.yaml` through the
   HTTP gateway with their tokens and through the Kafka producer the CLI uses; duplicates and
   malformed records are mixed in, and intake accounts for every record;
2. LoRA rounds of SmolLM2-135M-Instruct run on their own (auto policy) on the local Ray
   cluster, `phi` = MiniLM, target = the mean of the spec's reference answers; each round is
   printed as it is scored, then the base and final models' answers side by side, the
   leaderboard and points vs Shapley values (plots in the output folder);
3. a vector campaign (the paper's crowd simulation, 30 rounds) runs through the same
   services and is checked against the in-process engine.
The services stay up; `make down` stops everything.

    python -m infra.demo [--llm-model tiny] [--vector-contributors 100] [--out out/demo]
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
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from crowdsft.adapters import mongo
from crowdsft.adapters.contributor_store import ContributorExists, ContributorStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import ensure_topics, started_broker
from crowdsft.auth import hash_token, new_token
from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
from crowdsft.contracts.topics import FEEDBACK_SUBMITTED
from crowdsft.domain.campaign import CampaignSpec
from crowdsft.llm.config import PAPER_PROMPT
from crowdsft.settings import Settings, settings_from
from infra import localstack
from infra.demo_llm import (
    Writer,
    campaign_spec,
    crowd,
    demonstrations,
    follow_llm_campaign,
    open_campaign,
)
from infra.demo_rounds import run_campaign

REPO = Path(__file__).resolve().parents[1]
RUN_DIR = REPO / ".run"
ROUND_SERVICES = ("intake", "selection", "training", "scoring", "shapley")
KEEPERS = ("deadletters",)  # the dead letters, for the web app's operator counts
SERVICE_PORTS = {"gateway": "CROWDSFT_GATEWAY_PORT", "balances": "CROWDSFT_BALANCES_PORT",
                 "web": "CROWDSFT_WEB_PORT"}  # fmt: skip
PROBED = (*ROUND_SERVICES, *KEEPERS)  # workers: /livez, /readyz, /metrics on a port each
COUNTERS = ("crowdsft_feedback_accepted_total", "crowdsft_feedback_rejected_total",
            "crowdsft_feedback_dead_lettered_total", "crowdsft_rounds_opened_total",
            "crowdsft_rounds_decided_total", "crowdsft_rounds_scored_total",
            "crowdsft_training_seconds_count", "crowdsft_rate_limit_refusals_total")  # fmt: skip
# LoRA rounds take tens of seconds: a consumer need not ask an idle broker 50 times a second,
# and on 2 cores those polls cost the model workers a third of their speed (bench/lora.py).
FETCH_WAIT_MS = "100"

console = Console()


def operator_token(run_dir: Path) -> str:
    """The demo's operator token, kept (owner-only) beside the stack for services already up."""
    path = run_dir / "operator-token"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(new_token())
    return path.read_text().strip()


def start_services(env: dict[str, str], run_dir: Path) -> dict[str, str]:
    """Each service in its own process with its PID file next to the stack's."""
    env = dict(env)
    env.setdefault("CROWDSFT_GATEWAY_OPERATOR_TOKEN_SHA256", hash_token(operator_token(run_dir)))
    for key in SERVICE_PORTS.values():
        env.setdefault(key, str(localstack.free_port()))
    env["CROWDSFT_KAFKA_FETCH_MAX_WAIT_MS"] = FETCH_WAIT_MS
    # The web app talks only to the gateway and the read API.
    env["CROWDSFT_WEB_GATEWAY_URL"] = f"http://127.0.0.1:{env['CROWDSFT_GATEWAY_PORT']}"
    env["CROWDSFT_WEB_BALANCES_URL"] = f"http://127.0.0.1:{env['CROWDSFT_BALANCES_PORT']}"
    env.setdefault("CROWDSFT_ARTIFACT_ROOT", str(run_dir / "artifacts"))
    # The LLM workers start while the crowd submits, not when the first round asks.
    env.setdefault("CROWDSFT_TRAINING_WARM_BACKENDS", "lora")
    for name in PROBED:
        env.setdefault(probe_key(name), str(localstack.free_port()))
    for name in (*ROUND_SERVICES, *KEEPERS, *SERVICE_PORTS):
        pid = localstack.read_pid(run_dir, name)
        if pid is not None and localstack.pid_alive(pid):
            continue
        own = {**env, "CROWDSFT_PROBE_PORT": env[probe_key(name)]} if name in PROBED else env
        localstack.spawn(run_dir, name, [sys.executable, "-m", f"services.{name}"], env=own)
    (run_dir / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


def probe_key(name: str) -> str:
    return f"CROWDSFT_PROBE_PORT_{name.upper()}"


def metrics_urls(env: dict[str, str]) -> dict[str, str]:
    urls = {name: f"http://127.0.0.1:{env[probe_key(name)]}/metrics" for name in PROBED}
    urls |= {name: f"http://127.0.0.1:{env[key]}/metrics" for name, key in SERVICE_PORTS.items()}
    return urls


async def counted(urls: dict[str, str]) -> dict[str, float]:
    """The business counters summed over every service, as a Prometheus would sum them."""
    totals = dict.fromkeys(COUNTERS, 0.0)
    async with httpx.AsyncClient(timeout=5) as client:
        for url in urls.values():
            for family in text_string_to_metric_families((await client.get(url)).text):
                for sample in family.samples:
                    if sample.name in totals:
                        totals[sample.name] += sample.value
    return totals


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


async def register_crowd(db: mongo.Database, writers: list[Writer]) -> dict[str, str]:
    """Contributor id -> token."""
    store = ContributorStore(db)
    tokens: dict[str, str] = {}
    for writer in writers:
        try:
            _, tokens[writer.contributor_id] = await store.register(writer.contributor_id)
        except ContributorExists:
            continue
    return tokens


async def broken_clients(
    settings: Settings, texts: list[tuple[Writer, str]], spec: CampaignSpec, rng: random.Random
) -> dict[str, int]:
    """Some of the crowd resubmit under a new event id, and some clients are broken."""
    sent = {"duplicates": 0, "malformed": 0}
    async with started_broker(settings, "crowdsft-demo") as broker:
        producer = FeedbackProducer(broker)
        for writer, text in rng.sample(texts, 5):
            event = FeedbackSubmitted(
                event_id=new_event_id(),
                producer="demo-cli",
                campaign_id=spec.campaign_id,
                contributor_id=writer.contributor_id,
                prompt=PAPER_PROMPT,
                response=text,
                client_timestamp=utc_now(),
            )
            await producer.submit([event])
            sent["duplicates"] += 1
        for raw in (
            b"{not json",
            json.dumps({"campaign_id": spec.campaign_id}).encode(),
            b"[1, 2, 3]",
            json.dumps({"campaign_id": "nope", "prompt": "x"}).encode(),
            b"\xff\xfe",
        ):
            await broker.publish(raw, FEEDBACK_SUBMITTED)
            sent["malformed"] += 1
    return sent


async def accounted(
    db: mongo.Database, campaign_id: str, expected: int, timeout_s: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stored = await db[mongo.CONTRIBUTIONS].count_documents({"campaign_id": campaign_id})
        rejected = await db[mongo.REJECTIONS].count_documents({})
        if stored + rejected >= expected:
            pipeline: list[dict[str, Any]] = [{"$group": {"_id": "$reason", "n": {"$sum": 1}}}]
            cursor = await db[mongo.REJECTIONS].aggregate(pipeline)
            reasons = {doc["_id"]: doc["n"] async for doc in cursor}
            return {"stored": stored, "rejected_by_reason": reasons}
        await asyncio.sleep(0.3)
    raise RuntimeError(f"intake did not account for {expected} records in {timeout_s} s")


async def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    env = start_services(localstack.up(args.run_dir), args.run_dir)
    settings = settings_from(env)
    gateway = f"http://127.0.0.1:{env['CROWDSFT_GATEWAY_PORT']}"
    balances = f"http://127.0.0.1:{env['CROWDSFT_BALANCES_PORT']}"
    web = f"http://127.0.0.1:{env['CROWDSFT_WEB_PORT']}"
    suffix = time.strftime("%H%M%S")
    async with mongo.opened(settings) as db:
        await ensure_topics(settings)
        await wait_healthy(f"{gateway}/openapi.json")
        await wait_healthy(f"{balances}/healthz")
        await wait_healthy(f"{web}/healthz")
        writers = crowd(suffix)
        tokens = await register_crowd(db, writers)
        spec = campaign_spec(suffix, args.llm_model)
        console.rule(f"LLM campaign {spec.campaign_id}: {spec.name}")
        rng = random.Random(args.seed)
        texts = demonstrations(writers, rng)
        phases = {"start": time.perf_counter() - started}
        sent = await open_campaign(db, settings, gateway, tokens, texts, spec, console)
        sent |= await broken_clients(settings, texts, spec, rng)
        intake = await accounted(db, spec.campaign_id, sum(sent.values()))
        phases["submit"] = time.perf_counter() - started - sum(phases.values())
        llm = await follow_llm_campaign(db, balances, writers, spec, args.out, console)
        phases["llm_rounds"] = time.perf_counter() - started - sum(phases.values())
        console.rule(f"vector campaign: the paper's crowd simulation, {args.rounds} rounds")
        ids = [f"point{n:03d}-{suffix}" for n in range(args.vector_contributors)]
        vector = await run_campaign(
            db, settings, ids, balances, args.seed, args.rounds, args.out, console
        )
        phases["vector_campaign"] = time.perf_counter() - started - sum(phases.values())
        urls = metrics_urls(env)
        counters = await counted(urls)

    summary = {
        "seconds": round(time.perf_counter() - started, 1),
        # Where the time went: stack and services up, submissions stored, LLM rounds, vector.
        "phase_seconds": {name: round(seconds, 1) for name, seconds in phases.items()},
        "sent": sent,
        "stored_total": intake["stored"],
        "rejections_by_reason": intake["rejected_by_reason"],
        "contributors": len(writers),
        "gateway": gateway,
        "balances_api": balances,
        "web": web,
        "operator_token_file": str(args.run_dir / "operator-token"),
        "metrics": urls,
        "counters": counters,
        "llm_campaign": llm,
        "round_campaign": vector,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    report(summary, args.out)


def report(summary: dict[str, Any], out: Path) -> None:
    table = Table(title="feedback intake (the LLM campaign)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in summary["sent"].items():
        table.add_row(f"sent: {key}", str(value))
    table.add_row("stored contributions", str(summary["stored_total"]))
    for reason, n in sorted(summary["rejections_by_reason"].items()):
        table.add_row(f"rejected: {reason}", str(n))
    console.print(table)
    counters = Table(title="what the services counted (/metrics, summed over services)")
    counters.add_column("counter")
    counters.add_column("value", justify="right")
    for name, value in summary["counters"].items():
        counters.add_row(name, f"{value:.0f}")
    console.print(counters)
    vector = summary["round_campaign"]
    console.print(
        f"vector campaign: final distance {vector['final_distance']:.4f} through the services,"
        f" {vector['engine_final_distance']:.4f} in the in-process engine; largest points"
        f" difference {vector['max_points_difference_vs_engine']:.1e}; points vs Shapley"
        f" Pearson {vector['pearson']:.3f}, Spearman {vector['spearman']:.3f}"
    )
    llm = summary["llm_campaign"]
    console.print(f"results: {out / 'summary.json'}")
    console.print(f"plots: {llm['plot']} (LLM rounds), {vector['plot']} (vector rounds)")
    gateway, balances = summary["gateway"], summary["balances_api"]
    console.print(f"gateway:  {gateway}/docs   (POST /v1/feedback with a contributor token)")
    console.print(f"balances API: {balances}/docs")
    for campaign in (llm["campaign_id"], vector["campaign_id"]):
        console.print(f"  leaderboard: {balances}/v1/leaderboard?campaign={campaign}")
        console.print(f"  rounds:      {balances}/v1/campaigns/{campaign}/rounds")
        console.print(f"  lineage:     {balances}/v1/campaigns/{campaign}/lineage")
    console.print("metrics (also /livez, /readyz):")
    for name, url in summary["metrics"].items():
        console.print(f"  {name:<12} {url}")
    console.print(f"web app:  {summary['web']}/  (sign in with a contributor token: "
                  "`crowdsft contributor create --id you`)")  # fmt: skip
    console.print(f"  operators sign in with the token in {summary['operator_token_file']}"
                  " (campaigns, rounds, dead letters)")  # fmt: skip
    console.print(
        f"the whole demo took {summary['seconds']:.0f} s; services keep running for "
        "you to explore; stop everything with `make down`"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--llm-model",
        choices=["smollm2-135m-instruct", "tiny"],
        default=None,
        help="override the spec file's base model (tiny: the tests')",
    )
    parser.add_argument("--vector-contributors", type=int, default=100)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--rounds", type=int, default=30, help="rounds of the vector campaign")
    parser.add_argument("--run-dir", type=Path, default=RUN_DIR, help="stack state and logs")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "demo")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
