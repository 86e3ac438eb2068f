"""The process's Kafka security, configured once from the settings, for the clients made
deep in the stream and alert code (which are handed only the bootstrap address).

`configure(settings)` is called when a command loads its settings (like logging
configuration); `client_options()` (aiokafka clients) and `faust_credentials()` then
describe the connection. The translation per library is `marketflow.kafka_clients`;
PLAINTEXT (the default, and the embedded broker) adds nothing that changes behaviour.
"""

from __future__ import annotations

from typing import Any

from marketflow.kafka_clients import client_kwargs
from marketflow.settings import Settings

_settings: Settings | None = None


def configure(settings: Settings) -> Settings:
    global _settings
    _settings = settings
    return settings


def client_options() -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer/Consumer."""
    return client_kwargs(_settings, "aiokafka") if _settings is not None else {}


def faust_credentials() -> Any:
    """`broker_credentials` of the Faust app (None for PLAINTEXT)."""
    if _settings is None:
        return None
    return client_kwargs(_settings, "faust").get("broker_credentials")
