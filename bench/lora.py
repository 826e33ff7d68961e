"""The lora backend's speed with SmolLM2-135M, and what the faster sampling does to quality.
Writes (merges into) bench/results/lora.json, one section per machine kind.

    .venv/bin/python bench/lora.py                 # CPU: throughput, quality, and one round
                                                   # through every service on the local stack
    python bench/lora.py --section gpu --ray-round # GPU machine: the same, with the round run
                                                   # on the resident workers alone

- training: LoRA examples/s at the campaign defaults (32 examples, 3 epochs, batch 8);
- generation at batch 50 (the tuned model, answers of at most 48 tokens), for one prompt's
  50 answers and for a candidate's whole evaluation (150 answers): tokens/s of transformers'
  `generate` (what the backend used before) and of the backend's own decoder in float32,
  float16 and int8 (bfloat16 on a GPU), side by side;
- quality: the mean MiniLM distance of a fixed model's answers to a fixed target, drawn by
  each, with standard errors (the decoder must not move it beyond them), and the reduced
  precisions paired with float32 (same draws);
- 4-group rounds through every service (4 x 8 examples, 50 selection + 2 x 50 held-out
  answers per candidate): two of a campaign whose crowd submits over two minutes (its base is
  measured meanwhile), and round 0 of one whose crowd submits at once (its base measured
  inside the round).
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


Sets = list[tuple[list[str], SamplingConfig]]


def samplers(model: Any, tokenizer: Any, device: str) -> dict[str, Any]:
    """name -> sets of (prompts, cfg) -> (answers per set, tokens, seconds), for each way of
    sampling: transformers' `generate` one prompt at a time, the decoder at each precision."""
    from crowdsft.llm_runtime.sampling import sample_sets
    from crowdsft.llm_runtime.worker import sampling_model

    def theirs(sets: Sets) -> tuple[list[list[str]], int, float]:
        runs = [[hf_generate(model, tokenizer, p, cfg) for p in prompts] for prompts, cfg in sets]
        texts = [[t for run in per_set for t in run[0]] for per_set in runs]
        return texts, sum(r[1] for s in runs for r in s), sum(r[2] for s in runs for r in s)

    def ours(precision: str) -> Any:
        chosen = sampling_model(model, precision, device)  # type: ignore[arg-type]

        def run(sets: Sets) -> tuple[list[list[str]], int, float]:
            asked = [(p, cfg.model_copy(update={"precision": precision})) for p, cfg in sets]
            done = sample_sets(chosen, tokenizer, asked)
            return (
                [d.texts for d in done],
                sum(d.new_tokens for d in done),
                done[0].seconds + sum(d.seconds for d in done[1:]),
            )

        return run

    reduced = ("float16", "int8") if device == "cpu" else ("bfloat16",)
    return {
        "transformers_generate_float32": theirs,
        **{f"decoder_{precision}": ours(precision) for precision in ("float32", *reduced)},
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
        "generation_batch": spec.sampling.batch_size,
        "generation": {},
    }
    # Two workloads at batch 50: one prompt's 50 answers (the batch shrinks as they end),
    # and a candidate's whole evaluation, 50 selection and 2 x 50 held-out answers (the
    # decoder refills finished rows; `generate` runs three batches of 50).
    workloads: dict[str, Sets] = {
        "one_prompt_50_answers": [([PAPER_PROMPT], spec.sampling)],
        "evaluation_150_answers": [
            (spec.eval_prompts, spec.sampling),
            (spec.heldout_prompts, spec.heldout_sampling),
        ],
    }
    for name, run in samplers(tuned, tokenizer, device).items():
        rows: dict[str, Any] = {}
        for workload, sets in workloads.items():
            _, tokens, seconds = run(sets)
            rows[workload] = {
                "tokens": tokens,
                "seconds": round(seconds, 2),
                "tokens_per_s": round(tokens / seconds, 1),
            }
        section["generation"][name] = rows
        print(name, rows, flush=True)
    reference_speed = section["generation"]["transformers_generate_float32"]
    for rows in section["generation"].values():
        for workload, row in rows.items():
            row["vs_transformers_generate"] = round(
                row["tokens_per_s"] / reference_speed[workload]["tokens_per_s"], 2
            )

    # Quality: the same fixed model (the tuned one) and target, many answers per sampler.
    # The decoder's precisions draw with the same uniforms, so their answers are paired.
    phi = load_phi("minilm")
    target = phi.embed(texts[:PER_GROUP]).mean(axis=0)
    cfg = spec.sampling.model_copy(update={"samples": quality_samples, "seed": 11})
    quality: dict[str, Any] = {"samples": quality_samples, "target": "mean MiniLM of 8 comments"}
    answers: dict[str, list[str]] = {}
    distances: dict[str, Any] = {}
    for name, run in samplers(tuned, tokenizer, device).items():
        answers[name] = run([([PAPER_PROMPT], cfg)])[0][0]
        distances[name] = np.linalg.norm(phi.embed(answers[name]) - target[None, :], axis=1)
        quality[name] = {
            "mean_distance": round(float(distances[name].mean()), 4),
            "std_error": round(float(distances[name].std(ddof=1) / math.sqrt(quality_samples)), 4),
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
            if name != "decoder_float32":
                paired = distances[name] - distances["decoder_float32"]
                row["paired_vs_decoder_float32"] = {
                    "same_answers": sum(
                        a == b
                        for a, b in zip(answers[name], answers["decoder_float32"], strict=True)
                    ),
                    "mean_difference": round(float(paired.mean()), 4),
                    "std_error": round(float(paired.std(ddof=1) / math.sqrt(quality_samples)), 4),
                }
    section["quality"] = quality
    section["next_token_kl"] = next_token_kl(tuned, tokenizer, answers["decoder_float32"][:24])
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


ROUNDS = 2  # round 0 also starts the workers' models; round 1 is a steady one
# How long the crowd of the first campaign takes to submit: its first half, a pause, the rest.
# A real crowd takes minutes to days; the base is measured meanwhile (it needs no contribution).
SUBMISSION_WINDOW_S = 120.0


async def services_round(spec: LlmSpec, env_extra: dict[str, str]) -> dict[str, Any]:
    """Rounds through every service on the local stack, each timed from opened to scored,
    with the workers started with the training service. Two campaigns, one after the other:
    `bench`, whose crowd submits over SUBMISSION_WINDOW_S (the base is measured while it
    does), runs two rounds (round 1 finds its base measured as round 0's candidate, like every
    later round); `bench-burst`, whose whole crowd submits at once, runs round 0 with the base
    measured inside it (what every round 0 did before). The burst runs second, so its models
    are already loaded: the comparison does not flatter the windowed campaign."""
    from crowdsft.adapters import mongo
    from crowdsft.adapters.campaign_store import CampaignStore
    from crowdsft.adapters.feedback_producer import FeedbackProducer
    from crowdsft.adapters.kafka import ensure_topics, started_broker
    from crowdsft.adapters.measurement_store import MeasurementStore
    from crowdsft.adapters.round_store import RoundStore
    from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
    from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
    from crowdsft.domain.ids import root_model_id
    from crowdsft.domain.lora_backend import LoraBackendSpec
    from crowdsft.llm_runtime.phi import load_phi
    from crowdsft.settings import settings_from
    from tests.integration.campaign_runs import start_services
    from tests.support.stack import localstack, wait_until

    texts = comments(GROUPS * PER_GROUP)
    target = [float(x) for x in load_phi("minilm").embed(texts[:PER_GROUP]).mean(axis=0)]
    n = len(texts)

    def campaign(campaign_id: str, rounds: int) -> CampaignSpec:
        return CampaignSpec(
            campaign_id=campaign_id,
            target=target,
            n_groups=GROUPS,
            backend=LoraBackendSpec(llm=spec),
            policy=RoundPolicy(mode="auto", min_contributions=n, max_rounds=rounds),
        )

    def crowd(campaign_id: str) -> list[FeedbackSubmitted]:
        return [
            FeedbackSubmitted(
                event_id=new_event_id(),
                producer="bench",
                campaign_id=campaign_id,
                contributor_id=f"c{i % (n // 2):02d}",
                prompt=PAPER_PROMPT,
                response=text,
                client_timestamp=utc_now(),
            )
            for i, text in enumerate(texts)
        ]

    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="crowdsft-lora-") as tmp:
        run_dir = Path(tmp)
        env = {**localstack().up(run_dir), "CROWDSFT_MONGO_DB": "bench", "CROWDSFT_ENV_FILE": ""}
        env["CROWDSFT_ARTIFACT_ROOT"] = str(run_dir / "artifacts")
        # As compose and Kubernetes deploy it: the workers start with the service.
        env["CROWDSFT_TRAINING_WARM_BACKENDS"] = "lora"
        env.update(env_extra)
        settings = settings_from(env)
        async with mongo.opened(settings) as db:
            await ensure_topics(settings)
            services = start_services(env, run_dir)
            try:
                for service in services.values():
                    wait_until(lambda s=service: "started successfully" in s.log(), 60, "start")
                training = services["training"]
                wait_until(lambda: "trainer warm" in training.log(), 300, "the workers")
                store, measurements = RoundStore(db), MeasurementStore(db)
                async with started_broker(settings, "bench") as broker:
                    producer = FeedbackProducer(broker)
                    await CampaignStore(db).create_with_spec(campaign("bench", ROUNDS))
                    windowed = crowd("bench")
                    first_sent = time.perf_counter()
                    await producer.submit(windowed[: n // 2])
                    root, base_after = root_model_id("bench"), None
                    while (waited := time.perf_counter() - first_sent) < SUBMISSION_WINDOW_S:
                        if base_after is None and root in await measurements.get([root]):
                            base_after = round(waited, 1)
                        await asyncio.sleep(0.5)
                    await producer.submit(windowed[n // 2 :])
                    for index in range(ROUNDS):
                        done, seconds = await _timed_round(store, "bench", index)
                        figures.append(_round_figures(done, seconds) | {
                            "crowd": f"submits over {SUBMISSION_WINDOW_S:.0f} s",
                            "base_measured_s_after_first_submission": base_after,
                        })  # fmt: skip
                        print(f"bench round {index}: {seconds:.1f} s", flush=True)
                    await CampaignStore(db).create_with_spec(campaign("bench-burst", 1))
                    await producer.submit(crowd("bench-burst"))
                    done, seconds = await _timed_round(store, "bench-burst", 0)
                    figures.append(_round_figures(done, seconds) | {
                        "crowd": "submits at once: the base is measured inside round 0",
                    })  # fmt: skip
                    print(f"bench-burst round 0: {seconds:.1f} s", flush=True)
            finally:
                for service in services.values():
                    service.stop()
                localstack().down(run_dir, quiet=True)
    return {
        "how": "every service on the local stack; training hands the jobs to resident workers",
        "settings": env_extra,
        "seconds": figures[ROUNDS - 1]["seconds"],
        "rounds": figures,
    }


async def _timed_round(store: Any, campaign_id: str, index: int) -> tuple[Any, float]:
    """The round once scored, and its seconds from opened (first seen) to scored."""
    from crowdsft.domain.round import RoundStatus

    while (done := await store.get(campaign_id, index)) is None:
        await asyncio.sleep(0.05)
    started = time.perf_counter()
    deadline = started + 3_600
    while done.status is not RoundStatus.SCORED:
        assert time.perf_counter() < deadline, "the round did not finish in an hour"
        await asyncio.sleep(0.2)
        done = await store.get(campaign_id, index) or done
    return done, round(time.perf_counter() - started, 2)


def _round_figures(done: Any, seconds: float) -> dict[str, Any]:
    decision = done.decision
    assert decision is not None
    return {
        "round_index": done.round_index,
        "seconds": seconds,
        "base_distance": decision.base_distance,
        "candidate_distances": [c.distance for c in decision.candidates],
        "winner_model_id": decision.winner_model_id,
        "per_group_train_seconds": [c.metrics.get("train_seconds") for c in decision.candidates],
        "per_group_generation_seconds": [
            c.metrics.get("generation_seconds") for c in decision.candidates
        ],
        "per_group_generated_tokens": [
            c.metrics.get("generated_tokens") for c in decision.candidates
        ],
    }


def next_token_kl(model: Any, tokenizer: Any, answers: list[str]) -> dict[str, Any]:
    """How far each reduced precision moves the model's next-token distributions: the mean
    KL(float32 || reduced), nats per token, over every answer position of `answers` (the base
    tuned model's). float16 and bfloat16 weights are the float32 model's weights rounded (what the
    decoder's float16 layout multiplies by); int8 is the quantised sampler itself."""
    import copy

    import torch

    from crowdsft.llm_runtime.quantise import quantise
    from crowdsft.llm_runtime.sft import chat_prompt

    prompt = chat_prompt(tokenizer, PAPER_PROMPT)
    start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    tokenizer.padding_side = "right"
    batch = tokenizer([prompt + a for a in answers], return_tensors="pt", padding=True,
                      add_special_tokens=False)  # fmt: skip
    ids, mask = batch["input_ids"], batch["attention_mask"]
    counted = mask[:, start:].bool()

    def log_probs(variant: Any) -> Any:
        with torch.inference_mode():
            logits = variant(input_ids=ids, attention_mask=mask).logits[:, start - 1 : -1]
        return logits.float().log_softmax(-1)

    def rounded(dtype: Any) -> Any:
        twin = copy.deepcopy(model)
        with torch.no_grad():
            for parameter in twin.parameters():
                parameter.copy_(parameter.to(dtype).float())
        return twin

    reference = log_probs(model)
    kl: dict[str, Any] = {"answers": len(answers), "positions": int(counted.sum())}
    variants = {"float16": rounded(torch.float16), "bfloat16": rounded(torch.bfloat16),
                "int8": quantise(model)}  # fmt: skip
    for name, variant in variants.items():
        per_position = (reference.exp() * (reference - log_probs(variant))).sum(-1)
        kl[name] = float(f"{float(per_position[counted].mean()):.3g}")
        print("KL from float32", name, kl[name], flush=True)
    return kl


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
