"""A `lora` campaign valued in-run through the services: every text's effect on the reference
answers' loss is measured while its candidate trains (the tiny model), summed per contributor
by the Shapley service, stored with its error and served by the read API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.measurement_store import MeasurementStore
from crowdsft.adapters.mongo import CONTRIBUTIONS, Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.adapters.shapley_store import ShapleyStore
from crowdsft.contracts import FeedbackSubmitted, new_event_id, utc_now
from crowdsft.domain.campaign import CampaignSpec, RoundPolicy
from crowdsft.domain.lora_backend import LoraBackendSpec
from crowdsft.llm.config import LlmSpec, SamplingConfig, SftHyperparameters
from crowdsft.settings import Settings
from services.balances.app import create_app
from tests.integration.campaign_runs import start_services, wait_finished
from tests.support.stack import eventually, wait_until

pytest.importorskip("peft", reason="the llm extra is not installed")

PROMPT = "write a reddit comment."
ANSWERS = ["so happy for you, congrats!", "love this, made my day!", "thank you, well deserved."]
ON_TARGET = {
    "ana": ["so happy for you!", "congrats, well deserved.", "this made my day, thank you."],
    "ben": ["love this so much, congrats!", "thank you, so happy!", "well deserved, made my day."],
}
OFF_TARGET = {
    "cy": ["the tax deadline is in april, file early.", "error 404 page not found", "1 2 3 4 5"],
    # Exact copies of ana's texts are refused at intake: only the last text is the copier's.
    "dee": [*ON_TARGET["ana"][:2], "press the reset button twice, then wait."],
}
ACCEPTED = 3 + 3 + 3 + 1


def submissions(texts: dict[str, list[str]]) -> list[FeedbackSubmitted]:
    return [
        FeedbackSubmitted(
            event_id=new_event_id(),
            producer="test",
            campaign_id="valued",
            contributor_id=who,
            prompt=PROMPT,
            response=text,
            client_timestamp=utc_now(),
        )
        for who, written in texts.items()
        for text in written
    ]


async def stored_texts(db: Database, contributors: Sequence[str], count: int) -> None:
    query = {"campaign_id": "valued", "contributor_id": {"$in": list(contributors)}}

    async def stored() -> bool:
        return await db[CONTRIBUTIONS].count_documents(query) >= count

    await eventually(stored, 120, f"{contributors}' texts to be stored")


async def test_in_run_values_rank_on_target_texts_above_off_target_and_copied_ones(
    stack_env: dict[str, str], settings: Settings, db: Database, tmp_path: Path
) -> None:
    from crowdsft.llm_runtime.phi import load_phi

    target = [float(x) for x in load_phi("minilm").embed(ANSWERS).mean(axis=0)]
    spec = CampaignSpec(
        campaign_id="valued",
        target=target,
        reference_answers=ANSWERS,
        n_groups=1,  # one candidate trained on everybody: the values are comparable
        backend=LoraBackendSpec(
            llm=LlmSpec(
                base_model="tiny",
                phi="minilm",
                sft=SftHyperparameters(lora_r=8, lora_alpha=16, learning_rate=5e-4, batch_size=3),
                sampling=SamplingConfig(samples=4, max_new_tokens=12),
                heldout_sampling=SamplingConfig(samples=2, max_new_tokens=12, seed=1),
            )
        ),
        policy=RoundPolicy(mode="auto", min_contributions=ACCEPTED, max_rounds=1),
        seed=3,
    )
    assert spec.valuation == "in_run"  # the default of a lora campaign with reference answers
    env = {**stack_env, "CROWDSFT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
           "CROWDSFT_RAY_LOCAL_CPUS": "2", "CROWDSFT_TRAINING_WARM_BACKENDS": "lora"}  # fmt: skip
    services = start_services(env, tmp_path)
    try:
        wait_until(lambda: "trainer warm" in services["training"].log(), 120, "lora workers")
        await CampaignStore(db).create_with_spec(spec)
        async with started_broker(settings, "test-crowd") as broker:
            # The originals are stored before the copier sends the same texts.
            await FeedbackProducer(broker).submit(submissions({"ana": ON_TARGET["ana"]}))
            await stored_texts(db, ["ana"], 3)
            await FeedbackProducer(broker).submit(
                submissions({"ben": ON_TARGET["ben"], **OFF_TARGET})
            )
        await wait_finished(db, spec, services, timeout_s=300)
    finally:
        for service in services.values():
            service.stop()

    (played,) = await RoundStore(db).of_campaign("valued")
    assert played.decision is not None
    assert sorted(played.contributor_ids) == ["ana", "ben", "cy", "dee"]
    (candidate,) = played.decision.candidates
    measured = (await MeasurementStore(db).get([candidate.model_id]))[candidate.model_id]
    assert measured.member_values.keys() == {"ana", "ben", "cy", "dee"}
    assert measured.metrics["valuation_seconds"] > 0

    record = await ShapleyStore(db).get("valued")
    assert record is not None
    assert record.valuation == "in_run" and record.method == "in_run_sum"
    values = dict(zip(record.contributor_ids, record.values, strict=True))
    errors = dict(zip(record.contributor_ids, record.std_errors, strict=True))
    assert values == measured.member_values
    assert errors == measured.member_value_errors
    assert all(e >= 0 for e in errors.values()) and 0 <= record.relative_error < 1
    assert min(values["ana"], values["ben"]) > max(values["cy"], values["dee"])
    assert values["ana"] > 0 and values["ben"] > 0

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://balances") as http:
            body = (await http.get("/v1/campaigns/valued/shapley")).json()
    assert body["valuation"] == "in_run" and body["method"] == "in_run_sum"
    served = {v["contributor_id"]: (v["value"], v["std_error"]) for v in body["values"]}
    assert served == {who: (values[who], errors[who]) for who in values}
