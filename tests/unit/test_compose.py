"""The production compose file: accepted by docker compose, and shaped as the design says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "selection", "training", "scoring", "shapley", "gateway", "balances")


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return document


@pytest.mark.docker
def test_docker_compose_config_accepts_the_file() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose CLI on this machine")
    result = subprocess.run(
        [*command, "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def test_production_parts_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert "--replSet" in services["mongo"]["command"]
    assert "--head" in services["ray-head"]["command"]
    gpus = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpus[0]["capabilities"] == ["gpu"]


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_runs_replicated_with_settings_only(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    assert service["deploy"]["replicas"] >= 2
    assert service["command"] == ["python", "-m", f"services.{name}"]
    env = service["environment"]
    assert env["CROWDSFT_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert "replicaSet" in env["CROWDSFT_MONGO_URI"]
    # Secrets pass through from the operator's shell, never a default in the file.
    assert env["CROWDSFT_KAFKA_SASL_PASSWORD"] is None


def test_training_reaches_the_ray_cluster_with_shared_artifacts(compose: dict[str, Any]) -> None:
    """The lora backend's work runs on the Ray nodes, which must read what training wrote."""
    services = compose["services"]
    training = services["training"]
    assert training["build"]["args"]["EXTRAS"] == "[llm]"
    assert training["environment"]["CROWDSFT_RAY_ADDRESS"].startswith("ray://ray-head:")
    root = training["environment"]["CROWDSFT_ARTIFACT_ROOT"]
    for node in ("training", "ray-head", "ray-worker"):
        assert f"artifacts:{root}" in services[node]["volumes"]
    assert services["ray-worker"]["build"]["args"]["EXTRAS"] == "[llm]"
