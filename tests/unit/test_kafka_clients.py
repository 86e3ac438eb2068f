"""Kafka security settings reach every client: the real client objects of kafka-python,
aiokafka and Faust are built (without connecting) from `client_kwargs`, and the places
that build clients outside `stream/` are checked to pass them on."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any, ClassVar

import certifi
import pytest
from pydantic import ValidationError

from marketflow.kafka_clients import client_kwargs
from marketflow.settings import Settings

PASSWORD = "scram-s3cret-pw"
NO_BROKER = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("MARKETFLOW_")]:
        monkeypatch.delenv(name)


def sasl_ssl(**extra: Any) -> Settings:
    return Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                    kafka_sasl_username="marketflow", kafka_sasl_password=PASSWORD,
                    kafka_ssl_cafile=Path(certifi.where()), **extra)


def test_plaintext_by_default() -> None:
    settings = Settings()
    assert client_kwargs(settings, "kafka-python") == {"security_protocol": "PLAINTEXT"}
    assert client_kwargs(settings, "aiokafka") == {"security_protocol": "PLAINTEXT"}
    assert client_kwargs(settings, "faust") == {}


def test_kafka_python_clients_get_sasl_and_tls() -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    kwargs = client_kwargs(sasl_ssl(), "kafka-python")
    assert kwargs == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                      "sasl_plain_username": "marketflow", "sasl_plain_password": PASSWORD,
                      "ssl_check_hostname": True, "ssl_cafile": certifi.where(),
                      "ssl_certfile": None, "ssl_keyfile": None}
    # the producer and consumer: real objects (api_version given: no connection is made)
    for cls in (KafkaProducer, KafkaConsumer):
        client = cls(bootstrap_servers=NO_BROKER, api_version=(2, 8), **kwargs)
        try:
            assert {k: client.config[k] for k in kwargs} == kwargs
        finally:
            client.close()
    # the admin client connects in its constructor: it must at least know every key
    assert set(kwargs) <= set(KafkaAdminClient.DEFAULT_CONFIG)


async def test_aiokafka_clients_get_sasl_and_an_ssl_context() -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    kwargs = client_kwargs(sasl_ssl(), "aiokafka")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    producer = AIOKafkaProducer(bootstrap_servers=NO_BROKER, **kwargs)
    consumer = AIOKafkaConsumer("t", bootstrap_servers=NO_BROKER, **kwargs)
    for client, inner in ((producer, producer.client), (consumer, consumer._client)):
        assert (inner._security_protocol, inner._sasl_mechanism, inner._sasl_plain_username,
                inner._sasl_plain_password) == ("SASL_SSL", "SCRAM-SHA-512", "marketflow",
                                                PASSWORD)
        assert inner._ssl_context is kwargs["ssl_context"]
        await client.stop()  # never started: nothing to close but the object


@pytest.mark.parametrize(("settings", "expected"), [
    (dict(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
          kafka_sasl_username="u", kafka_sasl_password=PASSWORD),
     {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
      "sasl_plain_username": "u", "sasl_plain_password": PASSWORD, "ssl_context": None}),
    (dict(kafka_security_protocol="SSL", kafka_ssl_cafile=Path(certifi.where())),
     {"security_protocol": "SSL"}),
    (dict(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
          kafka_sasl_username="u", kafka_sasl_password=PASSWORD),
     {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
      "sasl_plain_password": PASSWORD}),
])
def test_faust_broker_credentials(settings: dict[str, Any], expected: dict[str, Any]) -> None:
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    kwargs = client_kwargs(Settings(**settings), "faust")
    app = faust.App("test-credentials", broker=f"kafka://{NO_BROKER}", **kwargs)
    auth = dict(credentials_to_aiokafka_auth(app.conf.broker_credentials))
    tls = settings["kafka_security_protocol"].endswith("SSL")
    assert isinstance(auth.pop("ssl_context"), ssl.SSLContext) == tls
    expected = {k: v for k, v in expected.items() if k != "ssl_context"}
    assert auth == expected
    assert PASSWORD not in repr(app.conf.broker_credentials)


def test_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka-password"
    secret.write_text(PASSWORD + "\n")
    settings = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                        kafka_sasl_username="u", kafka_sasl_password_file=secret)
    assert client_kwargs(settings, "kafka-python")["sasl_plain_password"] == PASSWORD
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize(("env", "message"), [
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN"},
     "needs MARKETFLOW_KAFKA_SASL_PASSWORD, MARKETFLOW_KAFKA_SASL_USERNAME"),
    ({"SASL_USERNAME": "u"}, "MARKETFLOW_KAFKA_SASL_USERNAME is set but "
                             "MARKETFLOW_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "GSSAPI"}, "SCRAM-SHA-256"),
    ({"SECURITY_PROTOCOL": "TLS"}, "SASL_SSL"),
    ({"SSL_CAFILE": "/nonexistent/ca.pem", "SECURITY_PROTOCOL": "SSL"}, "no such file"),
    ({"SSL_CAFILE": certifi.where()}, "MARKETFLOW_KAFKA_SSL_CAFILE is set but"),
    ({"SECURITY_PROTOCOL": "SSL", "SSL_CERTFILE": certifi.where()}, "go together"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u",
      "SASL_PASSWORD": PASSWORD, "SASL_PASSWORD_FILE": certifi.where()}, "not both"),
])
def test_invalid_security_settings_name_the_variable(env: dict[str, str], message: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(f"MARKETFLOW_KAFKA_{name}", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert message in str(caught.value)


def test_invalid_security_settings_exit_2_without_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from marketflow.cli import app

    monkeypatch.setenv("MARKETFLOW_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("MARKETFLOW_KAFKA_SASL_PASSWORD", PASSWORD)
    result = CliRunner().invoke(app, ["topics"])
    assert result.exit_code == 2, result.output
    assert "MARKETFLOW_KAFKA_SASL_MECHANISM" in result.output
    assert PASSWORD not in result.output


# -- every place outside stream/ that builds a client passes the kwargs on ----------------


class Recorder:
    """Stands in for a client class: records its kwargs and refuses to go further."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Recorder.calls.append(kwargs)
        raise _Stop


class _Stop(Exception):
    pass


@pytest.fixture
def recorder() -> list[dict[str, Any]]:
    Recorder.calls = []
    return Recorder.calls


def assert_secured(kwargs: dict[str, Any], library: str) -> None:
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_plain_password"] == PASSWORD
    if library == "kafka-python":
        assert kwargs["ssl_cafile"] == certifi.where()
    else:
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_publisher_producer(recorder: list[dict[str, Any]],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    from marketflow.ingest.publisher import Publisher

    settings = sasl_ssl()
    monkeypatch.setattr(kafka, "KafkaProducer", Recorder)
    with pytest.raises(_Stop):
        Publisher(NO_BROKER, settings.topics,
                  client_config=client_kwargs(settings, "kafka-python"))
    assert_secured(recorder[0], "kafka-python")


@pytest.mark.parametrize("call", ["ensure_topics", "list_topics"])
def test_topic_admin(call: str, recorder: list[dict[str, Any]],
                     monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka.admin

    from marketflow.infra import topics

    monkeypatch.setattr(kafka.admin, "KafkaAdminClient", Recorder)
    with pytest.raises(_Stop):
        getattr(topics, call)(NO_BROKER, sasl_ssl())
    assert_secured(recorder[0], "kafka-python")


def test_notify_consumer_and_producer(recorder: list[dict[str, Any]],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka

    from marketflow.alerts.notify import Route, run_notify

    calls: list[tuple[str, dict[str, Any]]] = []

    class Client:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append((type(self).__name__, kwargs))

    class AIOKafkaConsumer(Client):
        pass

    class AIOKafkaProducer(Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            raise _Stop

    monkeypatch.setattr(aiokafka, "AIOKafkaConsumer", AIOKafkaConsumer)
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", AIOKafkaProducer)
    with pytest.raises(_Stop):
        asyncio.run(run_notify(NO_BROKER, "redis://127.0.0.1:9/0", sasl_ssl(), [],
                               Route("default", None), "g", once=True))
    assert [name for name, _ in calls] == ["AIOKafkaConsumer", "AIOKafkaProducer"]
    for _, kwargs in calls:
        assert_secured(kwargs, "aiokafka")
