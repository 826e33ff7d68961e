"""What a finished lora campaign (tiny model) gives back: its data as a dataset that
`datasets` loads, its winner as a checkpoint `from_pretrained` loads with the serving model's
logits, and a chat through the official `openai` client that follows each round's winner."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.adapters.feedback_producer import FeedbackProducer
from crowdsft.adapters.kafka import started_broker
from crowdsft.adapters.mongo import CONTRIBUTIONS, Database
from crowdsft.adapters.round_store import RoundStore
from crowdsft.settings import Settings, settings_from
from infra.localstack import free_port
from tests.integration.campaign_runs import start_services, wait_finished
from tests.integration.test_round_lora import CONTRIBUTORS, RESPONSES, lora_spec, submissions
from tests.support.paid_rounds import balances
from tests.support.stack import REPO, ServiceProcess, run_cli, wait_http

pytest.importorskip("peft", reason="the llm extra is not installed")
openai = pytest.importorskip("openai")
datasets = pytest.importorskip("datasets")


class Campaign:
    """A two-round lora campaign, the serving service, and what the test saw along the way."""

    def __init__(self, env: dict[str, str], settings: Settings, token: str, url: str) -> None:
        self.env, self.settings, self.token, self.url = env, settings, token, url
        self.gateway = ""
        self.answered_after_round: dict[int, str] = {}
        self.state_after_round: dict[int, str] = {}

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.token, max_retries=0)


async def served_model(url: str, token: str) -> str:
    """The model id that answers for the campaign now (the chat's own `model` field)."""
    async with httpx.AsyncClient(timeout=120) as http:
        answer = await http.post(
            f"{url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": "lora", "messages": [{"role": "user", "content": "hi"}],
                  "max_tokens": 4, "seed": 1},
        )  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model"])


@pytest.fixture(scope="module")
async def campaign(
    stack_env: dict[str, str], db: Database, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Campaign]:
    from crowdsft.llm_runtime.phi import load_phi

    tmp = tmp_path_factory.mktemp("export")
    port, gateway_port = free_port(), free_port()
    env = {**stack_env, "CROWDSFT_ARTIFACT_ROOT": str(tmp / "artifacts"),
           "CROWDSFT_RAY_LOCAL_CPUS": "2", "CROWDSFT_SERVING_PORT": str(port),
           "CROWDSFT_GATEWAY_PORT": str(gateway_port),
           "CROWDSFT_EXPORT_PSEUDONYM_KEY": "test-key"}  # fmt: skip
    settings = settings_from(env)
    contributors = ContributorStore(db)
    _, token = await contributors.register(CONTRIBUTORS[0], "Wren Writer", credit_by_name=True)
    for other in CONTRIBUTORS[1:]:
        await contributors.register(other)
    target = load_phi("minilm").embed(RESPONSES[:4]).mean(axis=0)
    spec = lora_spec([float(x) for x in target])
    services = start_services(env, tmp)
    url = f"http://127.0.0.1:{port}"
    services["serving"] = ServiceProcess("services.serving", env, tmp / "serving.log").start()
    services["gateway"] = ServiceProcess("services.gateway", env, tmp / "gateway.log").start()
    run = Campaign({**env}, settings, token, url)
    run.gateway = f"http://127.0.0.1:{gateway_port}"
    try:
        await wait_http(f"{url}/healthz", services["serving"])
        await wait_http(f"{run.gateway}/openapi.json", services["gateway"])
        await CampaignStore(db).create_with_spec(spec)
        run.answered_after_round[-1] = await served_model(url, token)
        async with started_broker(settings, "test-crowd") as broker:
            await FeedbackProducer(broker).submit(submissions())
        rounds = RoundStore(db)
        while (first := await rounds.get("lora", 0)) is None or first.decision is None:
            await asyncio.sleep(0.2)
        while (state := await CampaignStore(db).state("lora")) is None or state.next_round < 1:
            await asyncio.sleep(0.2)
        run.state_after_round[0] = state.model_id
        run.answered_after_round[0] = await served_model(url, token)
        await wait_finished(db, spec, services, timeout_s=420)
        final = await CampaignStore(db).state("lora")
        assert final is not None
        run.state_after_round[1] = final.model_id
        run.answered_after_round[1] = await served_model(url, token)
        yield run
    finally:
        for service in services.values():
            service.stop()


async def test_contributors_submit_and_chat_from_the_cli_with_a_url_and_a_token(
    campaign: Campaign, db: Database
) -> None:
    await CampaignStore(db).create("notes")
    env = {k: v for k, v in campaign.env.items() if "KAFKA" not in k and "MONGO" not in k}
    sent = run_cli(env, "submit", "--gateway", campaign.gateway, "--token", campaign.token,
               "--campaign", "notes", "--prompt", "write a reddit comment.",
               "--response", "sent over HTTP, no broker credentials")  # fmt: skip
    [event_id] = sent.stdout.split()
    found = None
    for _ in range(300):
        found = await db[CONTRIBUTIONS].find_one({"event_id": event_id})
        if found is not None:
            break
        await asyncio.sleep(0.1)
    assert found is not None and found["contributor_id"] == CONTRIBUTORS[0]
    command = [sys.executable, "-c", "from crowdsft.cli import main; main()", "chat",
               "--campaign", "lora", "--url", campaign.url, "--max-tokens", "6"]  # fmt: skip
    chat = subprocess.run(command, cwd=REPO, env={**env, "CROWDSFT_TOKEN": campaign.token},
                          input="hello\nand again\n\n", capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.count("model> ") == 2 and chat.stdout.count("you> ") == 3


async def test_serving_follows_each_rounds_winner(campaign: Campaign) -> None:
    assert campaign.answered_after_round[-1] == "lora:base"
    for index in (0, 1):
        assert campaign.answered_after_round[index] == campaign.state_after_round[index]


async def test_the_openai_client_chats_streaming_and_not(campaign: Campaign) -> None:
    client = campaign.client()
    messages = [{"role": "user", "content": "write a reddit comment."}]

    def ask(stream: bool) -> object:
        return client.chat.completions.create(
            model="lora", messages=messages, max_tokens=12, temperature=0.8, top_p=0.9,
            seed=7, stream=stream,
        )  # fmt: skip

    whole = await asyncio.to_thread(ask, False)
    assert whole.model == campaign.state_after_round[1]
    [choice] = whole.choices
    assert choice.finish_reason in {"stop", "length"}
    assert whole.usage is not None and 0 < whole.usage.completion_tokens <= 12

    def streamed() -> tuple[str, list[str | None]]:
        chunks = list(ask(True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return text, [c.choices[0].finish_reason for c in chunks if c.choices]

    text, reasons = await asyncio.to_thread(streamed)
    assert text == choice.message.content  # the same seed, the same answer
    assert reasons[-1] == choice.finish_reason and all(r is None for r in reasons[:-1])
    models = await asyncio.to_thread(lambda: client.models.list().data)
    assert [(m.id, m.model_extra["current_model_id"]) for m in models] == [
        ("lora", campaign.state_after_round[1])
    ]
    with pytest.raises(openai.NotFoundError):
        await asyncio.to_thread(
            lambda: client.chat.completions.create(model="nope", messages=messages)
        )
    stranger = openai.OpenAI(base_url=f"{campaign.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        await asyncio.to_thread(lambda: stranger.models.list())


async def test_the_dataset_loads_with_datasets(campaign: Campaign, db: Database,
                                               tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "dataset"
    run_cli(campaign.env, "export", "--campaign", "lora", "--format", "parquet", "--out", str(out),
        "--license", "cc-by-4.0")  # fmt: skip
    loaded = datasets.load_dataset("parquet", data_files=str(out / "data/train.parquet"))
    rows = loaded["train"]
    assert rows.num_rows == len(RESPONSES)
    assert sorted(r["completion"] for r in rows) == sorted(RESPONSES)
    points = await balances(db, "lora")
    for row in rows:
        assert row["messages"] == [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["completion"]},
        ]
        assert row["status"] == "accepted" and row["contributor"].startswith("anon-")
        assert [u["round_index"] for u in row["used_in"]] == [0, 1]  # every round used it
        assert row["shapley"] is not None and row["shapley_std_error"] >= 0
    assert sorted(r["points"] for r in rows) == sorted(
        points[CONTRIBUTORS[i % len(CONTRIBUTORS)]] for i in range(len(RESPONSES))
    )
    # The same key, the same pseudonyms: a second export (JSON Lines) matches the first.
    again = tmp_path / "again"
    run_cli(campaign.env, "export", "--campaign", "lora", "--out", str(again))
    lines = [json.loads(x) for x in (again / "data/train.jsonl").read_text().splitlines()]
    assert sorted(x["contributor"] for x in lines) == sorted(r["contributor"] for r in rows)
    card = (out / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "Wren Writer" in card
    assert "Wren Writer" not in json.dumps(lines) and CONTRIBUTORS[0] not in json.dumps(lines)


async def test_the_exported_winner_has_the_serving_models_logits(
    campaign: Campaign, db: Database, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.serving.models import ServedModels

    merged = tmp_path / "merged"
    run_cli(campaign.env, "model", "export", "--campaign", "lora", "--merged", "--out", str(merged))
    exported = AutoModelForCausalLM.from_pretrained(merged).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    served = await ServedModels(db, campaign.settings).load("lora")
    assert served.model_id == campaign.state_after_round[1]
    ids = tokenizer("write a reddit comment.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        ours, theirs = exported(ids).logits, served.model(ids).logits
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    card = (merged / "README.md").read_text()
    assert f"# `{served.model_id}`" in card and "## Lineage" in card
    if served.model_id != "lora:base":  # a round was won: its adapter alone, in PEFT format
        adapter = tmp_path / "adapter"
        run_cli(campaign.env, "model", "export", "--campaign", "lora", "--out", str(adapter))
        config = json.loads((adapter / "adapter_config.json").read_text())
        assert config["peft_type"] == "LORA"


async def test_operators_download_the_dataset_and_an_adapter(campaign: Campaign, db: Database,
                                                             tmp_path: Path) -> None:  # fmt: skip
    import io
    import tarfile

    from crowdsft.auth import hash_token, new_token
    from services.balances.app import create_app

    operator = new_token()
    settings = campaign.settings.model_copy(
        update={"gateway_operator_token_sha256": hash_token(operator)}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://balances") as http:
            url = "/v1/campaigns/lora/export"
            assert (await http.get(url, headers=bearer(campaign.token))).status_code == 401
            got = await http.get(url, params={"status": ["accepted", "rejected"]},
                                 headers=bearer(operator))  # fmt: skip
            assert got.status_code == 200, got.text
            lines = [json.loads(x) for x in got.text.splitlines()]
            assert len(lines) == len(RESPONSES) and all(x["status"] == "accepted" for x in lines)
            winner = campaign.state_after_round[1]
            adapter = await http.get(f"/v1/campaigns/lora/models/{winner}/adapter",
                                     headers=bearer(operator))  # fmt: skip
            if winner == "lora:base":
                assert adapter.status_code == 404
            else:
                assert adapter.status_code == 200, adapter.text
                with tarfile.open(fileobj=io.BytesIO(adapter.content)) as tar:
                    names = tar.getnames()
                assert any(n.endswith("adapter_config.json") for n in names)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
