"""Broker settings: SASL comes only from configuration, and the same code serves any broker."""

from __future__ import annotations

import pytest
from faststream.security import SASLPlaintext, SASLScram512

from crowdsft.adapters.kafka import consumer_tuning, security
from crowdsft.settings import Settings


def test_no_sasl_unless_configured() -> None:
    assert security(Settings()) is None


def test_scram_credentials_from_settings() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="intake",
        kafka_sasl_password="s3cret",  # type: ignore[arg-type]
    )
    configured = security(settings)
    assert isinstance(configured, SASLScram512)
    assert configured.username == "intake"
    assert configured.use_ssl is True


def test_plain_sasl_without_tls() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="gateway",
        kafka_sasl_password="pw",  # type: ignore[arg-type]
    )
    configured = security(settings)
    assert isinstance(configured, SASLPlaintext)
    assert not configured.use_ssl


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="USERNAME"):
        security(Settings(kafka_sasl_mechanism="PLAIN"))


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDSFT_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("CROWDSFT_KAFKA_SESSION_TIMEOUT_MS", "1000")
    settings = Settings()
    assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    tuning = consumer_tuning(settings)
    assert tuning["session_timeout_ms"] == 1000
    assert tuning["auto_offset_reset"] == "earliest"
