"""The Kubernetes manifests, written from one table of services into `infra/k8s/base/`.

Kustomize, not Helm: the base is plain YAML that `kubectl apply -k` takes as it is, so what the
test validates is exactly what the cluster gets, with no template language between them;
overlays change images, replicas or resources per environment. The YAML is generated from
this file (as `schemas/` is from the event models) so that ten services cannot drift apart,
and a test fails when the committed files differ from what this writes.

    python infra/k8s/render.py            # rewrite infra/k8s/base
    python infra/k8s/render.py --check    # exit 1 if they differ

Kafka runs through Strimzi (a KRaft cluster, one KafkaTopic per topic, one KafkaUser per
service with the ACLs of infra/kafka/acls.txt), MongoDB through the MongoDB community
operator, Ray through KubeRay with a GPU worker group, autoscaling through KEDA.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crowdsft.contracts.topics import TOPIC_EVENTS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BASE = HERE / "base"
NAMESPACE = "crowdsft"
PARTITIONS = 12  # every topic; at least MAX_REPLICAS (the services check it at start-up)
MAX_REPLICAS = 8  # the most replicas KEDA may give any one service
PROBE_PORT = 9000
KAFKA = "crowdsft"  # the Strimzi cluster: its bootstrap service is crowdsft-kafka-bootstrap
MONGO = "crowdsft-mongo"
RAY = "crowdsft-ray"
RAY_VERSION = "2.60.0"  # the ray the llm image pins
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
Doc = dict[str, Any]


@dataclass(frozen=True)
class Scaling:
    """KEDA: on a consumer group's lag, or on the request rate Prometheus sees."""

    min_replicas: int
    lag_topic: str | None = None
    lag_threshold: int = 0
    requests_per_second: int = 0


@dataclass(frozen=True)
class Service:
    name: str
    port: int = PROBE_PORT
    http: bool = False
    broker: bool = True
    llm: bool = False  # the image with the llm extra and the shared model volumes
    cpu: str = "250m"
    memory: str = "512Mi"
    memory_limit: str = "1Gi"
    scaling: Scaling | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def port_name(self) -> str:
        return "http" if self.http else "probes"

    @property
    def image(self) -> str:
        return "crowdsft-llm:latest" if self.llm else "crowdsft:latest"


# fmt: off
SERVICES = (
    Service("intake", scaling=Scaling(1, "crowdsft.feedback.submitted", lag_threshold=2_000)),
    Service("selection"),
    Service(
        "training",
        llm=True,
        cpu="1",
        memory="4Gi",
        memory_limit="8Gi",
        # Each request is one group's training: a few waiting is enough to add a replica
        # (the GPUs themselves are the Ray cluster's, scaled by its own autoscaler).
        scaling=Scaling(1, "crowdsft.training.requested", lag_threshold=2),
        env={"CROWDSFT_RAY_ADDRESS": f"ray://{RAY}-head-svc:10001",
             "CROWDSFT_RAY_GPUS_PER_WORKER": "0.25", "CROWDSFT_TRAINING_WARM_BACKENDS": "lora"},
    ),
    Service("scoring"),
    Service("shapley", cpu="500m"),
    Service("deadletters"),
    Service("gateway", port=8080, http=True, scaling=Scaling(2, requests_per_second=100),
            env={"CROWDSFT_GATEWAY_PORT": "8080"}),
    Service("balances", port=8081, http=True, broker=False,
            scaling=Scaling(2, requests_per_second=200), env={"CROWDSFT_BALANCES_PORT": "8081"}),
    Service("serving", port=8082, http=True, llm=True, cpu="1", memory="4Gi",
            memory_limit="8Gi", scaling=Scaling(2, requests_per_second=5),
            env={"CROWDSFT_SERVING_PORT": "8082"}),
    Service("web", port=8083, http=True, broker=False, scaling=Scaling(2, requests_per_second=100),
            env={"CROWDSFT_WEB_PORT": "8083", "CROWDSFT_WEB_GATEWAY_URL": "http://gateway:8080",
                 "CROWDSFT_WEB_BALANCES_URL": "http://balances:8081",
                 "CROWDSFT_WEB_SECURE_COOKIES": "true"}),
)
# fmt: on


def meta(name: str, **labels: str) -> Doc:
    return {"name": name, "namespace": NAMESPACE, "labels": {"app.kubernetes.io/part-of":
            "crowdsft", **labels}}  # fmt: skip


def selector(service: Service) -> dict[str, str]:
    return {"app.kubernetes.io/name": service.name}


def settings() -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("crowdsft-settings"),
        "data": {
            "CROWDSFT_KAFKA_BOOTSTRAP": f"{KAFKA}-kafka-bootstrap:9092",
            "CROWDSFT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "CROWDSFT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "CROWDSFT_KAFKA_PARTITIONS": str(PARTITIONS),
            "CROWDSFT_MAX_REPLICAS": str(MAX_REPLICAS),
            "CROWDSFT_MONGO_DB": "crowdsft",
            "CROWDSFT_HTTP_HOST": "0.0.0.0",
            "CROWDSFT_PROBE_PORT": str(PROBE_PORT),
            "CROWDSFT_LOG_FORMAT": "json",
            "CROWDSFT_ARTIFACT_ROOT": "/artifacts",
            "CROWDSFT_MODEL_CACHE": "/models",
            "HOME": "/tmp",  # the root filesystem is read-only; caches go to the emptyDir
        },
    }


def probe(path: str, port: int, period_s: int, failures: int) -> Doc:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": period_s,
            "timeoutSeconds": 3, "failureThreshold": failures}  # fmt: skip


def container(service: Service) -> Doc:
    env: list[Doc] = [
        {"name": "CROWDSFT_MONGO_URI", "valueFrom": {"secretKeyRef": {
            "name": f"{MONGO}-admin-crowdsft", "key": "connectionString.standard"}}},
    ]  # fmt: skip
    if service.broker:
        env += [
            {"name": "CROWDSFT_KAFKA_SASL_USERNAME", "value": service.name},
            {"name": "CROWDSFT_KAFKA_SASL_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": service.name, "key": "password"}}},
        ]  # fmt: skip
    env += [{"name": k, "value": v} for k, v in sorted(service.env.items())]
    spec: Doc = {
        "name": service.name,
        "image": service.image,
        "command": ["python", "-m", f"services.{service.name}"],
        "ports": [{"name": service.port_name, "containerPort": service.port}],
        "envFrom": [{"configMapRef": {"name": "crowdsft-settings"}}],
        "env": env,
        # Workers wait for the broker before they serve their probes: a generous start.
        "startupProbe": probe("/livez", service.port, 5, 60),
        "livenessProbe": probe("/livez", service.port, 10, 3),
        "readinessProbe": probe("/readyz", service.port, 10, 3),
        "resources": {
            "requests": {"cpu": service.cpu, "memory": service.memory},
            "limits": {"memory": service.memory_limit},
        },
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }  # fmt: skip
    if service.llm:
        spec["volumeMounts"] += [{"name": "artifacts", "mountPath": "/artifacts"},
                                 {"name": "models", "mountPath": "/models"}]  # fmt: skip
    return spec


def volumes(service: Service) -> list[Doc]:
    found: list[Doc] = [{"name": "tmp", "emptyDir": {}}]
    if service.llm:
        found += [
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": "crowdsft-artifacts"}},
            {"name": "models", "persistentVolumeClaim": {"claimName": "crowdsft-models"}},
        ]
    return found


def deployment(service: Service) -> Doc:
    labels = selector(service)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(service.name, **labels),
        "spec": {
            "replicas": service.scaling.min_replicas if service.scaling else 2,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": {**labels, "app.kubernetes.io/part-of": "crowdsft"},
                    # Scraped by a Prometheus that honours the usual annotations.
                    "annotations": {"prometheus.io/scrape": "true",
                                    "prometheus.io/port": str(service.port),
                                    "prometheus.io/path": "/metrics"},
                },
                "spec": {
                    "containers": [container(service)],
                    "volumes": volumes(service),
                    # Long enough for a consumer's last commit after SIGTERM.
                    "terminationGracePeriodSeconds": 60,
                    "automountServiceAccountToken": False,
                },
            },
        },
    }  # fmt: skip


def network_service(service: Service) -> Doc:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(service.name, **selector(service)),
        "spec": {
            "selector": selector(service),
            "ports": [{"name": service.port_name, "port": service.port,
                       "targetPort": service.port}],
        },
    }  # fmt: skip


def disruption_budget(service: Service) -> Doc:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta(service.name, **selector(service)),
        "spec": {"minAvailable": 1, "selector": {"matchLabels": selector(service)}},
    }


def autoscaling(service: Service) -> list[Doc]:
    scaling = service.scaling
    if scaling is None:
        return []
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": service.name}
    spec: Doc = {
        "scaleTargetRef": target,
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": MAX_REPLICAS,
        "cooldownPeriod": 300,
    }
    docs: list[Doc] = []
    if scaling.lag_topic is not None:
        spec["triggers"] = [{
            "type": "kafka",
            "metadata": {
                "bootstrapServers": f"{KAFKA}-kafka-bootstrap.{NAMESPACE}.svc:9092",
                "consumerGroup": f"crowdsft-{service.name}",
                "topic": scaling.lag_topic,
                "lagThreshold": str(scaling.lag_threshold),
                "offsetResetPolicy": "earliest",
                "sasl": "scram_sha512",
                # Never more replicas than partitions: the extra ones would sit idle.
                "allowIdleConsumers": "false",
            },
            "authenticationRef": {"name": f"{service.name}-kafka"},
        }]  # fmt: skip
        docs.append({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": meta(f"{service.name}-kafka"),
            "spec": {
                # The service's own user reads its group's offsets (Read implies Describe).
                "env": [{"parameter": "username", "name": "CROWDSFT_KAFKA_SASL_USERNAME",
                         "containerName": service.name}],
                "secretTargetRef": [{"parameter": "password", "name": service.name,
                                     "key": "password"}],
            },
        })  # fmt: skip
    else:
        query = f'sum(rate(crowdsft_http_request_seconds_count{{service="{service.name}"}}[2m]))'
        spec["triggers"] = [{
            "type": "prometheus",
            "metadata": {"serverAddress": PROMETHEUS, "query": query,
                         "threshold": str(scaling.requests_per_second)},
        }]  # fmt: skip
    docs.insert(
        0,
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": meta(service.name, **selector(service)),
            "spec": spec,
        },
    )
    return docs


def grants() -> dict[str, list[tuple[str, str, str]]]:
    table: dict[str, list[tuple[str, str, str]]] = {}
    for line in (REPO / "infra" / "kafka" / "acls.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            user, operation, kind, name = line.split()
            table.setdefault(user, []).append((operation, kind, name))
    return table


def kafka_user(name: str, granted: list[tuple[str, str, str]]) -> Doc:
    acls = [
        {"resource": {"type": kind, "name": resource, "patternType": "literal"},
         # Reading or writing a topic needs its metadata too.
         "operations": [operation, "Describe"] if kind == "topic" else [operation]}
        for operation, kind, resource in granted
    ]  # fmt: skip
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaUser",
        "metadata": meta(name, **{"strimzi.io/cluster": KAFKA}),
        "spec": {"authentication": {"type": "scram-sha-512"},
                 "authorization": {"type": "simple", "acls": acls}},
    }  # fmt: skip


def kafka() -> list[Doc]:
    cluster = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "Kafka",
        "metadata": meta(KAFKA),
        "spec": {
            "kafka": {
                "listeners": [{"name": "scram", "port": 9092, "type": "internal", "tls": False,
                               "authentication": {"type": "scram-sha-512"}}],
                "authorization": {"type": "simple"},
                "config": {"offsets.topic.replication.factor": 3,
                           "transaction.state.log.replication.factor": 3,
                           "transaction.state.log.min.isr": 2,
                           "default.replication.factor": 3, "min.insync.replicas": 2,
                           "num.partitions": PARTITIONS, "auto.create.topics.enable": False},
            },
            "entityOperator": {"topicOperator": {}, "userOperator": {}},
        },
    }  # fmt: skip
    pool = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaNodePool",
        "metadata": meta("dual-role", **{"strimzi.io/cluster": KAFKA}),
        "spec": {
            "replicas": 3,
            "roles": ["controller", "broker"],
            "storage": {"type": "jbod", "volumes": [{"id": 0, "type": "persistent-claim",
                        "size": "100Gi", "deleteClaim": False, "kraftMetadata": "shared"}]},
            "resources": {"requests": {"cpu": "1", "memory": "4Gi"},
                          "limits": {"memory": "4Gi"}},
        },
    }  # fmt: skip
    topics = [
        {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
         "metadata": meta(topic, **{"strimzi.io/cluster": KAFKA}),
         "spec": {"partitions": PARTITIONS, "replicas": 3,
                  "config": {"min.insync.replicas": 2}}}
        for topic in sorted(TOPIC_EVENTS)
    ]  # fmt: skip
    users = [kafka_user(name, granted) for name, granted in grants().items()]
    return [cluster, pool, *topics, *users]


def mongodb() -> list[Doc]:
    return [{
        "apiVersion": "mongodbcommunity.mongodb.com/v1",
        "kind": "MongoDBCommunity",
        "metadata": meta(MONGO),
        "spec": {
            "members": 3,
            "type": "ReplicaSet",
            "version": "8.0.12",
            "security": {"authentication": {"modes": ["SCRAM"]}},
            "users": [{
                "name": "crowdsft",
                "db": "admin",
                # Created by the operator of the cluster, never committed (see docs/operations.md).
                "passwordSecretRef": {"name": "crowdsft-mongo-password"},
                "roles": [{"name": "readWrite", "db": "crowdsft"},
                          {"name": "clusterMonitor", "db": "admin"}],
                "scramCredentialsSecretName": "crowdsft-mongo-scram",
            }],
            "additionalMongodConfig": {"storage.wiredTiger.engineConfig.journalCompressor":
                                       "zstd"},
        },
    }]  # fmt: skip


def ray_container(name: str, image: str, resources: Doc) -> Doc:
    return {"name": name, "image": image, "resources": resources,
            "volumeMounts": [{"name": "artifacts", "mountPath": "/artifacts"},
                             {"name": "models", "mountPath": "/models"}]}  # fmt: skip


def ray() -> list[Doc]:
    shared = [
        {"name": "artifacts", "persistentVolumeClaim": {"claimName": "crowdsft-artifacts"}},
        {"name": "models", "persistentVolumeClaim": {"claimName": "crowdsft-models"}},
    ]
    head = ray_container(
        "ray-head",
        "crowdsft-llm:latest",
        {"requests": {"cpu": "2", "memory": "8Gi"}, "limits": {"memory": "8Gi"}},
    )
    gpu = ray_container("ray-worker", "crowdsft-llm-gpu:latest",
                        {"requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                         "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"}})  # fmt: skip
    return [{
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": meta(RAY),
        "spec": {
            "rayVersion": RAY_VERSION,
            "enableInTreeAutoscaling": True,
            # The dashboard (an unauthenticated job API) stays on the head's loopback.
            "headGroupSpec": {"rayStartParams": {"dashboard-host": "127.0.0.1", "num-gpus": "0"},
                              "template": {"spec": {"containers": [head], "volumes": shared}}},
            "workerGroupSpecs": [{
                "groupName": "gpu",
                "replicas": 1,
                "minReplicas": 0,
                "maxReplicas": MAX_REPLICAS,
                "rayStartParams": {},
                "template": {"spec": {
                    "containers": [gpu],
                    "volumes": shared,
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                     "effect": "NoSchedule"}],
                }},
            }],
        },
    }]  # fmt: skip


def storage() -> list[Doc]:
    """Adapters and the converted base model, read and written by training, serving and Ray."""
    return [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(name),
         "spec": {"accessModes": ["ReadWriteMany"],
                  "resources": {"requests": {"storage": size}}}}
        for name, size in (("crowdsft-artifacts", "200Gi"), ("crowdsft-models", "20Gi"))
    ]  # fmt: skip


def manifests() -> dict[str, list[Doc]]:
    files: dict[str, list[Doc]] = {
        "namespace.yaml": [{"apiVersion": "v1", "kind": "Namespace",
                            "metadata": {"name": NAMESPACE}}],
        "settings.yaml": [settings()],
        "storage.yaml": storage(),
        "kafka.yaml": kafka(),
        "mongodb.yaml": mongodb(),
        "ray.yaml": ray(),
    }  # fmt: skip
    for service in SERVICES:
        files[f"{service.name}.yaml"] = [
            deployment(service),
            network_service(service),
            disruption_budget(service),
            *autoscaling(service),
        ]
    files["kustomization.yaml"] = [{
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": [name for name in files if name != "kustomization.yaml"],
    }]  # fmt: skip
    return files


HEADER = "# Written by infra/k8s/render.py; edit that, not this file.\n"


def rendered() -> dict[str, str]:
    return {
        name: HEADER + yaml.safe_dump_all(docs, sort_keys=False, width=100)
        for name, docs in manifests().items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Write or check infra/k8s/base.")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    wanted = rendered()
    if args.check:
        stale = [n for n, text in wanted.items() if not (BASE / n).exists()
                 or (BASE / n).read_text() != text]  # fmt: skip
        extra = sorted(p.name for p in BASE.glob("*.yaml") if p.name not in wanted)
        if stale or extra:
            print(f"infra/k8s/base is stale: {stale + extra}; run python infra/k8s/render.py")
            return 1
        return 0
    BASE.mkdir(exist_ok=True)
    for old in BASE.glob("*.yaml"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        (BASE / name).write_text(text)
    print(f"wrote {len(wanted)} files to {BASE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
