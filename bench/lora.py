"""The lora backend's speed with SmolLM2-135M, and what the faster sampling does to quality.
Writes (merges into) bench/results/lora.json, one section per machine kind.

    .venv/bin/python bench/lora.py                 # CPU: throughput, quality, and one round
                                                   # through every service on the local stack
    python bench/lora.py --section gpu --ray-round # GPU machine: the same, with the round run
                                                   # on the resident workers alone

- training: LoRA examples/s at the campaign defaults (32 examples, 3 epochs, batch 8);
- generation at batch 50 (one prompt, 50 answers of at most 48 tokens, the tuned model):
  tokens/s of transformers' `generate` (what the backend used before) and of the backend's
  own decoder in float32 and in int8 (bfloat16 on a GPU), side by side;
- quality: the mean MiniLM distance of a fixed model's answers to a fixed target, drawn by
  each of the three, with standard errors (the decoder must not move it beyond them);
- one 4-group round (4 x 8 examples, 50 selection + 2 x 50 held-out answers per candidate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from crowdsft.llm.config import PAPER_PROMPT, LlmSpec, SamplingConfig  # noqa: E402

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


def hf_generate(
    model: Any, tokenizer: Any, prompt: str, cfg: SamplingConfig
) -> tuple[list[str], int, float]:
    """transformers' sampler, as the backend called it before its own decoder."""
    import torch

    from crowdsft.llm_runtime.sft import chat_prompt

    tokenizer.padding_side = "left"
    batch = tokenizer(
        [chat_prompt(tokenizer, prompt)] * cfg.samples,
        return_tensors="pt",
        padding=True,
        add_special_tokens=False,
    )
    stops = sorted(set(tokenizer.all_special_ids))
    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **batch,
            do_sample=True,
            temperature=cfg.temperature,
            top_k=cfg.top_k,
            top_p=cfg.top_p,
            max_new_tokens=cfg.max_new_tokens,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )
    seconds = time.perf_counter() - started
    generated = out[:, batch["input_ids"].shape[1] :]
    tokens = int(torch.isin(generated, torch.tensor(stops), invert=True).sum())
    texts = [t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]
    return texts, tokens, seconds


def samplers(model: Any, tokenizer: Any, device: str) -> dict[str, Any]:
    """name -> (prompt, cfg) -> (texts, tokens, seconds), for the three ways of sampling."""
    from crowdsft.llm_runtime.sampling import sample
    from crowdsft.llm_runtime.worker import sampling_model

    fast = "int8" if device == "cpu" else "bfloat16"
    quantised = sampling_model(model, fast, device)

    def ours(chosen: Any) -> Any:
        def run(prompt: str, cfg: SamplingConfig) -> tuple[list[str], int, float]:
            done = sample(chosen, tokenizer, [prompt], cfg)
            return done.texts, done.new_tokens, done.seconds

        return run

    return {
        "transformers_generate_float32": lambda p, c: hf_generate(model, tokenizer, p, c),
        "decoder_float32": ours(model),
        f"decoder_{fast}": ours(quantised),
    }


def throughput_and_quality(spec: LlmSpec, quality_samples: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from crowdsft.llm_runtime.models import base_checkpoint, load_model, load_tokenizer, pick_device
    from crowdsft.llm_runtime.phi import load_phi
    from crowdsft.llm_runtime.sft import Example, train_lora

    device = pick_device()
    checkpoint = base_checkpoint(spec.base_model)
    tokenizer = load_tokenizer(checkpoint)
    texts = comments(32)
    model = load_model(checkpoint, device=device)
    tuned, report = train_lora(
        model, tokenizer, [Example(PAPER_PROMPT, t) for t in texts], spec.sft
    )
    tuned = tuned.merge_and_unload().eval()
    section: dict[str, Any] = {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "training_examples": report.examples,
        "training_seconds": round(report.seconds, 2),
        "training_examples_per_s": round(report.examples_per_s, 2),
        "generation_batch": spec.sampling.samples,
        "generation": {},
    }
    for name, run in samplers(tuned, tokenizer, device).items():
        _, tokens, seconds = run(PAPER_PROMPT, spec.sampling)
        section["generation"][name] = {
            "tokens": tokens,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
        }
        print(name, section["generation"][name], flush=True)
    base = section["generation"]["transformers_generate_float32"]["tokens_per_s"]
    for row in section["generation"].values():
        row["vs_transformers_generate"] = round(row["tokens_per_s"] / base, 2)

    # Quality: the same fixed model (the tuned one) and target, many answers per sampler.
    phi = load_phi("minilm")
    target = phi.embed(texts[:PER_GROUP]).mean(axis=0)
    cfg = spec.sampling.model_copy(update={"samples": quality_samples, "seed": 11})
    quality: dict[str, Any] = {"samples": quality_samples, "target": "mean MiniLM of 8 comments"}
    for name, run in samplers(tuned, tokenizer, device).items():
        answers, _, _ = run(PAPER_PROMPT, cfg)
        distances = np.linalg.norm(phi.embed(answers) - target[None, :], axis=1)
        quality[name] = {
            "mean_distance": round(float(distances.mean()), 4),
            "std_error": round(float(distances.std(ddof=1) / math.sqrt(len(distances))), 4),
        }
        print(name, quality[name], flush=True)
    reference = quality["transformers_generate_float32"]
    for name in list(quality):
        if name.startswith("decoder_"):
            row = quality[name]
            joint = math.hypot(row["std_error"], reference["std_error"])
            row["difference_vs_transformers"] = round(
                row["mean_distance"] - reference["mean_distance"], 4
            )
            row["difference_in_std_errors"] = round(row["difference_vs_transformers"] / joint, 2)
    section["quality"] = quality
    return section


async def ray_round(spec: LlmSpec) -> dict[str, Any]:
    """One round on the resident workers: measure the base, train and measure 4 groups. What
    the training service hands to the workers, without Kafka and MongoDB."""
    import numpy as np

    from crowdsft.adapters.ray_workers import RayWorkers
    from crowdsft.llm_runtime.jobs import EvaluateJob, ModelRef, TrainJob, Workspace
    from crowdsft.llm_runtime.phi import load_phi
    from crowdsft.llm_runtime.sft import Example
    from crowdsft.llm_runtime.worker import ModelWorker

    texts = comments(GROUPS * PER_GROUP)
    target = [float(x) for x in load_phi("minilm").embed(texts[:PER_GROUP]).mean(axis=0)]
    with tempfile.TemporaryDirectory() as tmp:
        workers = RayWorkers(ModelWorker, (tmp, None, None), gpus_per_worker=1 / GROUPS)
        workspace = Workspace(tmp)
        llm = spec.model_dump(mode="json")
        started = time.perf_counter()
        base = await workers.call(
            "evaluate", EvaluateJob(ModelRef(spec.base_model), llm, target, workspace)
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
        results = await asyncio.gather(*(workers.call("train", job) for job in jobs))
        elapsed = time.perf_counter() - started
        workers.stop()
    distances = [r.evaluation.distance for r in results]
    return {
        "how": "resident workers on Ray (base measured, then 4 groups), no broker or database",
        "ray_gpu": workers.gpu,
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


async def services_round(spec: LlmSpec, env_extra: dict[str, str]) -> dict[str, Any]:
    """One round through every service on the local stack, timed from opened to scored (the
    workers start, and the base is measured, before the round opens)."""
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
        env.update(env_extra)
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
                submitted = time.perf_counter()
                async with started_broker(settings, "bench") as broker:
                    await FeedbackProducer(broker).submit(events)
                rounds = RoundStore(db)
                while (done := await rounds.get("bench", 0)) is None:
                    await asyncio.sleep(0.05)
                started = time.perf_counter()
                deadline = started + 3_600
                while done.status is not RoundStatus.SCORED:
                    assert time.perf_counter() < deadline, "the round did not finish in an hour"
                    await asyncio.sleep(0.2)
                    done = await rounds.get("bench", 0) or done
                elapsed = time.perf_counter() - started
                total = time.perf_counter() - submitted
            finally:
                for service in services.values():
                    service.stop()
                localstack().down(run_dir, quiet=True)
    decision = done.decision
    assert decision is not None
    return {
        "how": "every service on the local stack; training hands the jobs to resident workers",
        "settings": env_extra,
        "seconds": round(elapsed, 2),
        "seconds_from_first_submission": round(total, 2),
        "base_distance": decision.base_distance,
        "candidate_distances": [c.distance for c in decision.candidates],
        "winner_model_id": decision.winner_model_id,
        "per_group_train_seconds": [c.metrics.get("train_seconds") for c in decision.candidates],
        "per_group_generation_seconds": [
            c.metrics.get("generation_seconds") for c in decision.candidates
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--section", default="cpu", help="cpu | gpu: the key results go under")
    parser.add_argument("--ray-round", action="store_true", help="round without the stack")
    parser.add_argument("--quality-samples", type=int, default=200)
    parser.add_argument("--round-only", action="store_true", help="skip throughput and quality")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="CROWDSFT_X=V",
        help="a setting for the round's services (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "lora.json")
    args = parser.parse_args()
    spec = LlmSpec(phi="minilm")
    section: dict[str, Any] = {
        "model": spec.base_model,
        "settings": {"lora": spec.sft.model_dump(), "sampling": spec.sampling.model_dump()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.round_only:
        section = results.get(args.section, section)
    else:
        print("throughput and quality ...", flush=True)
        section["throughput"] = throughput_and_quality(spec, args.quality_samples)
    print("one 4-group round ...", flush=True)
    extra = dict(item.split("=", 1) for item in args.set)
    round_ = ray_round(spec) if args.ray_round else services_round(spec, extra)
    section["round"] = asyncio.run(round_)
    print(json.dumps(section["round"], indent=2), flush=True)
    results[args.section] = section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
