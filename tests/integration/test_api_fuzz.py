"""The gateway and the read API fuzzed from their own OpenAPI documents (schemathesis), served
as real processes on the real stack: whatever a client sends, no 5xx, and every refusal is a
4xx that says why. The number of cases tried is printed at the end (`pytest -s`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from crowdsft.adapters import mongo
from crowdsft.adapters.campaign_store import CampaignStore
from crowdsft.adapters.contributor_store import ContributorStore
from crowdsft.auth import hash_token, new_token
from infra.localstack import free_port
from tests.support.stack import ServiceProcess

pytestmark = pytest.mark.integration

EXAMPLES = 100  # per operation
OPERATOR_TOKEN = new_token()
TRIED: Counter[str] = Counter()


@pytest.fixture(scope="module")
async def contributor_token(db: mongo.Database) -> str:
    await CampaignStore(db).create("fuzzed")
    return (await ContributorStore(db).register("fuzzer"))[1]


@pytest.fixture(scope="module")
def apis(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, contributor_token: str
) -> Iterator[dict[str, Any]]:
    logs: Path = tmp_path_factory.mktemp("fuzz")
    ports = {"gateway": free_port(), "balances": free_port()}
    env = {
        **stack_env,
        "CROWDSFT_GATEWAY_PORT": str(ports["gateway"]),
        "CROWDSFT_BALANCES_PORT": str(ports["balances"]),
        "CROWDSFT_GATEWAY_OPERATOR_TOKEN_SHA256": hash_token(OPERATOR_TOKEN),
        "CROWDSFT_GATEWAY_RATE_LIMIT_BURST": "1000000",
        "CROWDSFT_ANONYMOUS_RATE_LIMIT_BURST": "1000000",
    }
    services = {
        name: ServiceProcess(f"services.{name}", env, logs / f"{name}.log").start()
        for name in ports
    }
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    deadline = time.monotonic() + 60
    for name, url in urls.items():
        while True:
            try:
                if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert services[name].alive, services[name].log()[-3000:]
            assert time.monotonic() < deadline, f"{name} did not come up"
            time.sleep(0.2)
    yield {"urls": urls, "token": contributor_token, "services": services}
    for service in services.values():
        assert service.alive, f"a fuzzed service died:\n{service.log()[-3000:]}"
        service.stop()
    print(f"\nschemathesis cases tried: {dict(TRIED)} (total {sum(TRIED.values())})")


def fuzz(service: str, base_url: str, headers_for: Any) -> int:
    """Every operation of the service's OpenAPI document, EXAMPLES cases each; the pytest
    plugin of schemathesis 4.32 does not run under pytest 9, its Python API does."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def one(case: schemathesis.Case) -> None:
            TRIED[service] += 1
            response = case.call(headers=headers_for(case))
            label = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, f"{label}: {response.text[:500]}"
            if response.status_code >= 400:
                assert response.json().get("detail"), f"{label}: {response.status_code} no reason"

        one()
    return len(operations)


FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip


def test_gateway_never_answers_5xx(apis: dict[str, Any]) -> None:
    def headers(case: schemathesis.Case) -> dict[str, str]:
        token = OPERATOR_TOKEN if case.path == "/v1/campaigns" else apis["token"]
        return {"Authorization": f"Bearer {token}"}

    assert fuzz("gateway", apis["urls"]["gateway"], headers) >= 2


def test_read_api_never_answers_5xx(apis: dict[str, Any]) -> None:
    assert fuzz("balances", apis["urls"]["balances"], lambda case: {}) >= 6
