"""The embedded stack against itself: it answers, stops cleanly and leaves no process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis
from kafka.admin import KafkaAdminClient

from marketflow.infra.embedded import EmbeddedStack, StackError, pid_alive, read_stack
from marketflow.infra.topics import ensure_topics, list_topics
from marketflow.settings import Settings, Topics

pytestmark = pytest.mark.integration


def test_start_answer_stop(tmp_path: Path) -> None:
    stack = EmbeddedStack.start(tmp_path, owned=True)
    try:
        assert redis.Redis.from_url(stack.redis_url).ping()
        admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
        admin.list_topics()
        admin.close()
        assert read_stack(tmp_path) is not None
        with pytest.raises(StackError, match="already running"):
            EmbeddedStack.start(tmp_path, owned=True)
    finally:
        stack.stop()
    assert not pid_alive(stack.info.tansu_pid) and not pid_alive(stack.info.redis_pid)
    assert read_stack(tmp_path) is None


def test_ensure_topics_is_idempotent(stack: object, tmp_path: Path) -> None:
    tag = os.urandom(4).hex()
    topics = Topics(**{f: f"t{tag}.{f}" for f in Topics.model_fields})
    settings = Settings(state_dir=tmp_path, topics=topics, ticks_partitions=4)
    first = ensure_topics(stack.bootstrap, settings)  # type: ignore[attr-defined]
    again = ensure_topics(stack.bootstrap, settings)  # type: ignore[attr-defined]
    assert set(first.values()) == {"created"} and set(again.values()) == {"exists"}
    existing = list_topics(stack.bootstrap)  # type: ignore[attr-defined]
    assert existing[topics.ticks] == 4 and existing[topics.alerts] == 1
