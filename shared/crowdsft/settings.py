"""Runtime settings, read from `CROWDSFT_*` environment variables (and `.run/env` locally).

The same code talks to Tansu + SecantusDB on a laptop and to Apache Kafka + MongoDB in
production: only these settings change. Settings are built at start-up, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CROWDSFT_", extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # Apache Kafka's defaults are fine in production; Tansu joins groups in ~session/2,
    # so the local stack writes small values into .run/env.
    kafka_session_timeout_ms: int = Field(10_000, ge=500)
    kafka_heartbeat_interval_ms: int = Field(3_000, ge=100)
    # How long an idle fetch waits for data. Each round crosses several topics in turn, so
    # this bounds a round's latency when a broker answers a fetch only at its deadline.
    kafka_fetch_max_wait_ms: int = Field(500, ge=1)
    # Every topic's partition count, and the most replicas any one service runs (KEDA's
    # maxReplicaCount): a consumer beyond the partitions would sit idle, so a service refuses
    # to start when a topic has fewer partitions than this.
    kafka_partitions: int = Field(3, ge=1)
    max_replicas: int = Field(3, ge=1)

    # Probes and metrics: each worker serves /livez, /readyz and /metrics on this port (0:
    # any free one, as for the many processes of a test run); HTTP services on their own port.
    probe_port: int = Field(0, ge=0, le=65535)
    # Traces go to this OTLP/HTTP collector (e.g. http://otel-collector:4318); unset: the
    # spans are made (the trace context still travels in Kafka headers) but exported nowhere.
    otlp_endpoint: str | None = None

    # Logs: one JSON object per line for collectors, or the readable console form locally.
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    mongo_uri: str = "mongodb://127.0.0.1:27017/?retryWrites=false"
    mongo_db: str = "crowdsft"
    # Writes acknowledged only once journaled on a majority (`w: majority, j: true`).
    mongo_durable_writes: bool = True

    intake_batch_max_records: int = Field(2_000, ge=1)
    intake_batch_timeout_ms: int = Field(50, ge=1)
    # A text this similar (estimated Jaccard of character 5-grams) to an earlier one in its
    # campaign is a near-copy: stored, in no crowd, so it earns nothing (selection screens).
    near_copy_threshold: float = Field(0.7, gt=0.0, le=1.0)

    # Training: the lora backend's Ray cluster (unset: a local one of `ray_local_cpus`), its
    # resident model workers (unset: as many as the cluster's CPUs allow, each with
    # `ray_cpus_per_worker` threads: one thread each measured fastest on 2 busy cores, see
    # bench/results/lora.json; a GPU share each when the cluster has GPUs), where
    # adapters are kept (a shared volume when workers span machines) and the model cache.
    ray_address: str | None = None
    ray_local_cpus: int | None = Field(None, ge=1)
    ray_workers: int | None = Field(None, ge=1)
    ray_cpus_per_worker: int = Field(1, ge=1)
    ray_gpus_per_worker: float = Field(1.0, gt=0, le=1)
    artifact_root: str = ".run/artifacts"
    model_cache: str | None = None
    training_batch_max_records: int = Field(16, ge=1)
    # A round still missing a candidate this long after it opened asks training again (a
    # request or its answer was lost). Longer than the slowest candidate takes: a SmolLM2
    # candidate on a CPU takes minutes, a vector one milliseconds.
    selection_candidate_timeout_s: float = Field(900.0, gt=0)
    # A round of SmolLM2 on a CPU takes minutes; the consumer must not be dropped meanwhile.
    training_max_poll_interval_ms: int = Field(3_600_000, ge=1_000)

    # Backends whose trainers training readies at start-up (`lora`: the Ray workers start and
    # load their models then, not when the first round asks): comma-separated.
    training_warm_backends: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Modules that register more training backends (`crowdsft.domain.backends.register`),
    # imported by every process at start-up: comma-separated, e.g. `mypkg.backend`.
    backend_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)

    http_host: str = "127.0.0.1"
    gateway_port: int = Field(8080, ge=0, le=65535)
    balances_port: int = Field(8081, ge=0, le=65535)
    # SHA-256 hex of the operators' token (`crowdsft operator token` makes one). Unset: the
    # gateway creates no campaigns over HTTP.
    gateway_operator_token_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    gateway_rate_limit_per_minute: int = Field(60, ge=1)
    gateway_rate_limit_burst: int = Field(10, ge=1)
    # Shared: every replica counts in MongoDB, so the limit holds however many there are
    # (one store round trip per submission); off: each replica keeps its own buckets.
    gateway_rate_limit_shared: bool = True
    # How often a replica adds its shared counts to the store and reads the totals back (one
    # bulk write per interval, not a round trip per request); replicas together may admit up
    # to what they receive in one interval past a window's burst. 0: a round trip each.
    gateway_rate_limit_sync_ms: int = Field(100, ge=0)
    gateway_workers: int = Field(1, ge=1, description="uvicorn worker processes")
    # A bearer token found in the store is trusted this long without asking again, so a
    # request costs no round trip; a rotated token stops working within it. 0: ask each time.
    http_token_cache_s: float = Field(30.0, ge=0)
    # One log line per HTTP request (uvicorn's access log): off by default, since /metrics
    # counts and times every request by route and status, and lines cost the gateway ~9%.
    http_access_log: bool = False
    # Requests without a valid token, limited per client address: guessing tokens is slow.
    anonymous_rate_limit_per_minute: int = Field(30, ge=1)
    anonymous_rate_limit_burst: int = Field(10, ge=1)
    # Refused from Content-Length, before parsing or the token check (feedback is 64 KiB at
    # most; a campaign spec with its reference answers fits easily).
    http_max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # How long an HTTP request waits for the store or the broker before answering 503.
    http_store_timeout_ms: int = Field(1_500, ge=100)
    gateway_publish_timeout_ms: int = Field(2_000, ge=100)

    # Exports name contributors by an HMAC of their id under this key: the same pseudonym in
    # every export while the key stays. Unset: a fresh key per export (pseudonyms differ).
    export_pseudonym_key: SecretStr | None = None
    # The serving service: its port, how many campaigns' models it keeps loaded, and the
    # longest answer it writes.
    serving_port: int = Field(8082, ge=0, le=65535)
    serving_models_kept: int = Field(2, ge=1)
    serving_max_tokens: int = Field(512, ge=1)
    serving_batch_wait_ms: int = Field(10, ge=0)

    # Origins a browser may call the gateway and the read API from (comma-separated; none by
    # default: the web app calls them from its server).
    http_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The contributor web app: its port, where it finds the services, and whether its
    # cookies need HTTPS (true behind TLS in production).
    web_port: int = Field(8083, ge=0, le=65535)
    web_gateway_url: str = "http://127.0.0.1:8080"
    web_balances_url: str = "http://127.0.0.1:8081"
    web_secure_cookies: bool = False

    @model_validator(mode="after")
    def _partitions_cover_replicas(self) -> Settings:
        if self.kafka_partitions < self.max_replicas:
            raise ValueError(
                f"CROWDSFT_KAFKA_PARTITIONS={self.kafka_partitions} is below "
                f"CROWDSFT_MAX_REPLICAS={self.max_replicas}: replicas beyond the partition count "
                "would consume nothing; raise the partitions or lower the replicas"
            )
        return self

    @field_validator("backend_modules", "http_cors_origins", "training_warm_backends",
                     mode="before")  # fmt: skip
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def load_settings() -> Settings:
    """Environment first, then the env file the local stack wrote (`CROWDSFT_ENV_FILE`)."""
    env_file = os.environ.get("CROWDSFT_ENV_FILE", ".run/env")
    return Settings(_env_file=env_file if os.path.exists(env_file) else None)


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings from `CROWDSFT_*` pairs such as the local stack's env file, ignoring the rest."""
    prefix = "CROWDSFT_"
    fields = {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
    fields.pop("env_file", None)
    return Settings.model_validate(fields)
