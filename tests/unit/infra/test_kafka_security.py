"""The process-wide Kafka security facade: configured once, it gives every aiokafka
client and the Faust app the settings' security (the translation is tested in
tests/unit/test_kafka_clients.py)."""

from __future__ import annotations

import faust

from marketflow.infra import kafka_security
from marketflow.settings import Settings


def test_unconfigured_and_plaintext_add_nothing_that_matters() -> None:
    kafka_security._settings = None
    assert kafka_security.client_options() == {}
    assert kafka_security.faust_credentials() is None
    kafka_security.configure(Settings())
    assert kafka_security.client_options() == {"security_protocol": "PLAINTEXT"}
    assert kafka_security.faust_credentials() is None


def test_sasl_reaches_aiokafka_and_faust() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL",
                        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="mf",
                        kafka_sasl_password="s3cret")  # type: ignore[arg-type]
    try:
        kafka_security.configure(settings)
        options = kafka_security.client_options()
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == "SCRAM-SHA-512"
        assert options["sasl_plain_password"] == "s3cret"
        assert options["ssl_context"] is not None
        credentials = kafka_security.faust_credentials()
        assert isinstance(credentials, faust.SASLCredentials)
        assert credentials.username == "mf"
    finally:
        kafka_security._settings = None
