"""The board started by the commands people run: `marketflow demo` prints its URL first and
keeps it live through the replay, `--keep-running` leaves everything up and `stack down`
stops it all; `marketflow stack up` starts a board too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from marketflow.infra import procs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def env_for(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETFLOW_")}
    env.update(MARKETFLOW_STATE_DIR=str(state), MARKETFLOW_METRICS_PORT="0")
    return env


def marketflow(*args: str, env: dict[str, str], timeout: float = 60) -> Any:
    return subprocess.run([sys.executable, "-m", "marketflow.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def answers(url: str) -> bool:
    try:
        return bool(get_json(url + "healthz")["ok"])
    except OSError:
        return False


def test_demo_board_first_live_and_kept_running(tmp_path: Path) -> None:
    env = env_for(tmp_path / "state")
    port = procs.pick_port(18000 + os.getpid() % 2000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketflow.cli", "demo", "--trades", "3000", "--speed", "3000",
         "--keep-running", "--web-port", str(port)], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    demo_state = tmp_path / "state" / "demo"
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/"
        assert first.startswith(f"market board: {url}"), first
        lines = [first]
        while "replaying the day" not in re.sub(r"\s+", " ", "".join(lines[-3:])):  # wrapped
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        # live through the replay: the board's data time moves while the day is replayed
        seen = set()
        deadline = time.monotonic() + 60
        while len(seen) < 3 and time.monotonic() < deadline and proc.poll() is None:
            data_ts = get_json(url + "api/status")["data_ts"]
            if data_ts:
                seen.add(data_ts)
            time.sleep(0.5)
        assert len(seen) >= 3, f"the board did not follow the replay: {seen}"
        out, _ = proc.communicate(timeout=150)
        lines.append(out)
        assert proc.returncode == 0, "".join(lines)[-3000:]
        text = re.sub(r"\s+", " ", "".join(lines))
        assert f"MARKETFLOW_STATE_DIR={demo_state} marketflow stack down" in text
        board = get_json(url + "api/board")  # still up after the demo exited
        assert board["market"]["final"] is True
        assert {e["name"] for e in procs.recorded(demo_state)} == {"worker", "web"}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        down = marketflow("stack", "down", env=env_for(demo_state))
    assert down.returncode == 0 and "stopped worker, web" in down.stdout, down.stdout
    assert not answers(f"http://127.0.0.1:{port}/")
    assert procs.recorded(demo_state) == []


def test_stack_up_starts_a_board(tmp_path: Path) -> None:
    env = env_for(tmp_path / "state")
    port = procs.pick_port(20000 + os.getpid() % 2000)
    try:
        up = marketflow("stack", "up", "--web-port", str(port), env=env)
        assert up.returncode == 0, up.stderr
        url = f"http://127.0.0.1:{port}/"
        assert f"market board {url}" in up.stdout
        assert answers(url)
        status = marketflow("stack", "status", env=env)
        assert status.returncode == 0 and url in status.stdout
    finally:
        down = marketflow("stack", "down", env=env)
    assert down.returncode == 0 and "stopped web" in down.stdout
    assert not answers(url)
    assert marketflow("stack", "status", env=env).returncode == 1
