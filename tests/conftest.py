"""Session fixtures: a real Kafka-protocol broker (tansu) and a real redis-server.

Both are started once per test session through the same module as `marketflow stack up`
(owned: they die with the test process), or taken from MARKETFLOW_KAFKA_BOOTSTRAP /
MARKETFLOW_REDIS_URL when those are set. A test that needs them and cannot reach them
fails; nothing is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests of a compiled build older than its source would test the old code."""
    from marketflow import native

    stale = native.stale()
    if stale:
        pytest.exit(f"compiled modules older than their source: {', '.join(stale)}; "
                    "run `make compile` (or MARKETFLOW_INTERPRETED=1 to test the source)",
                    returncode=3)


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    redis_url: str


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    bootstrap = os.environ.get("MARKETFLOW_KAFKA_BOOTSTRAP")
    redis_url = os.environ.get("MARKETFLOW_REDIS_URL")
    if bootstrap and redis_url:
        yield Stack(bootstrap, redis_url)
        return
    from marketflow.infra.embedded import EmbeddedStack

    state = Path(tmp_path_factory.mktemp("stack"))
    embedded = EmbeddedStack.start(state, owned=True)
    try:
        yield Stack(bootstrap or embedded.bootstrap, redis_url or embedded.redis_url)
    finally:
        embedded.stop()


@pytest.fixture
def redis_client(stack: Stack) -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _restore_output_hooks() -> Iterator[None]:
    """Commands run in-process (CliRunner) install secret masking on logging and the
    excepthooks (marketflow.cli_support.protect_output); each test starts without it."""
    import logging
    import sys
    import threading

    saved = (logging.getLogRecordFactory(), sys.excepthook, threading.excepthook)
    yield
    logging.setLogRecordFactory(saved[0])
    sys.excepthook, threading.excepthook = saved[1], saved[2]
    from marketflow import cli_support

    cli_support._protected.clear()
    cli_support._EXTRA_SECRETS.clear()
