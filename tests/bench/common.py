"""What the benchmark parts share: the embedded stack's environment, worker processes,
polling /metrics, CPU readings and percentiles."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from marketflow.infra.embedded import EmbeddedStack
from marketflow.settings import PACKAGE_DATA

ROOT = Path(__file__).parents[2]
UNIVERSE, INDICES = PACKAGE_DATA / "universe.csv", PACKAGE_DATA / "indices.csv"
PARTITIONS = 8


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def topics_env(prefix: str) -> dict[str, str]:
    fields = ("ticks", "southbound", "indices", "sectors", "stocks", "market", "alerts",
              "deadletter", "partials", "checkpoints")
    return {f"MARKETFLOW_TOPIC_{f.upper()}": f"{prefix}.{f}" for f in fields}


def base_env(stack: EmbeddedStack, prefix: str, state: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
               MARKETFLOW_REDIS_URL=stack.redis_url, MARKETFLOW_APP_ID=f"bench-{prefix}",
               MARKETFLOW_REDIS_PREFIX=f"{prefix}:", MARKETFLOW_STATE_DIR=str(state),
               **topics_env(prefix))
    env.update(extra)
    return env


def ensure(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "marketflow.cli", "topics", "--create"], env=env,
                   check=True, capture_output=True)


class WorkerProc:
    def __init__(self, env: dict[str, str], state: Path, name: str) -> None:
        self.metrics_port = free_port()
        self.log_path = state / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marketflow.cli", "worker", "--web-port", str(free_port()),
             "--datadir", str(state / name), "--metrics-port", str(self.metrics_port),
             "--loglevel", "warning"],
            env=env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)

    def ticks(self) -> float:
        import urllib.request

        try:
            body = urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1).read().decode()
        except OSError:
            return -1.0
        total = 0.0  # counted per md.ticks partition: the sum over labels
        for line in body.splitlines():
            if line.startswith(("marketflow_ticks_total ", "marketflow_ticks_total{")):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def rss_mb(self) -> float:
        import psutil

        try:
            return psutil.Process(self.proc.pid).memory_info().rss / 2**20
        except psutil.Error:
            return 0.0

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    import psutil

    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def wait_ticks(worker: WorkerProc, expected: int, timeout: float,
               rss: list[float] | None = None,
               cpu: dict[str, tuple[int, list[float]]] | None = None) -> tuple[float, float]:
    """Poll /metrics until the worker has applied `expected` ticks: (start, end) times.
    `cpu` maps a name to (pid, []): the process's CPU seconds at start and end go in."""
    start = end = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited; see {worker.log_path}")
        seen = worker.ticks()
        now = time.perf_counter()
        if rss is not None:
            rss.append(worker.rss_mb())
        if seen > 0 and start is None:
            start = now
            for pid, marks in (cpu or {}).values():
                marks.append(cpu_seconds(pid))
        if seen >= expected:
            end = now
            for pid, marks in (cpu or {}).values():
                marks.append(cpu_seconds(pid))
            break
        # every scrape costs the worker CPU: poll often only around the start and the end
        time.sleep(0.02 if start is None or seen >= 0.9 * expected else 0.25)
    if start is None or end is None:
        raise RuntimeError(f"worker did not apply {expected} ticks in {timeout}s")
    return start, end


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"count": len(ordered), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "p999_ms": pick(0.999), "max_ms": ordered[-1] * 1000}


