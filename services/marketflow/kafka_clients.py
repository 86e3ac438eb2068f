"""Kafka security for every client, from Settings, in each library's own words.

    KafkaProducer(bootstrap_servers=b, **client_kwargs(settings, "kafka-python"))
    AIOKafkaConsumer(topic, bootstrap_servers=b, **client_kwargs(settings, "aiokafka"))
    faust.App(app_id, broker=f"kafka://{b}", **client_kwargs(settings, "faust"))

The settings (`MARKETFLOW_KAFKA_SECURITY_PROTOCOL`, `..._SASL_MECHANISM`,
`..._SASL_USERNAME`, `..._SASL_PASSWORD` or `..._SASL_PASSWORD_FILE`, `..._SSL_CAFILE`,
`..._SSL_CERTFILE`, `..._SSL_KEYFILE`, `..._SSL_CHECK_HOSTNAME`) are checked once in
`Settings`; this module only translates them. kafka-python takes file paths, aiokafka an
`ssl.SSLContext`, Faust a `broker_credentials` object (which its aiokafka driver turns back
into the aiokafka arguments). The SASL password leaves its `SecretStr` only here.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from marketflow.settings import Settings

Library = Literal["kafka-python", "aiokafka", "faust"]


def client_kwargs(settings: Settings, library: Library) -> dict[str, Any]:
    """Keyword arguments carrying the security settings to a client of `library`.

    PLAINTEXT gives `{"security_protocol": "PLAINTEXT"}` (`{}` for Faust), so the result
    can always be splatted into the constructor."""
    protocol = settings.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    tls = protocol.endswith("SSL")
    password = (settings.kafka_sasl_password.get_secret_value()
                if settings.kafka_sasl_password is not None else None)
    if library == "kafka-python":
        out: dict[str, Any] = {"security_protocol": protocol}
        if sasl:
            out |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": password}
        if tls:
            out |= {"ssl_check_hostname": settings.kafka_ssl_check_hostname,
                    "ssl_cafile": _str(settings.kafka_ssl_cafile),
                    "ssl_certfile": _str(settings.kafka_ssl_certfile),
                    "ssl_keyfile": _str(settings.kafka_ssl_keyfile)}
        return out
    context = ssl_context(settings) if tls else None
    if library == "aiokafka":
        out = {"security_protocol": protocol}
        if sasl:
            out |= {"sasl_mechanism": settings.kafka_sasl_mechanism,
                    "sasl_plain_username": settings.kafka_sasl_username,
                    "sasl_plain_password": password}
        if context is not None:
            out["ssl_context"] = context
        return out
    if library == "faust":
        from faust.auth import SASLCredentials, SSLCredentials

        if sasl:
            # with an ssl_context Faust says SASL_SSL, without it SASL_PLAINTEXT
            return {"broker_credentials": SASLCredentials(
                username=settings.kafka_sasl_username, password=password,
                mechanism=settings.kafka_sasl_mechanism, ssl_context=context)}
        if context is not None:
            return {"broker_credentials": SSLCredentials(context)}
        return {}
    raise ValueError(f"unknown Kafka client library: {library!r}")


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context: the system's CAs, or MARKETFLOW_KAFKA_SSL_CAFILE; a client
    certificate when MARKETFLOW_KAFKA_SSL_CERTFILE/KEYFILE are set."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=_str(settings.kafka_ssl_cafile))
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                _str(settings.kafka_ssl_keyfile))
    if not settings.kafka_ssl_check_hostname:
        context.check_hostname = False
    return context


def _str(value: object) -> str | None:
    return None if value is None else str(value)
