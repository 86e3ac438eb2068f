"""Kafka client options for TLS and SASL/SCRAM, the same for aiokafka, kafka-python and
Faust; PLAINTEXT adds nothing (the embedded broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaAdminClient

from marketflow.infra import kafka_security
from marketflow.infra.kafka_security import KafkaSecurity
from marketflow.settings import Settings


def test_plaintext_adds_nothing() -> None:
    security = KafkaSecurity.from_settings(Settings())
    assert security.client_options() == {}
    assert security.faust_credentials() is None


def test_sasl_ssl_scram() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="marketflow",
                        kafka_sasl_password="pw", kafka_sasl_mechanism="SCRAM-SHA-512")
    security = KafkaSecurity.from_settings(settings)
    options = security.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("marketflow",
                                                                                "pw")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context is not None


def test_sasl_plaintext_has_no_tls() -> None:
    security = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "u", "p")
    assert "ssl_context" not in security.client_options()


def test_ssl_with_a_ca_file(tmp_path: Path) -> None:
    import certifi

    security = KafkaSecurity("SSL", cafile=Path(certifi.where()))
    assert isinstance(security.faust_credentials(), faust.SSLCredentials)
    with pytest.raises(FileNotFoundError):
        KafkaSecurity("SSL", cafile=tmp_path / "missing.pem").ssl_context()


async def test_the_clients_accept_the_options() -> None:
    """The real client classes take every option (constructed, not connected)."""
    options = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "u", "p").client_options()
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **options)
    assert producer.client._security_protocol == "SASL_SSL"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"
    # kafka-python refuses unknown options (KafkaConfigurationError): these are known
    from kafka import KafkaProducer

    assert set(options) <= set(KafkaAdminClient.DEFAULT_CONFIG)
    assert set(options) <= set(KafkaProducer.DEFAULT_CONFIG)


def test_configure_sets_the_process_options() -> None:
    try:
        kafka_security.configure(Settings(kafka_security_protocol="SASL_PLAINTEXT",
                                          kafka_sasl_username="u", kafka_sasl_password="p"))
        assert kafka_security.client_options()["sasl_plain_username"] == "u"
    finally:
        kafka_security.configure(Settings())
    assert kafka_security.client_options() == {}
