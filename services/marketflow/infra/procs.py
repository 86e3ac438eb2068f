"""Processes left running beside the embedded stack (`marketflow web` started by
`stack up`, the worker and board `demo --keep-running` leaves), recorded in
`{state_dir}/stack/procs.json` so that `marketflow stack down` stops them too.

Also starts the board as a detached process and waits until it answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from marketflow.infra.embedded import pid_alive

PROCS_FILE = "procs.json"


def _path(state_dir: Path) -> Path:
    return Path(state_dir) / "stack" / PROCS_FILE


def recorded(state_dir: Path) -> list[dict[str, Any]]:
    """Recorded processes still alive: `{name, pid, ...}`."""
    try:
        entries = json.loads(_path(state_dir).read_text())
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict) and pid_alive(int(e.get("pid", 0)))]


def record(state_dir: Path, name: str, pid: int, **info: Any) -> None:
    path = _path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [e for e in recorded(state_dir) if e.get("pid") != pid]
    entries.append({"name": name, "pid": pid, **info})
    path.write_text(json.dumps(entries, indent=2))


def stop_recorded(state_dir: Path, grace: float = 10.0) -> list[str]:
    """SIGTERM each recorded process group, SIGKILL after `grace`; their names."""
    entries = recorded(state_dir)
    for entry in entries:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(entry["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + grace
    for entry in entries:
        pid = int(entry["pid"])
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    _path(state_dir).unlink(missing_ok=True)
    return [str(e["name"]) for e in entries]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, host: str = "127.0.0.1") -> int:
    """`preferred` if nothing listens there, else a free port."""
    if port_free(preferred, host):
        return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def board_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104
    return f"http://{shown}:{port}/"


def start_board(env: dict[str, str], host: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """`marketflow web` in its own session (it outlives its parent), output to `log`."""
    env = dict(env, MARKETFLOW_WEB_HOST=host, MARKETFLOW_WEB_PORT=str(port))
    with log.open("ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "marketflow.cli", "web"], env=env,
                                stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)


def wait_board(proc: subprocess.Popen[bytes], url: str, timeout: float = 20.0) -> bool:
    """True once `url`/healthz answers; False if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False
