"""Every service started at the same moment on an empty database, as `make demo` starts them:
they race to create the same collections and indexes, and every one of them comes up."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from infra.localstack import free_port
from tests.support.stack import ServiceProcess

SERVICES = ("intake", "selection", "training", "scoring", "shapley", "gateway", "balances")
STARTED = "started successfully"  # what FastStream logs once a worker's startup hooks ran


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_all_services_start_at_once_on_an_empty_database(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    gateway, balances = free_port(), free_port()
    env = {
        **stack_env,
        "CROWDSFT_MONGO_DB": f"fresh_{uuid.uuid4().hex[:8]}",
        "CROWDSFT_GATEWAY_PORT": str(gateway),
        "CROWDSFT_BALANCES_PORT": str(balances),
    }
    services = {
        name: ServiceProcess(f"services.{name}", env, tmp_path / f"{name}.log").start()
        for name in SERVICES
    }
    try:
        deadline = time.monotonic() + 90
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                service = services[name]
                assert service.alive, f"{name} died at start-up:\n{service.log()[-3000:]}"
                if name == "gateway":
                    up = answers(f"http://127.0.0.1:{gateway}/openapi.json")
                elif name == "balances":
                    up = answers(f"http://127.0.0.1:{balances}/healthz")
                else:
                    up = STARTED in service.log()
                if up:
                    pending.discard(name)
            time.sleep(0.2)
        assert not pending, f"not up after 90 s: {sorted(pending)}"
    finally:
        for service in services.values():
            service.stop()
