"""The market board in a real browser (headless Chromium driven by Playwright) over the
whole stack: broker, worker, Redis, `marketflow web`.

The demo day (3,000 trades) is replayed in two halves. After the morning the page is
opened: it shows the day's index lines so far and no HSTECH alert. The afternoon then
arrives while the page is open (no reload): the HSTECH +2% alert appears with its
evidence, the southbound line passes the HK$8bn line, AI leads the sector chart, the index
lines reach the close. The server is restarted and the page reconnects by itself and
receives the next alert. Screenshots at laptop and wall sizes are saved under
`test-output/web/` (or `$MARKETFLOW_TEST_OUTPUT/web/`).

In CI (`CI=true`) the test fails when no browser starts; elsewhere it is skipped then.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import (
    Worker,
    demo_day,
    demo_env,
    unique_topics,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SPLIT = "2025-11-24T14:00:00+08:00"  # before the HSTECH alert (14:35) and southbound's (15:46)
OUTPUT = Path(os.environ.get("MARKETFLOW_TEST_OUTPUT",
                             Path(__file__).parents[2] / "test-output")) / "web"
LAPTOP = {"width": 1440, "height": 900}
WALL = {"width": 1920, "height": 1080}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chromium_path() -> str:
    return (os.environ.get("MARKETFLOW_CHROMIUM") or shutil.which("chromium")
            or "/usr/bin/chromium")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        if os.environ.get("CI"):
            pytest.fail(f"playwright is not installed (the dev extra): {error}")
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    try:
        browser = playwright.chromium.launch(executable_path=chromium_path(),
                                             args=["--no-sandbox"])
    except Exception as error:
        if os.environ.get("CI"):
            pytest.fail(f"no browser started ({chromium_path()}): {error}")
        pytest.skip(f"no headless Chromium here ({error}); apt-get install chromium")
    try:
        yield browser
    finally:
        browser.close()


class WebServer:
    """`marketflow web` on a given port, output to a log file."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "marketflow.cli", "web", "--port", str(port),
             "--poll", "0.3"], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(self.answers, 20, "marketflow web to answer", interval=0.2)

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"marketflow web exited with {self.proc.returncode}")
        try:
            return urllib.request.urlopen(self.url + "healthz", timeout=1).status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        self.log.close()


def latest_ts(redis_url: str, key: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return (client.hget(key, "ts") or b"").decode()
    finally:
        client.close()


def test_the_day_unfolds_on_the_page(stack: Any, browser: Any, tmp_path: Path) -> None:
    from marketflow.alerts.history import ts_ms_of

    OUTPUT.mkdir(parents=True, exist_ok=True)
    records = demo_day()
    split_ms = ts_ms_of(SPLIT)
    morning = [(k, r) for k, r in records if r["ts"] < split_ms]
    afternoon = [(k, r) for k, r in records if r["ts"] >= split_ms]
    topics = unique_topics(stack.bootstrap, "page")
    app_id = f"page-{uuid.uuid4().hex[:8]}"
    prefix = f"{app_id}:"
    env = demo_env(stack.bootstrap, stack.redis_url, topics, app_id)
    worker = Worker(env, tmp_path, "worker", free_port())
    port = free_port()
    server = WebServer(env, port, tmp_path / "web.log")
    page = None
    try:
        time.sleep(4)  # let the worker's group form
        publish_records_paced(stack.bootstrap, topics, morning, speed=3000)
        wait_for(lambda: latest_ts(stack.redis_url, f"{prefix}latest:index:HSTECH") >=
                 "2025-11-24T13:59", 60, "the morning in Redis")

        page = browser.new_page(viewport=LAPTOP)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url)
        page.wait_for_function("document.body.dataset.ready === '1'", timeout=20_000)
        page.wait_for_selector("#conn[data-state=live]", timeout=10_000)
        page.evaluate("window.__sameDocument = true")
        morning_lines = page.evaluate("board.series('index:HSTECH')")
        assert len(morning_lines) > 20
        assert morning_lines[0]["ts"] < "2025-11-24T10" < "2025-11-24T13:5" < \
            morning_lines[-1]["ts"]
        assert page.locator('#alerts li[data-rule="index-up-2pct"]').count() == 0
        page.screenshot(path=str(OUTPUT / "laptop-morning.png"), full_page=True)

        # the afternoon arrives while the page is open
        publish_records_paced(stack.bootstrap, topics, afternoon, speed=1500)
        hstech_alert = page.locator('#alerts li[data-rule="index-up-2pct"][data-subject="HSTECH"]')
        hstech_alert.wait_for(timeout=30_000)
        page.wait_for_function(
            "board.series('index:HSTECH').at(-1)?.ts >= '2025-11-24T16:0'", timeout=30_000)
        page.wait_for_selector('#alerts li[data-rule="southbound-net-inflow-8bn"]',
                               timeout=30_000)
        assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
        alert_text = hstech_alert.inner_text()
        assert "Hang Seng TECH" in alert_text and "≥ threshold +2.00%" in alert_text
        assert "vs prev close" in alert_text  # its evidence
        assert page.evaluate("board.sectorRanking()")[0] == "AI"
        net = page.evaluate("board.series('southbound:total').map(p => p.net_hkd)")
        assert min(net) < 8e9 < max(net)
        assert "HK$8.57bn" in page.locator('#southbound-tiles [data-channel="total"]').inner_text()
        assert "+2.78%" in page.locator('#index-tiles [data-index="HSTECH"]').inner_text()
        for name in ("index:HSI", "index:HSTECH"):
            line = page.evaluate(f"board.series('{name}')")
            assert line[0]["ts"] < "2025-11-24T10" and line[-1]["ts"] >= "2025-11-24T16"
        assert page.locator("#index-chart canvas").count() == 1
        assert page.locator("#southbound-chart canvas").count() == 1
        # the window selector re-ranks the sectors by the rolling gain
        page.click('#window-buttons button[data-window="15m"]')
        page.wait_for_function("document.querySelector('#sector-caption').textContent"
                               ".includes('15m')")
        api = page.evaluate("fetch('/api/sectors?window=15m').then(r => r.json())")
        assert page.evaluate("board.sectorRanking()") == [r["subject"] for r in api["ranking"]]
        page.click('#window-buttons button[data-window="day"]')
        page.wait_for_selector('#alerts li[data-rule="market-turnover-300bn"]', timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(OUTPUT / "laptop.png"), full_page=True)
        hstech_alert.screenshot(path=str(OUTPUT / "alert-hstech.png"))

        # a server restart: the page reconnects by itself and gets the next alert
        server.stop()
        page.wait_for_selector("#conn:not([data-state=live])", timeout=10_000)
        server = WebServer(env, port, tmp_path / "web.log")
        page.wait_for_selector("#conn[data-state=live]", timeout=20_000)
        publish_alert(stack.redis_url, prefix)
        page.locator('#alerts li[data-rule="web-test-restart"]').wait_for(timeout=10_000)
        assert page.evaluate("window.__sameDocument") is True
        assert not errors, errors

        wall = browser.new_page(viewport=WALL)
        wall.goto(server.url + "?wall")
        wall.wait_for_function("document.body.dataset.ready === '1'", timeout=20_000)
        wall.wait_for_timeout(500)
        assert wall.evaluate("document.body.classList.contains('wall')")
        assert wall.evaluate("document.documentElement.scrollHeight <= innerHeight + 2"), \
            "the wall board fits one screen"
        wall.screenshot(path=str(OUTPUT / "wall.png"))
        wall.close()
    finally:
        if page is not None:
            page.close()
        server.stop()
        worker.stop()


def publish_records_paced(bootstrap: str, topics: dict[str, str],
                          records: list[tuple[str, dict[str, Any]]], speed: float) -> None:
    """As `publish_records`, paced at `speed` x real time (event time), so the worker
    snapshots the day as it would live and the page's lines are drawn point by point."""
    from marketflow.ingest.publisher import Publisher
    from marketflow.settings import Topics

    publisher = Publisher(bootstrap, Topics(**topics), batch=50, speed=speed)
    try:
        items = ((kind, n, "", record) for n, (kind, record) in enumerate(records, start=1))
        publisher.publish_mixed(items, "demo day")  # type: ignore[arg-type]
    finally:
        publisher.close()


def publish_alert(redis_url: str, prefix: str) -> None:
    """An alert as the worker writes one (stream + channel), after the restart."""
    import redis.asyncio as aioredis

    from marketflow.alerts.redis_sink import RedisAlertSink

    alert = {"alert_id": uuid.uuid4().hex[:16], "rule_id": "web-test-restart",
             "subject": "HSI", "metric": "index.change_pct", "window": "day", "op": ">=",
             "threshold": 1.0, "value": 1.97, "ts": "2025-11-24T16:09:00.000+08:00",
             "trading_date": "2025-11-24", "severity": "warning",
             "message": "HSI +1.97% (published after the server restart)",
             "evidence": {"name": "Hang Seng Index", "level": 25716.5, "prev_close": 25220.02,
                          "change_points": 496.48},
             "emitted_at": "2025-11-24T16:09:00.100+08:00"}

    async def send() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await RedisAlertSink(client, prefix).publish_many([alert])
        finally:
            await client.aclose()

    # Playwright's sync API runs an event loop in this thread: use another one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, send()).result(timeout=10)
