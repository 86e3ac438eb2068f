"""Kafka client security (TLS, SASL/SCRAM) from the settings, for every client the
process makes: aiokafka, kafka-python and Faust take the same options.

`configure(settings)` is called once when a command loads its settings (like logging
configuration: the clients are created deep in the stream and alert code, which is handed
only the bootstrap address); `client_options()` and `faust_credentials()` then describe
the connection. PLAINTEXT (the default, and the embedded tansu broker) adds nothing.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = None
    cafile: Path | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> KafkaSecurity:
        secret = settings.kafka_sasl_password
        return cls(settings.kafka_security_protocol, settings.kafka_sasl_mechanism,
                   settings.kafka_sasl_username,
                   secret.get_secret_value() if secret is not None else None,
                   settings.kafka_ssl_cafile)

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.cafile) if self.cafile is not None else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer/Consumer and kafka-python's clients."""
        if self.protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password)
        return options

    def faust_credentials(self) -> Any:
        """`broker_credentials` of the Faust app (None for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return None
        import faust

        if self.sasl:
            return faust.SASLCredentials(username=self.username, password=self.password,
                                         mechanism=self.mechanism,
                                         ssl_context=self.ssl_context())
        return faust.SSLCredentials(self.ssl_context())


_current = KafkaSecurity()


def configure(settings: Any) -> KafkaSecurity:
    global _current
    _current = KafkaSecurity.from_settings(settings)
    return _current


def client_options() -> dict[str, Any]:
    return _current.client_options()


def faust_credentials() -> Any:
    return _current.faust_credentials()
