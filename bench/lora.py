"""The lora backend's speed with SmolLM2-135M: training examples/s, generation tokens/s, and
the wall time of one 4-group round. Writes (merges into) bench/results/lora.json.

    .venv/bin/python bench/lora.py                 # CPU: throughput + a round through the
                                                   # services on the local stack
    python bench/lora.py --section gpu --ray-round # GPU machine: throughput + a round of
                                                   # Ray tasks (no broker or database there)

The round is the paper's: 50 samples per candidate on the selection prompt plus 50 held-out
samples for the judge, 4 groups of 8 examples, 3 epochs of LoRA (the campaign defaults).
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdsft.llm.config import PAPER_PROMPT, LlmSpec  # noqa: E402

GROUPS, PER_GROUP = 4, 8
DATA = Path(
    os.environ.get("CROWDSFT_BENCH_COMMENTS", REPO.parent / "shared/data/goemotions/test.tsv")
)
FALLBACK = [
    "This is the best thing I have seen all day.",
    "I honestly don't know how I feel about this.",
    "Ugh, that is so frustrating, why would they do that?",
    "Thank you so much, this really helped me.",
]


def comments(n: int) -> list[str]:
    """Reddit comments for the examples: GoEmotions' test split if present, else a few."""
    if DATA.exists():
        lines = DATA.read_text(encoding="utf-8").splitlines()
        return [line.split("\t")[0] for line in lines[:n]]
    return [FALLBACK[i % len(FALLBACK)] + f" ({i})" for i in range(n)]


def throughput(spec: LlmSpec) -> dict[str, Any]:
    """Training examples/s and generation tokens/s of one process with all its threads."""
    import torch

    from crowdsft.llm_runtime.models import base_checkpoint, load_model, load_tokenizer, pick_device
    from crowdsft.llm_runtime.sampling import sample
    from crowdsft.llm_runtime.sft import Example, train_lora

    device = pick_device()
    checkpoint = base_checkpoint(spec.base_model)
    tokenizer = load_tokenizer(checkpoint)
    examples = [Example(PAPER_PROMPT, text) for text in comments(32)]
    model = load_model(checkpoint, device=device)
    tuned, report = train_lora(model, tokenizer, examples, spec.sft)
    samples = sample(tuned, tokenizer, [PAPER_PROMPT], spec.sampling)
    return {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "training_examples": report.examples,
        "training_seconds": round(report.seconds, 2),
        "training_examples_per_s": round(report.examples_per_s, 2),
        "generated_tokens": samples.new_tokens,
        "generation_seconds": round(samples.seconds, 2),
        "generation_tokens_per_s": round(samples.tokens_per_s, 1),
        "generation_batch": spec.sampling.batch_size,
    }


async def ray_round(spec: LlmSpec) -> dict[str, Any]:
    """One round of the backend's Ray work: measure the base, train and measure 4 groups at
    once, pick the winner. What the training service submits, without Kafka and MongoDB."""
    import numpy as np

    from crowdsft.adapters.ray_runner import RayRunner
    from crowdsft.llm_runtime.jobs import (
        EvaluateJob,
        ModelRef,
        TrainJob,
        Workspace,
        evaluate_model,
        train_candidate,
    )
    from crowdsft.llm_runtime.phi import load_phi
    from crowdsft.llm_runtime.sft import Example

    texts = comments(GROUPS * PER_GROUP)
    target = [float(x) for x in load_phi("minilm").embed(texts[:PER_GROUP]).mean(axis=0)]
    runner = RayRunner(cpus_per_task=1, gpus_per_task=1 / GROUPS)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(tmp)
        llm = spec.model_dump(mode="json")
        base = await runner.run(
            evaluate_model, EvaluateJob(ModelRef(spec.base_model), llm, target, workspace)
        )
        base_done = time.perf_counter() - started
        jobs = [
            TrainJob(
                ModelRef(spec.base_model),
                f"bench/g{g}/adapter",
                [Example(PAPER_PROMPT, t) for t in texts[g * PER_GROUP : (g + 1) * PER_GROUP]],
                [f"c{g}"] * PER_GROUP,
                llm,
                target,
                workspace,
            )
            for g in range(GROUPS)
        ]
        results = await asyncio.gather(*(runner.run(train_candidate, job) for job in jobs))
    elapsed = time.perf_counter() - started
    distances = [r.evaluation.distance for r in results]
    runner.stop()
    return {
        "how": "Ray tasks (base measured, then 4 groups at once), no broker or database",
        "ray_gpu": runner.gpu,
        "seconds": round(elapsed, 2),
        "base_measured_seconds": round(base_done, 2),
        "base_distance": base.distance,
        "candidate_distances": distances,
        "winner": int(np.argmin(distances)),
        "per_group_train_seconds": [round(r.train_seconds, 2) for r in results],
        "per_group_generation_seconds": [
            round(r.evaluation.generation_seconds, 2) for r in results
        ],
    }


async def services_round(spec: LlmSpec) -> dict[str, Any]:
    """One round through every service on the local stack, timed from opened to scored."""
    from crowdsft.adapters import mongo
    from crowdsft.adapters.campaign_store import CampaignStore
    from crowdsft.adapters.feedback_producer import FeedbackProducer
    from crowdsft.adapters.kafka import ensure_topics, started_broker
    from crowdsft.adapters.round_store import RoundStore
    from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
    from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
    from crowdsft.domain.lora_backend import LoraBackendSpec
    from crowdsft.domain.round import RoundStatus
    from crowdsft.llm_runtime.phi import load_phi
    from crowdsft.settings import settings_from
    from tests.integration.campaign_runs import start_services
    from tests.support.stack import localstack, wait_until

    texts = comments(GROUPS * PER_GROUP)
    target = [float(x) for x in load_phi("minilm").embed(texts[:PER_GROUP]).mean(axis=0)]
    n = len(texts)
    campaign = CampaignSpec(
        campaign_id="bench",
        target=target,
        n_groups=GROUPS,
        backend=LoraBackendSpec(llm=spec),
        policy=RoundPolicy(mode="auto", min_contributions=n, max_rounds=1),
    )
    with tempfile.TemporaryDirectory(prefix="crowdsft-lora-") as tmp:
        run_dir = Path(tmp)
        env = {**localstack().up(run_dir), "CROWDSFT_MONGO_DB": "bench", "CROWDSFT_ENV_FILE": ""}
        env["CROWDSFT_ARTIFACT_ROOT"] = str(run_dir / "artifacts")
        settings = settings_from(env)
        async with mongo.opened(settings) as db:
            await ensure_topics(settings)
            services = start_services(env, run_dir)
            try:
                for service in services.values():
                    wait_until(lambda s=service: "started successfully" in s.log(), 60, "start")
                await CampaignStore(db).create_with_spec(campaign)
                events = [
                    FeedbackSubmitted(
                        event_id=new_event_id(),
                        producer="bench",
                        campaign_id="bench",
                        contributor_id=f"c{i % (n // 2):02d}",
                        prompt=PAPER_PROMPT,
                        response=text,
                        client_timestamp=utc_now(),
                    )
                    for i, text in enumerate(texts)
                ]
                async with started_broker(settings, "bench") as broker:
                    await FeedbackProducer(broker).submit(events)
                rounds = RoundStore(db)
                while (done := await rounds.get("bench", 0)) is None:
                    await asyncio.sleep(0.05)
                started = time.perf_counter()
                deadline = started + 3_600
                while done.status is not RoundStatus.SCORED:
                    assert time.perf_counter() < deadline, "the round did not finish in an hour"
                    await asyncio.sleep(0.5)
                    done = await rounds.get("bench", 0) or done
                elapsed = time.perf_counter() - started
            finally:
                for service in services.values():
                    service.stop()
                localstack().down(run_dir, quiet=True)
    return {
        "how": "every service on the local stack; training submits to a local Ray cluster",
        "seconds": round(elapsed, 2),
        "base_distance": done.decision.base_distance if done.decision else None,
        "candidate_distances": [c.distance for c in done.decision.candidates]
        if done.decision
        else [],
        "winner_model_id": done.decision.winner_model_id if done.decision else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--section", default="cpu", help="cpu | gpu: the key results go under")
    parser.add_argument("--ray-round", action="store_true", help="round without the stack")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lora.json")
    args = parser.parse_args()
    spec = LlmSpec(phi="minilm")
    section: dict[str, Any] = {
        "model": spec.base_model,
        "settings": {"lora": spec.sft.model_dump(), "sampling": spec.sampling.model_dump()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print("throughput ...", flush=True)
    section["throughput"] = throughput(spec)
    print(json.dumps(section["throughput"], indent=2), flush=True)
    print("one 4-group round ...", flush=True)
    round_of = ray_round if args.ray_round else services_round
    section["round"] = asyncio.run(round_of(spec))
    print(json.dumps(section["round"], indent=2), flush=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[args.section] = section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
