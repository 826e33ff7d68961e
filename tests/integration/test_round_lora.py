"""Two rounds of an LLM campaign through the services: LoRA adapters trained on Ray (a tiny
model built from a config), candidates placed in MiniLM space, lineage with parents, data and
metrics. Same stack, same services as the vector campaigns; only the backend differs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from crowdsft.adapters.artifact_store import ArtifactStore
from crowdsft.adapters.campaign_reads import model_entry
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.lineage_store import LineageStore
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
from crowdsft.domain.ids import key_of, root_model_id
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.llm.config import LlmSpec, SamplingConfig, SftHyperparameters
from crowdsft.settings import Settings
from tests.integration.campaign_runs import start_services, wait_finished
from tests.support.stack import ServiceProcess, wait_until

pytest.importorskip("peft", reason="the llm extra is not installed")

PROMPT = "write a reddit comment."
RESPONSES = [
    "I am so happy for you, congratulations!",
    "This is the best news I have read all week.",
    "Thank you, this made my day so much better.",
    "What a lovely thing to do, I love it.",
    "Ugh, this is so annoying and frustrating.",
    "I can't believe they did that, terrible.",
    "Honestly not sure what to think about this.",
    "Wow, I did not see that coming at all!",
    "That's really sad, I'm sorry for your loss.",
    "Haha this is hilarious, well done.",
    "I'm a bit nervous about how this turns out.",
    "Great game last night, what a finish!",
]
CONTRIBUTORS = [f"w{i:02d}" for i in range(6)]


def lora_spec(target: list[float]) -> CampaignSpec:
    return CampaignSpec(
        campaign_id="lora",
        target=target,
        n_groups=2,
        points_rule="rank",
        backend=LoraBackendSpec(
            llm=LlmSpec(
                base_model="tiny",
                phi="minilm",
                sft=SftHyperparameters(epochs=8, learning_rate=2e-2, batch_size=4),
                sampling=SamplingConfig(samples=4, max_new_tokens=12),
                heldout_sampling=SamplingConfig(samples=2, max_new_tokens=12, seed=1),
            )
        ),
        policy=RoundPolicy(mode="auto", min_contributions=len(RESPONSES), max_rounds=2),
        seed=5,
    )


def submissions() -> list[FeedbackSubmitted]:
    return [
        FeedbackSubmitted(
            event_id=new_event_id(),
            producer="test",
            campaign_id="lora",
            contributor_id=CONTRIBUTORS[i % len(CONTRIBUTORS)],
            prompt=PROMPT,
            response=text,
            client_timestamp=utc_now(),
        )
        for i, text in enumerate(RESPONSES)
    ]


async def base_measured_ahead(db: Database, training: ServiceProcess) -> None:
    """The root's measurement stored while the crowd is still short of a round."""
    root = root_model_id("lora")
    deadline = time.monotonic() + 180
    while root not in await MeasurementStore(db).get([root]):
        assert time.monotonic() < deadline, f"base not measured ahead:\n{training.log()[-2000:]}"
        await asyncio.sleep(0.2)
    wait_until(lambda: "campaign prepared" in training.log(), 10, "the training service's log")


async def test_two_lora_rounds_leave_a_lineage(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    from crowdsft.llm_runtime.phi import load_phi

    target = load_phi("minilm").embed(RESPONSES[:4]).mean(axis=0)
    spec = lora_spec([float(x) for x in target])
    artifacts = tmp_path / "artifacts"
    env = {**stack_env, "CROWDSFT_ARTIFACT_ROOT": str(artifacts), "CROWDSFT_RAY_LOCAL_CPUS": "2",
           "CROWDSFT_TRAINING_WARM_BACKENDS": "lora"}  # fmt: skip
    services = start_services(env, tmp_path)
    try:
        # The resident workers start with the service, before any campaign or request.
        training = services["training"]
        wait_until(lambda: "trainer warm" in training.log(), 120, "the lora workers to start")
        assert "workers up" in training.log()
        await CampaignStore(db).create_with_spec(spec)
        crowd = submissions()
        async with started_broker(settings, "test-crowd") as broker:
            # The first submissions, too few for a round, set off the base's measurement.
            await FeedbackProducer(broker).submit(crowd[:2])
            await base_measured_ahead(db, training)
            assert await RoundStore(db).get("lora", 0) is None
            await FeedbackProducer(broker).submit(crowd[2:])
        await wait_finished(db, spec, services, timeout_s=420)
    finally:
        for service in services.values():
            service.stop()

    rounds = await RoundStore(db).of_campaign("lora")
    assert [r.status for r in rounds] == ["scored", "scored"]
    all_contributions = {d["_id"] async for d in db[CONTRIBUTIONS].find({"campaign_id": "lora"})}
    assert len(all_contributions) == len(RESPONSES)

    # The base was measured once, and gates every round.
    root = root_model_id("lora")
    base = (await MeasurementStore(db).get([root]))[root]
    assert base.distance is not None and base.distance > 0 and len(base.position) == 384
    assert rounds[0].base_model_id == root
    assert rounds[0].decision is not None and rounds[0].decision.base_distance == base.distance

    store = ArtifactStore(artifacts)
    lineage = await LineageStore(db).of_campaign("lora")
    for decided in rounds:
        assert decided.decision is not None
        models = [m for m in lineage if m.round_index == decided.round_index]
        assert len(models) == 2
        data: list[str] = []
        for model in models:
            # Parent link: every candidate of a round grew from that round's base.
            assert model.parent_model_id == decided.base_model_id
            # Data ids: exactly the group's contributions, and the groups split the crowd.
            assert model.contribution_ids and set(model.contribution_ids) <= all_contributions
            data += model.contribution_ids
            metrics = model.metrics
            assert metrics["examples"] == len(model.contribution_ids)
            assert metrics["last_loss"] < metrics["first_loss"], "training did not learn"
            assert metrics["distance"] == pytest.approx(-metrics["score"])
            assert np.isfinite(metrics["heldout_distance"]) and metrics["heldout_distance"] > 0
            assert metrics["base_distance"] == decided.decision.base_distance
            assert model.hyperparameters["llm"]["sft"]["learning_rate"] == 2e-2
            assert model.artifact_ref is not None
            adapter = store.path(key_of(model.artifact_ref))
            assert (adapter / "adapter_config.json").exists()
            # The read API's lineage shows the judge's held-out distance and the metrics.
            entry = model_entry(model)
            assert entry.heldout_distance == metrics["heldout_distance"]
            assert entry.metrics["train_examples_per_s"] > 0
        assert sorted(data) == sorted(all_contributions)
        # The winner beat the base on the selection prompts, or the model stayed put.
        winner = decided.decision.winner_model_id
        best = min(c.distance for c in decided.decision.candidates)
        assert decided.decision.base_distance is not None
        assert (winner is not None) == (best < decided.decision.base_distance)

    # Round 1 trains from round 0's outcome: the winner if there was one, else the base.
    assert rounds[1].base_model_id == (rounds[0].decision.winner_model_id or root)
    # Each contributor was placed in MiniLM space from their own responses.
    assert len(rounds[1].positions) == len(CONTRIBUTORS)
    assert all(len(u) == 384 for u in rounds[1].positions)
