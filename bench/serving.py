"""Serving throughput: concurrent chat requests against the serving service on the local stack.

Starts a private Tansu + SecantusDB, creates a lora campaign (its current model is the base,
SmolLM2-135M-Instruct by default), runs `services.serving` as its own process and sends the
same chat request `--concurrency` times at once, then the same number one after another
(unseeded, so concurrent requests may share decode steps; a seeded request is batched only
with requests of the same seed, which keeps it repeatable). Writes bench/results/serving.json:
requests/s and generated tokens/s for both, so the batching's gain is a ratio from one run.

    .venv/bin/python bench/serving.py [--concurrency 32] [--max-tokens 48] [--model tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdsft.adapters import mongo  # noqa: E402
from crowdsft.adapters.campaign_store import CampaignStore  # noqa: E402
from crowdsft.adapters.contributor_store import ContributorStore  # noqa: E402
from crowdsft.adapters.kafka import ensure_topics  # noqa: E402
from crowdsft.domain.campaign import CampaignSpec  # noqa: E402
from crowdsft.domain.lora_backend import LoraBackendSpec  # noqa: E402
from crowdsft.llm.config import PHI_DIMS, LlmSpec  # noqa: E402
from crowdsft.settings import settings_from  # noqa: E402
from infra.localstack import free_port  # noqa: E402
from tests.support.stack import ServiceProcess, localstack  # noqa: E402

PROMPT = "Write a short, kind reply to a friend who just got a new job."


async def one(http: httpx.AsyncClient, url: str, token: str, max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    answer = await http.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"model": "bench", "messages": [{"role": "user", "content": PROMPT}],
              "max_tokens": max_tokens, "temperature": 0.8},
    )  # fmt: skip
    answer.raise_for_status()
    return time.perf_counter() - started, int(answer.json()["usage"]["completion_tokens"])


def figures(seconds: float, answers: list[tuple[float, int]]) -> dict[str, Any]:
    tokens = sum(t for _, t in answers)
    latencies = sorted(s for s, _ in answers)
    return {
        "requests": len(answers),
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(answers) / seconds, 3),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "latency_s": {
            "p50": round(latencies[len(latencies) // 2], 2),
            "max": round(latencies[-1], 2),
        },
    }


async def run(run_dir: Path, model: str, concurrency: int, max_tokens: int) -> dict[str, Any]:
    port = free_port()
    env = {
        **localstack().up(run_dir),
        "CROWDSFT_MONGO_DB": "bench",
        "CROWDSFT_ENV_FILE": "",
        "CROWDSFT_SERVING_PORT": str(port),
        "CROWDSFT_ARTIFACT_ROOT": str(run_dir / "art"),
    }
    settings = settings_from(env)
    client = mongo.connect(settings)
    db = mongo.database(client, settings)
    await mongo.ensure_indexes(db)
    await ensure_topics(settings)
    llm = LlmSpec(base_model=model, phi="minilm")  # type: ignore[arg-type]
    spec = CampaignSpec(campaign_id="bench", target=[0.0] * PHI_DIMS["minilm"],
                        backend=LoraBackendSpec(llm=llm))  # fmt: skip
    await CampaignStore(db).create_with_spec(spec)
    _, token = await ContributorStore(db).register("bench")
    serving = ServiceProcess("services.serving", env, run_dir / "serving.log").start()
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=1800) as http:
            for _ in range(600):
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
            await one(http, url, token, 4)  # loads the model: not timed
            started = time.perf_counter()
            together = await asyncio.gather(
                *(one(http, url, token, max_tokens) for _ in range(concurrency))
            )
            concurrent = figures(time.perf_counter() - started, list(together))
            print("concurrent:", concurrent, flush=True)
            started = time.perf_counter()
            alone = [await one(http, url, token, max_tokens) for _ in range(concurrency)]
            sequential = figures(time.perf_counter() - started, alone)
            print("sequential:", sequential, flush=True)
    finally:
        serving.stop()
        await client.close()
        localstack().down(run_dir, quiet=True)
    return {
        "concurrent": concurrent,
        "one_at_a_time": sequential,
        "batching_speedup_requests_per_s": round(
            concurrent["requests_per_s"] / sequential["requests_per_s"], 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crowdsft-bench-") as tmp:
        measured = asyncio.run(run(Path(tmp), args.model, args.concurrency, args.max_tokens))
    result = {
        "benchmark": "serving: chat completions through services.serving on the local stack",
        "command": "python bench/serving.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "precision": "float32 (the base model; no round won)",
        "prompt": PROMPT,
        "max_tokens": args.max_tokens,
        "sampling": "temperature 0.8, top_p 1, unseeded",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        **measured,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
