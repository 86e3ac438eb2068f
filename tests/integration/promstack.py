"""Real Prometheus and Alertmanager (Debian binaries) for tests, with the repository's own
configuration files rendered for loopback ports and short test timings, and a local HTTP
server standing in for Slack's incoming webhooks."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).parents[2] / "deploy"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, (f"{name} is required (Debian packages prometheus and "
                  "prometheus-alertmanager; .ci/run installs them)")
    return path


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


class FakeSlack:
    """Incoming-webhook stand-in: records every JSON body by path; the first `fail_first`
    posts to a path answer 500 (to exercise retries and the failure metrics)."""

    def __init__(self, fail_first: dict[str, int] | None = None) -> None:
        self.posts: dict[str, list[Any]] = {}
        self.fail_first = dict(fail_first or {})
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null")
                with owner.lock:
                    owner.posts.setdefault(self.path, []).append(payload)
                    failing = owner.fail_first.get(self.path, 0) > 0
                    if failing:
                        owner.fail_first[self.path] -= 1
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(b"error" if failing else b"ok")

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self, path: str) -> list[Any]:
        with self.lock:
            return list(self.posts.get(path, []))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Process:
    def __init__(self, args: list[str], log: Path, cwd: Path,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self.log = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
                                     env=env)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


def wait_ready(url: str, proc: Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise AssertionError(f"{proc.proc.args[0]} exited:\n{proc.text()}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s:\n{proc.text()}")


class Prometheus:
    """deploy/prometheus/prometheus.yml and its rules, targets pointed at `targets`
    (job -> host:port), scraping and evaluating every second."""

    def __init__(self, work: Path, targets: dict[str, str], alertmanager: str | None) -> None:
        config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        for job in config["scrape_configs"]:
            assert job["job_name"] in targets, f"no test target for job {job['job_name']}"
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        if alertmanager:
            config["alerting"]["alertmanagers"][0]["static_configs"] = [
                {"targets": [alertmanager]}]
        else:
            del config["alerting"]
        shutil.copytree(DEPLOY / "prometheus" / "rules", work / "rules")
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process([
            binary("prometheus"), "--config.file=prometheus.yml",
            f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--rules.alert.resend-delay=1s", "--log.level=warn",
        ], work / "prometheus.log", work)
        wait_ready(f"{self.url}/-/ready", self.process)

    def query(self, expr: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": expr})
        answer = http_json(f"{self.url}/api/v1/query?{params}")
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    def label_values(self, label: str, match: str) -> list[str]:
        params = urllib.parse.urlencode({"match[]": match})
        return http_json(f"{self.url}/api/v1/label/{label}/values?{params}")["data"]

    def stop(self) -> None:
        self.process.stop()


class Alertmanager:
    """deploy/alertmanager/alertmanager.yml with the Slack webhook file pointed at the fake
    Slack and the grouping waits shortened for a test; routes, receivers and inhibition as
    written."""

    def __init__(self, work: Path, slack_url: str) -> None:
        config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
        (work / "slack-webhook-url").write_text(slack_url)
        config["global"]["slack_api_url_file"] = str(work / "slack-webhook-url")
        stack = [config["route"]]
        while stack:
            route = stack.pop()
            for key, value in (("group_wait", "1s"), ("group_interval", "1s")):
                if key in route or route is config["route"]:
                    route[key] = value
            stack += route.get("routes", [])
        (work / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        self.process = Process([
            binary("prometheus-alertmanager"), "--config.file=alertmanager.yml",
            f"--storage.path={work / 'am-data'}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=", "--log.level=warn",
        ], work / "alertmanager.log", work)
        wait_ready(f"{self.url}/-/ready", self.process)

    def alerts(self) -> list[dict[str, Any]]:
        return http_json(f"{self.url}/api/v2/alerts")

    def push(self, alerts: list[dict[str, Any]]) -> None:
        http_json(f"{self.url}/api/v2/alerts", alerts)

    def stop(self) -> None:
        self.process.stop()
