"""Every service observed on a running campaign: its /metrics agree with the store, its
readiness follows the store's, one feedback's spans form one trace, and a service refuses to
start on topics with fewer partitions than replicas may need."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.adapters.dead_letter_store import DeadLetterStore
from crowdsft.adapters.kafka import ensure_topics
from crowdsft.adapters.round_store import RoundStore
from crowdsft.contracts import topics
from crowdsft.domain.round import RoundStatus
from crowdsft.engine.simulation import SimulationConfig
from crowdsft.settings import Settings, settings_from
from infra.localstack import free_port
from services.gateway.app import create_app as gateway_app
from services.intake.app import create_app as intake_app
from tests.integration.campaign_runs import (
    assert_matches_engine,
    launch,
    reference,
    spec_for,
    wait_finished,
)
from tests.support.kafka_io import produce_raw
from tests.support.stack import ServiceProcess, localstack, private_stack, wait_http

pytestmark = pytest.mark.integration

WORKERS = ("intake", "selection", "training", "scoring", "shapley", "deadletters")
CONFIG = SimulationConfig(
    n_users=20, n_groups=4, grouping="epsilon_greedy", points_rule="shapley", n_rounds=6
)
SEED = 5
BURST = 3


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("observed")


@pytest.fixture(scope="module")
def stack_env(run_dir: Path) -> Iterator[dict[str, str]]:
    with private_stack(run_dir, "observed") as env:
        yield env


@pytest.fixture(scope="module")
async def db(settings: Settings) -> Any:
    """Short server selection: the store is stopped under this client."""
    async with mongo.opened(settings, timeout_ms=2_000) as database:
        yield database


def samples(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def by_label(text: str, name: str, label: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.value:
                found[sample.labels[label]] += int(sample.value)
    return found


async def scrape(http: httpx.AsyncClient, ports: dict[str, int]) -> dict[str, str]:
    return {n: (await http.get(f"http://127.0.0.1:{p}/metrics")).text for n, p in ports.items()}


async def ready(http: httpx.AsyncClient, port: int) -> bool:
    try:
        return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def eventually(check: Any, timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)


async def test_metrics_equal_the_store_and_readiness_follows_it(
    stack_env: dict[str, str], run_dir: Path, db: mongo.Database, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in (*WORKERS, "gateway", "balances")}
    base = {
        **stack_env,
        "CROWDSFT_GATEWAY_PORT": str(ports["gateway"]),
        "CROWDSFT_BALANCES_PORT": str(ports["balances"]),
        "CROWDSFT_GATEWAY_RATE_LIMIT_BURST": str(BURST),
        "CROWDSFT_GATEWAY_RATE_LIMIT_PER_MINUTE": "1",
    }
    services = {
        name: ServiceProcess(
            f"services.{name}", {**base, "CROWDSFT_PROBE_PORT": str(ports[name])},
            tmp_path / f"{name}.log",
        ).start()
        for name in ports
    }  # fmt: skip
    try:
        for name, port in ports.items():
            await wait_http(f"http://127.0.0.1:{port}/readyz", services[name])
        settings = settings_from(stack_env)
        ref = reference(CONFIG, SEED)
        spec = spec_for(f"obs-{uuid.uuid4().hex[:6]}", CONFIG, ref.crowd, SEED)
        await launch(db, settings, spec, ref.crowd)
        # Refusals of every kind: a burst past the rate limit to a campaign that does not
        # exist (accepted by the gateway, rejected and dead-lettered by intake), and bytes
        # that are no event at all.
        _, token = await ContributorStore(db).register("burster")
        async with httpx.AsyncClient(timeout=10) as http:
            answers = Counter()
            for _ in range(BURST + 2):
                response = await http.post(
                    f"http://127.0.0.1:{ports['gateway']}/v1/feedback",
                    json={"campaign_id": "no-such-campaign", "prompt": "p", "response": "r"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                answers[response.status_code] += 1
            assert answers == {202: BURST, 429: 2}
            garbage = [(b"k", b"not json"), (b"k", b'{"event_type": "nonsense"}')]
            await produce_raw(stack_env["CROWDSFT_KAFKA_BOOTSTRAP"], topics.FEEDBACK_SUBMITTED,
                              garbage)  # fmt: skip
            await wait_finished(db, spec, services)
            await assert_matches_engine(db, spec, ref)
            letters = DeadLetterStore(db)

            async def all_letters_kept() -> bool:
                return sum(c.count for c in await letters.counts()) >= BURST + len(garbage)

            await eventually(all_letters_kept, 60, "the dead letters to be kept")

            # Lag: every group has committed everything it was given.
            async def no_lag() -> bool:
                scraped = await scrape(http, {n: ports[n] for n in WORKERS})
                return all(samples(t, "crowdsft_consumer_lag") == 0 for t in scraped.values())

            await eventually(no_lag, 60, "every consumer group's lag to reach zero")
            text = "\n".join((await scrape(http, ports)).values())

            contributions = await db[mongo.CONTRIBUTIONS].count_documents({})
            rejections = Counter(
                [doc["reason"] async for doc in db[mongo.REJECTIONS].find({}, {"reason": 1})]
            )
            kept = Counter()
            for count in await letters.counts():
                if count.source_topic == topics.FEEDBACK_SUBMITTED:
                    kept[count.reason] += count.count
            rounds = await RoundStore(db).of_campaign(spec.campaign_id)
            decided = [r for r in rounds if r.status is not RoundStatus.OPEN]
            scored = [r for r in rounds if r.status is RoundStatus.SCORED]

            assert samples(text, "crowdsft_feedback_accepted_total") == contributions
            assert contributions == CONFIG.n_users
            assert by_label(text, "crowdsft_feedback_rejected_total", "reason") == rejections
            assert sum(rejections.values()) == BURST + len(garbage)
            assert by_label(text, "crowdsft_feedback_dead_lettered_total", "reason") == kept
            assert samples(text, "crowdsft_rounds_opened_total") == len(rounds) == CONFIG.n_rounds
            assert samples(text, "crowdsft_rounds_decided_total") == len(decided)
            assert samples(text, "crowdsft_round_seconds_count") == len(decided)
            assert samples(text, "crowdsft_rounds_scored_total") == len(scored) == len(rounds)
            trained = sum(r.opening.n_groups for r in rounds)
            assert samples(text, "crowdsft_training_seconds_count", backend="vector") == trained
            assert samples(text, "crowdsft_rate_limit_refusals_total", who="contributor") == 2
            assert samples(text, "crowdsft_http_request_seconds_count", service="gateway",
                           route="/v1/feedback", status="202") == BURST  # fmt: skip
            # FastStream's own counts: intake received every record sent to it.
            received = samples(
                text, "faststream_received_messages_total", app_name="intake",
                handler=topics.FEEDBACK_SUBMITTED,
            )  # fmt: skip
            assert received == CONFIG.n_users + BURST + len(garbage)

            # Readiness follows the store: false while it is down, true once it is back.
            store_users = [n for n in ports if n != "gateway"] + ["gateway"]
            localstack().stop_store(run_dir)
            try:
                for name in store_users:
                    await eventually(lambda n=name: _not(ready(http, ports[n])), 30,
                                     f"{name} to be unready")  # fmt: skip
                report = (await http.get(f"http://127.0.0.1:{ports['intake']}/readyz")).json()
                assert report["checks"]["store"] is False and report["checks"]["broker"] is True
            finally:
                localstack().start_store_again(run_dir)
            for name in store_users:
                await eventually(lambda n=name: ready(http, ports[n]), 60, f"{name} ready again")
        dead = [name for name, service in services.items() if not service.alive]
        assert not dead, dead
    finally:
        for service in services.values():
            service.stop()


async def _not(check: Any) -> bool:
    return not await check


async def test_one_feedbacks_spans_share_one_trace(settings: Settings, db: mongo.Database) -> None:
    """Gateway and intake in this process, with an in-memory exporter: the request's span,
    the publish, intake's consume and its store write all carry the one trace id."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    campaign = f"traced-{uuid.uuid4().hex[:6]}"
    await CampaignStore(db).create(campaign)
    _, token = await ContributorStore(db).register(f"tracer-{uuid.uuid4().hex[:6]}")
    gateway = gateway_app(settings)
    intake = intake_app(settings)
    async with gateway.router.lifespan_context(gateway), intake.start_lifespan_context():
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            response = await http.post(
                "/v1/feedback",
                json={"campaign_id": campaign, "prompt": "2 + 2?", "response": "4"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 202, response.text
        event_id = response.json()["event_id"]

        async def stored() -> bool:
            found = await db[mongo.CONTRIBUTIONS].find_one({"campaign_id": campaign})
            return found is not None and any(
                s.name == "intake store" for s in exporter.get_finished_spans()
            )

        await eventually(stored, 60, f"{event_id} to be stored and its span ended")

    spans = exporter.get_finished_spans()
    [request] = [s for s in spans if s.name == "POST /v1/feedback"]
    trace_id = request.context.trace_id
    in_trace = {s.name for s in spans if s.context.trace_id == trace_id}
    assert f"{topics.FEEDBACK_SUBMITTED} publish" in in_trace, in_trace
    assert "intake store" in in_trace, in_trace
    # The write descends from the request, through the message the gateway created (whose
    # context the record's headers carried; its publish span is that message's sibling).
    by_id = {s.context.span_id: s for s in spans}
    [write] = [s for s in spans if s.name == "intake store" and s.context.trace_id == trace_id]
    chain = [write.name]
    current = write
    while current.parent is not None:
        current = by_id[current.parent.span_id]
        chain.append(current.name)
    assert chain == ["intake store", f"{topics.FEEDBACK_SUBMITTED} create", "POST /v1/feedback"]


async def test_a_service_refuses_topics_with_fewer_partitions_than_replicas(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    """The topics exist with 3 partitions; a deployment planning 4 replicas must not start."""
    await ensure_topics(settings_from(stack_env))
    env = {**stack_env, "CROWDSFT_KAFKA_PARTITIONS": "4", "CROWDSFT_MAX_REPLICAS": "4"}
    service = ServiceProcess("services.scoring", env, tmp_path / "scoring.log").start()
    assert service.proc is not None
    assert service.proc.wait(60) != 0
    assert "fewer partitions than CROWDSFT_MAX_REPLICAS=4" in service.log()
    assert "crowdsft.round.decided has 3" in service.log()

    too_many = {**stack_env, "CROWDSFT_MAX_REPLICAS": "5"}
    refused = ServiceProcess("services.scoring", too_many, tmp_path / "scoring-2.log").start()
    assert refused.proc is not None
    assert refused.proc.wait(60) != 0
    assert "CROWDSFT_KAFKA_PARTITIONS=3 is below CROWDSFT_MAX_REPLICAS=5" in refused.log()
