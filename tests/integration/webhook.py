"""A local Slack webhook for the notifier's integration tests (outages, secrets), and its
fixture (`webhook`, in conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.test_notify import ID

# (status, headers, seconds to hold the request before answering), by request number (1-based)
Respond = Callable[[int], tuple[int, dict[str, str], float]]


class Webhook:
    """A local Slack webhook that answers as `respond` says, can go away (connections
    refused) and come back on the same port; records every request it received."""

    def __init__(self) -> None:
        self.respond: Respond = lambda n: (200, {}, 0.0)
        self.requests: list[tuple[float, int]] = []  # (monotonic arrival, status answered)
        self.accepted: list[str] = []  # alert ids of the 200s, in order
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}/services/T0/B0/outagesecret"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    number = len(outer.requests) + 1
                    status, headers, hold = outer.respond(number)
                    outer.requests.append((arrived, status))
                time.sleep(hold)
                if status == 200:
                    with outer.lock:
                        outer.accepted += alert_ids(json.loads(body))
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(b"ok" if status == 200 else b"unavailable")
                except OSError:  # the client died while we held the request
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """From now on connections are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def alert_ids(payload: dict[str, Any]) -> list[str]:
    ids = []
    for block in payload["blocks"]:
        text = json.dumps(block)
        if (block["type"] == "context" and "alert `" in text) or (
                block["type"] == "section" and "`" in text and "```" not in text):
            ids += ID.findall(text)
    return ids
