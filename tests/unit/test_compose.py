"""The production compose file: accepted by docker compose, and shaped as the design says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from crowdsft.contracts import TOPIC_EVENTS, topics
from infra.k8s import render

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "selection", "training", "scoring", "shapley", "deadletters", "gateway",
            "balances", "serving", "web")  # fmt: skip
NO_BROKER = {"balances", "web"}  # the read API talks to MongoDB only, the web app to both APIs
GROUPLESS = {"serving"}  # reads without a consumer group: every replica sees every event
SILENT = {"deadletters"}  # keeps the dead letters and sets nothing aside itself: no loop


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


PRINCIPALS = ("intake", "selection", "training", "scoring", "shapley", "deadletters", "gateway",
              "serving", "operator")  # fmt: skip
SECRETS = (
    "MONGO_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    *(f"KAFKA_PASSWORD_{n.upper()}" for n in PRINCIPALS),
)


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose CLI on this machine")
    return subprocess.run(
        [*command, "-f", str(REPO / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in SECRETS} | env,
    )


@pytest.mark.docker
def test_docker_compose_config_accepts_the_file_once_every_secret_is_set() -> None:
    result = compose_config(dict.fromkeys(SECRETS, "not-a-real-secret"))
    assert result.returncode == 0, result.stderr


@pytest.mark.docker
def test_docker_compose_refuses_to_start_without_its_secrets() -> None:
    result = compose_config({})
    assert result.returncode != 0 and "set " in result.stderr


def test_production_parts_are_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert "--replSet" in " ".join(services["mongo"]["command"])
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
    # Secrets come from the operator's environment, required, never a default in the file.
    assert re.search(r"mongodb://crowdsft:\$\{MONGO_PASSWORD:\?[^}]*\}@", env["CROWDSFT_MONGO_URI"])
    if name not in NO_BROKER:
        assert env["CROWDSFT_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["CROWDSFT_KAFKA_SASL_USERNAME"] == name
        assert env["CROWDSFT_KAFKA_SASL_PASSWORD"] == (
            f"${{KAFKA_PASSWORD_{name.upper()}:?set KAFKA_PASSWORD_{name.upper()}}}"
        )


def test_production_is_secure_by_default(compose: dict[str, Any]) -> None:
    services = compose["services"]
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_LISTENERS"].startswith("SASL_PLAINTEXT://:9092,")
    assert "PLAINTEXT://:" not in kafka["KAFKA_LISTENERS"].replace("SASL_PLAINTEXT://:", "")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert "StandardAuthorizer" in kafka["KAFKA_AUTHORIZER_CLASS_NAME"]
    mongo = services["mongo"]
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_PASSWORD:?")
    assert "--keyFile" in " ".join(mongo["command"])
    ray = services["ray-head"]
    assert "ports" not in ray and "--dashboard-host=127.0.0.1" in ray["command"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"gateway", "balances", "serving", "web", "prometheus", "grafana"}
    for name in ("prometheus", "grafana"):  # operators' tools: on the host's loopback only
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"])
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )


def grants() -> dict[str, set[tuple[str, str, str]]]:
    """infra/kafka/acls.txt, read as the Kubernetes KafkaUsers read it."""
    return {user: set(granted) for user, granted in render.grants().items()}


@pytest.mark.parametrize("name", [s for s in SERVICES if s not in NO_BROKER])
def test_each_principal_may_read_its_inputs_and_write_only_what_it_publishes(name: str) -> None:
    """The ACL table against the code: the topics a service subscribes to, and the events it
    builds (plus the dead-letter topic every consumer writes)."""
    source = "\n".join(p.read_text() for p in (REPO / "services" / name).glob("*.py"))
    subscribed = {getattr(topics, t) for t in re.findall(r"topics\.([A-Z_]+)", source)}
    built = {
        t
        for t, event in TOPIC_EVENTS.items()
        if re.search(rf"\b{event.__name__}(\.asking)?\(", source)
    }  # Event(...), Event.asking(...)
    consumes = bool(subscribed) and name not in GROUPLESS
    # Its own group, and any other it declares beside it (training's `-prepare`).
    groups = set(re.findall(r'GROUP_ID = "([a-z-]+)"', source)) if consumes else set()
    assert not consumes or f"crowdsft-{name}" in groups
    expected = (
        {("Read", "topic", t) for t in subscribed}
        | {("Read", "group", group) for group in groups}
        | {("Write", "topic", t) for t in built}
        | ({("Write", "topic", topics.DEAD_LETTERS)} if consumes and name not in SILENT else set())
    )
    assert grants()[name] == expected


def test_every_topic_is_created_by_the_set_up() -> None:
    named = {n for user in grants().values() for _, kind, n in user if kind == "topic"}
    assert named == set(TOPIC_EVENTS)


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


HTTP_PORTS = {"gateway": 8080, "balances": 8081, "serving": 8082, "web": 8083}
OBSERVABILITY = REPO / "infra" / "observability"


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_healthy_only_when_ready(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    port = HTTP_PORTS.get(name, int(service["environment"]["CROWDSFT_PROBE_PORT"]))
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])


def test_topics_have_partitions_for_every_replica(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["intake"]["environment"]
    partitions, most = int(env["CROWDSFT_KAFKA_PARTITIONS"]), int(env["CROWDSFT_MAX_REPLICAS"])
    assert services["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"] == partitions >= most
    assert all(services[n]["deploy"]["replicas"] <= most for n in SERVICES)


def test_prometheus_scrapes_every_service_on_its_port() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    scraped = {
        (name, sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    workers = set(SERVICES) - set(HTTP_PORTS)
    assert scraped == {(n, 9000) for n in workers} | set(HTTP_PORTS.items())


def exported_names() -> set[str]:
    """Every series name the services' registry can export (counters as `_total`, ...)."""
    from prometheus_client import REGISTRY

    import crowdsft.adapters.metrics  # noqa: F401 - registers the counters

    names: set[str] = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_the_dashboard_and_alerts_ask_only_for_series_that_exist() -> None:
    """Renaming a counter without its dashboard panel or alert fails here, not in production."""
    dashboard = json.loads((OBSERVABILITY / "grafana/dashboards/crowdsft.json").read_text())
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())["groups"][0]["rules"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [rule["expr"] for rule in rules]
    asked = {name for e in exprs for name in re.findall(r"\b(crowdsft_[a-z_]+)", e)}
    assert asked and asked <= exported_names(), asked - exported_names()
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("intake", "dead letters", "round latency", "lag", "training", "api latency"):
        assert topic in titles
