"""KafkaSecuritySettings on its own: the variables it reads and the start-up checks that name
them. The services' own tests cover how each turns it into client arguments."""

from __future__ import annotations

import ssl

import certifi
import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from parlour_runtime import KafkaSecuritySettings


class _Settings(KafkaSecuritySettings, BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in KafkaSecuritySettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_the_variables_it_reads() -> None:
    assert sorted(KafkaSecuritySettings.model_fields) == [
        "kafka_sasl_mechanism",
        "kafka_sasl_password",
        "kafka_sasl_username",
        "kafka_security_protocol",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
    ]


def test_plaintext_without_tls_by_default(env: pytest.MonkeyPatch) -> None:
    settings = _Settings()
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == (
        "PLAINTEXT",
        "PLAIN",
    )
    assert settings.kafka_ssl_context() is None


def test_reads_the_environment_and_hides_the_password(env: pytest.MonkeyPatch) -> None:
    env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    env.setenv("KAFKA_SASL_USERNAME", "svc")
    env.setenv("KAFKA_SASL_PASSWORD", "hunter2-secret")
    env.setenv("KAFKA_SSL_CAFILE", certifi.where())
    settings = _Settings()
    assert settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert settings.kafka_sasl_username == "svc"
    assert "hunter2-secret" not in repr(settings)
    context = settings.kafka_ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME is required with SASL_SSL"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_PASSWORD is required with SASL_PLAINTEXT",
        ),
        (
            {"KAFKA_SSL_CAFILE": "{ca}"},
            "KAFKA_SSL_CAFILE is set but KAFKA_SECURITY_PROTOCOL=PLAINTEXT has no TLS",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/nonexistent/c.pem"},
            "KAFKA_SSL_CERTFILE: no such file: /nonexistent/c.pem",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": "{ca}"},
            "KAFKA_SSL_KEYFILE is set without KAFKA_SSL_CERTFILE",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "{junk}"},
            "KAFKA_SSL_CAFILE/KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE unusable",
        ),
    ],
)
def test_unusable_settings_fail_naming_the_variable(
    env: pytest.MonkeyPatch, values: dict[str, str], message: str
) -> None:
    for name, value in values.items():
        # "{junk}" stands for a file that exists but is no certificate (this test module)
        env.setenv(name, value.format(ca=certifi.where(), junk=__file__))
    with pytest.raises(ValidationError, match=message):
        _Settings()
