"""Topic administration: every topic of SPEC.md, created idempotently at startup."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from marketflow.kafka_clients import client_kwargs
from marketflow.settings import Settings

WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    t = settings.topics
    retention = {"retention.ms": str(WEEK_MS)}
    compact = {"cleanup.policy": "compact"}
    return [
        TopicSpec(t.ticks, settings.ticks_partitions, retention),
        TopicSpec(t.southbound, 1, retention),
        TopicSpec(t.indices, 1, compact),
        TopicSpec(t.sectors, 1, compact),
        TopicSpec(t.stocks, 1, compact),
        TopicSpec(t.market, 1, compact),
        TopicSpec(t.alerts, 1, retention),
        TopicSpec(t.deadletter, 1, retention),
        TopicSpec(t.partials, 1, retention),
        TopicSpec(t.checkpoints, 1, retention),
    ]


class TopicMismatch(RuntimeError):
    """An existing topic whose partition count differs from what marketflow needs."""


def ensure_topics(bootstrap: str, settings: Settings) -> dict[str, str]:
    """Create what is missing; report what exists. Returns {topic: "created"|"exists"}."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                             **client_kwargs(settings, "kafka-python"))
    try:
        existing = describe(admin)
        outcome: dict[str, str] = {}
        missing = []
        for spec in topic_specs(settings):
            if spec.name in existing:
                if existing[spec.name] != spec.partitions:
                    raise TopicMismatch(
                        f"topic {spec.name} has {existing[spec.name]} partition(s), "
                        f"marketflow expects {spec.partitions}")
                outcome[spec.name] = "exists"
            else:
                missing.append(NewTopic(spec.name, spec.partitions, 1,
                                        topic_configs=spec.configs))
                outcome[spec.name] = "created"
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile: fine
                admin.create_topics(missing)
        return outcome
    finally:
        admin.close()


def describe(admin: Any) -> dict[str, int]:
    """{topic: partition count} of every topic on the broker."""
    out = {}
    for topic in admin.describe_topics():
        out[topic.get("name") or topic["topic"]] = len(topic["partitions"])
    return out


def list_topics(bootstrap: str, settings: Settings | None = None) -> dict[str, int]:
    from kafka.admin import KafkaAdminClient

    security = client_kwargs(settings, "kafka-python") if settings is not None else {}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                             **security)
    try:
        return describe(admin)
    finally:
        admin.close()


def wait_for_topic(bootstrap: str, settings: Settings, topic: str,
                   on_wait: Any = None) -> None:
    """Wait (up to MARKETFLOW_CONNECT_TIMEOUT_S) until `topic` exists. For a consumer that
    must not create it: aiokafka's metadata requests ask the broker to auto-create the
    topics a consumer subscribes to (with the broker's default partition count), which
    would make the worker's own creation fail with a partition mismatch."""
    from marketflow.infra.embedded import NotYet, StackError, wait_until

    def probe() -> None:
        if topic not in list_topics(bootstrap, settings):
            raise NotYet(f"topic {topic} does not exist yet")

    try:
        wait_until(probe, f"topic {topic} on {bootstrap}", settings.connect_timeout_s,
                   on_wait=on_wait)
    except StackError as error:
        raise TopicMissing(f"{error}; start the worker or run `marketflow topics --create` "
                           "first (notify creates no topic)") from None


class TopicMissing(RuntimeError):
    """A topic a command reads is not there (and the command must not create it)."""
