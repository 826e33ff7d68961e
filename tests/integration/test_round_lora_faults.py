"""A lora round survives a SIGKILLed model worker and a SIGKILLed training service, and ends
with the same winner, distances and awards as an undisturbed run of the same campaign.

Both runs are the same campaign (same id, same contributions) on two private stacks: one left
alone, one whose Ray worker is killed in the middle of a job and whose training process is
killed and restarted after. Every job is a function of its inputs (seeded training and
sampling, no state carried between jobs), so the redone work gives the same results.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import ensure_topics, started_broker
from crowdsft.adapters.round_store import RoundStore
from crowdsft.domain.round import Round, RoundStatus
from crowdsft.settings import Settings, settings_from
from tests.integration.campaign_runs import start_services, wait_finished
from tests.integration.test_round_lora import RESPONSES, lora_spec, submissions
from tests.support.stack import ServiceProcess, localstack, wait_until

pytest.importorskip("peft", reason="the llm extra is not installed")


def workers_busy() -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", "ray::ModelWorker.train"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


async def run_campaign(env: dict[str, str], settings: Settings, tmp: Path, disturb: bool) -> Round:
    from crowdsft.llm_runtime.phi import load_phi

    target = load_phi("minilm").embed(RESPONSES[:4]).mean(axis=0)
    spec = lora_spec([float(x) for x in target]).model_copy(
        update={"policy": lora_spec([0.0] * 384).policy.model_copy(update={"max_rounds": 1})}
    )
    env = {**env, "CROWDSFT_ARTIFACT_ROOT": str(tmp / "artifacts"), "CROWDSFT_RAY_LOCAL_CPUS": "2"}
    tmp.mkdir(parents=True, exist_ok=True)
    services = start_services(env, tmp)
    try:
        async with mongo.opened(settings) as db:
            await ensure_topics(settings)
            await CampaignStore(db).create_with_spec(spec)
            async with started_broker(settings, "test-crowd") as broker:
                await FeedbackProducer(broker).submit(submissions())
            if disturb:
                # A worker dies in the middle of a job: Ray restarts it, the job is sent again.
                wait_until(lambda: bool(workers_busy()), 240, "a model worker to start a job")
                subprocess.run(["kill", "-9", str(workers_busy()[0])], check=False)
                # The training service sees its worker die and sends the job again (how soon
                # Ray reports the death varies with the machine's load: wait for it).
                log = tmp / "training.log"
                wait_until(lambda: "sending the job again" in log.read_text(errors="replace"),
                           120, "the training service to send the job again")  # fmt: skip
                # Then the training service itself dies, and a new one takes over its work.
                services["training"].kill()
                await asyncio.sleep(1)
                services["training"] = ServiceProcess(
                    "services.training", env, tmp / "training-restarted.log"
                ).start()
            await wait_finished(db, spec, services, timeout_s=420)
            done = await RoundStore(db).get(spec.campaign_id, 0)
    finally:
        for service in services.values():
            service.stop()
    assert done is not None and done.status is RoundStatus.SCORED
    return done


async def test_a_killed_worker_and_training_service_change_nothing(
    stack_env: dict[str, str], settings: Settings, tmp_path: Path
) -> None:
    calm = await run_campaign(stack_env, settings, tmp_path / "calm", disturb=False)
    other = tmp_path / "storm"
    other.mkdir()
    stack = localstack()
    env = stack.up(other / "stack")
    env = {**env, "CROWDSFT_MONGO_DB": "storm", "CROWDSFT_ENV_FILE": ""}
    try:
        storm = await run_campaign(env, settings_from(env), other, disturb=True)
    finally:
        stack.down(other / "stack", quiet=True)
    assert calm.decision is not None and storm.decision is not None
    assert storm.decision.winner_model_id == calm.decision.winner_model_id
    assert storm.decision.ranking == calm.decision.ranking
    assert [c.distance for c in storm.decision.candidates] == [
        c.distance for c in calm.decision.candidates
    ]
    assert storm.decision.base_distance == calm.decision.base_distance
    assert storm.payment is not None and calm.payment is not None
    assert storm.payment.awards == calm.payment.awards
    assert storm.contributor_ids == calm.contributor_ids
