"""The Kubernetes manifests, validated offline: core objects against Kubernetes' own schemas
(kubernetes-validate, strict), custom resources against their operators' published schemas
(vendored in infra/k8s/schemas, unknown fields refused as the API server's strict field
validation does), and shaped as operations need: probes, requests, disruption budgets, KEDA
scaling on lag or request rate, never more replicas than partitions."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from crowdsft.contracts import TOPIC_EVENTS
from infra.k8s import render

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "infra" / "k8s"
KUBERNETES = "1.33.0"
CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda/ScaledObject.v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda/TriggerAuthentication.v1alpha1.json",
    ("kafka.strimzi.io/v1", "Kafka"): "strimzi/Kafka.v1.json",
    ("kafka.strimzi.io/v1", "KafkaNodePool"): "strimzi/KafkaNodePool.v1.json",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "strimzi/KafkaTopic.v1.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): "strimzi/KafkaUser.v1.json",
    ("mongodbcommunity.mongodb.com/v1", "MongoDBCommunity"): "mongodb/MongoDBCommunity.v1.json",
    ("ray.io/v1", "RayCluster"): "kuberay/RayCluster.v1.json",
}
WORKERS = ("intake", "selection", "training", "scoring", "shapley", "deadletters")
HTTP = {"gateway": 8080, "balances": 8081, "serving": 8082, "web": 8083}
SCALED_ON_LAG = {"intake", "training"}


@cache
def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def strict(schema: Any) -> Any:
    """Refuse fields a schema does not name, unless it keeps unknown fields on purpose."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):  # fmt: skip
        out["additionalProperties"] = False
    return out


@cache
def custom_schema(api_version: str, kind: str) -> dict[str, Any]:
    schema = json.loads((K8S / "schemas" / CUSTOM[(api_version, kind)]).read_text())
    # Every object has metadata; the CRDs leave it to the API server.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    result: dict[str, Any] = strict(schema)
    return result


def test_the_committed_manifests_are_what_the_renderer_writes() -> None:
    wanted = render.rendered()
    committed = {p.name: p.read_text() for p in (K8S / "base").glob("*.yaml")}
    assert committed == wanted, "run: python infra/k8s/render.py"


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    files = {p.name for p in (K8S / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_object_is_valid(doc: dict[str, Any]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CUSTOM:
        jsonschema.validate(doc, custom_schema(*key))
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_the_validation_can_fail() -> None:
    """A misspelt field in a core object and in a custom resource are both refused."""
    deployment = json.loads(json.dumps(of_kind("Deployment")["intake"]))
    deployment["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    scaled = json.loads(json.dumps(of_kind("ScaledObject")["intake"]))
    scaled["spec"]["maxReplicas"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, custom_schema("keda.sh/v1alpha1", "ScaledObject"))


@pytest.mark.parametrize("name", [*WORKERS, *HTTP])
def test_each_service_has_probes_requests_and_a_disruption_budget(name: str) -> None:
    deployment = of_kind("Deployment")[name]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    port = HTTP.get(name, 9000)
    assert container["command"] == ["python", "-m", f"services.{name}"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    budget = of_kind("PodDisruptionBudget")[name]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] == 1


def test_keda_scales_intake_and_training_on_lag_and_http_on_request_rate() -> None:
    scaled = of_kind("ScaledObject")
    assert set(scaled) == SCALED_ON_LAG | set(HTTP)
    reads = {
        (user, name)
        for user, granted in render.grants().items()
        for operation, kind, name in granted
        if operation == "Read" and kind == "topic"
    }
    for name, obj in scaled.items():
        [trigger] = obj["spec"]["triggers"]
        assert obj["spec"]["scaleTargetRef"]["name"] == name
        if name in SCALED_ON_LAG:
            assert trigger["type"] == "kafka"
            assert trigger["metadata"]["consumerGroup"] == f"crowdsft-{name}"
            assert (name, trigger["metadata"]["topic"]) in reads
            auth = of_kind("TriggerAuthentication")[trigger["authenticationRef"]["name"]]
            assert auth["spec"]["secretTargetRef"][0]["name"] == name
        else:
            assert trigger["type"] == "prometheus"
            assert f'service="{name}"' in trigger["metadata"]["query"]


def test_no_service_may_scale_past_the_partitions() -> None:
    settings = of_kind("ConfigMap")["crowdsft-settings"]["data"]
    most = int(settings["CROWDSFT_MAX_REPLICAS"])
    partitions = int(settings["CROWDSFT_KAFKA_PARTITIONS"])
    topics = of_kind("KafkaTopic")
    assert set(topics) == set(TOPIC_EVENTS)
    assert all(t["spec"]["partitions"] == partitions for t in topics.values())
    assert partitions >= most
    assert all(s["spec"]["maxReplicaCount"] <= most for s in of_kind("ScaledObject").values())
    assert all(d["spec"]["replicas"] <= most for d in of_kind("Deployment").values())


def test_kafka_users_carry_the_acl_table() -> None:
    users = of_kind("KafkaUser")
    for name, granted in render.grants().items():
        acls = users[name]["spec"]["authorization"]["acls"]
        found = {(op, a["resource"]["type"], a["resource"]["name"])
                 for a in acls for op in a["operations"] if op != "Describe"}  # fmt: skip
        assert found == set(granted)


def test_stateful_parts_come_from_their_operators() -> None:
    [kafka] = of_kind("Kafka").values()
    assert kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"] == "scram-sha-512"
    [pool] = of_kind("KafkaNodePool").values()
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}  # KRaft, no ZooKeeper
    [mongo] = of_kind("MongoDBCommunity").values()
    assert mongo["spec"]["type"] == "ReplicaSet" and mongo["spec"]["members"] >= 3
    [ray] = of_kind("RayCluster").values()
    [gpu] = ray["spec"]["workerGroupSpecs"]
    [worker] = gpu["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
