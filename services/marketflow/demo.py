"""`marketflow demo`: 24 November 2025 through the whole stack, then the day's summary.

Prints the market board's URL first, then starts (unless MARKETFLOW_KAFKA_BOOTSTRAP /
MARKETFLOW_REDIS_URL say otherwise) the embedded broker and Redis, the board
(`marketflow web`), the worker, the Slack notifier when a webhook is set, and the metrics
endpoint; replays the simulated day (live on the board); prints each alert as Redis
publishes it; ends with a summary read back from Redis and stops everything, or with
`--keep-running` leaves it all up, recorded for `marketflow stack down`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import typer

from marketflow.cli_support import connect, exit_on_error, load_settings, mask_url, scrub
from marketflow.settings import Settings


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`marketflow ARGS` in its own session, output appended to `log` (the child keeps its
    copy of the file descriptor; the parent's is closed once Popen returns)."""
    with log.open("ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "marketflow.cli", *args], env=env,
                                stdout=handle, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


class AlertPrinter(threading.Thread):
    """Prints each alert as it arrives on the Redis channel (the live path, not a copy)."""

    def __init__(self, redis_url: str, channel: str, console: Any) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.console = console
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            alert = orjson.loads(message["data"])
            colour = {"critical": "red", "warning": "yellow"}.get(alert["severity"], "cyan")
            self.console.print(f"[{colour}]ALERT[/] {alert['ts'][11:19]}  {alert['message']}")

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=2)
        self.pubsub.close()
        self.client.close()


def read_summary(redis_url: str, prefix: str) -> dict[str, Any]:
    """The day as the sinks hold it: Redis latest hashes and the alerts stream."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def hashes(pattern: str) -> dict[str, dict[str, str]]:
        keys = sorted(client.scan_iter(f"{prefix}{pattern}"))
        return {key.rsplit(":", 1)[-1]: client.hgetall(key) for key in keys}  # type: ignore[misc]

    def number(value: Any) -> float:
        return float(value)

    indices = {k: {"level": number(v["level"]), "change_pct": number(v["change_pct"])}
               for k, v in hashes("latest:index:*").items()}
    stocks = {k: {"name": v.get("name", ""), "last": number(v["last"]),
                  "change_pct": number(v["change_pct"]), "turnover_hkd": number(v["turnover_hkd"])}
              for k, v in hashes("latest:stock:*").items()}
    sectors = {k: {"gain_pct": number(v["gain_pct"]), "eq_gain_pct": number(v["eq_gain_pct"]),
                   "turnover_hkd": number(v["turnover_hkd"]),
                   "rolling_15m": number(v.get("rolling_15m", "nan"))}
               for k, v in hashes("latest:sector:*").items()}
    market_raw: dict[str, str] = client.hgetall(f"{prefix}latest:market")  # type: ignore[assignment]
    southbound = {k: {"buy_hkd": number(v["buy_hkd"]), "sell_hkd": number(v["sell_hkd"]),
                      "net_hkd": number(v["net_hkd"])}
                  for k, v in hashes("latest:southbound:*").items()}
    entries: Any = client.xrange(f"{prefix}alerts")
    alerts = [orjson.loads(fields["json"]) for _, fields in entries]
    client.close()
    return {
        "indices": indices, "stocks": stocks, "sectors": sectors,
        "market": {"turnover_hkd": number(market_raw.get("turnover_hkd", "0")),
                   "advancers": int(market_raw.get("advancers", "0")),
                   "decliners": int(market_raw.get("decliners", "0")),
                   "final": market_raw.get("final") == "1"},
        "southbound": southbound, "alerts": alerts,
    }


def print_summary(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="Indices")
    for column in ("index", "close", "change"):
        table.add_column(column, justify="right")
    for symbol, figures in summary["indices"].items():
        table.add_row(symbol, f"{figures['level']:,.2f}", f"{figures['change_pct']:+.2f}%")
    console.print(table)
    table = Table(title="Sectors by free-float cap weighted gain")
    for column in ("sector", "gain", "equal-weighted", "15m", "turnover HK$"):
        table.add_column(column, justify="right")
    ranked = sorted(summary["sectors"].items(), key=lambda kv: -kv[1]["gain_pct"])
    for name, figures in ranked:
        table.add_row(name, f"{figures['gain_pct']:+.2f}%", f"{figures['eq_gain_pct']:+.2f}%",
                      f"{figures['rolling_15m']:+.2f}%", f"{figures['turnover_hkd']:,.0f}")
    console.print(table)
    table = Table(title="Top movers")
    for column in ("stock", "name", "close", "change"):
        table.add_column(column, justify="right")
    movers = sorted(summary["stocks"].items(), key=lambda kv: -abs(kv[1]["change_pct"]))
    for symbol, figures in movers[:12]:
        table.add_row(symbol, figures["name"], f"{figures['last']:,.3f}",
                      f"{figures['change_pct']:+.2f}%")
    console.print(table)
    market, flows = summary["market"], summary["southbound"]
    console.print(f"Market turnover HK${market['turnover_hkd']:,.2f} "
                  f"({market['advancers']} up / {market['decliners']} down in the universe)")
    for channel in ("SH", "SZ", "total"):
        if channel in flows:
            f = flows[channel]
            console.print(f"Southbound {channel:5} buy HK${f['buy_hkd']:,.2f}  sell "
                          f"HK${f['sell_hkd']:,.2f}  net HK${f['net_hkd']:,.2f}")
    console.print(f"{len(summary['alerts'])} alert(s):")
    for alert in sorted(summary["alerts"], key=lambda a: a["ts"]):
        console.print(f"  {alert['ts'][11:19]}  [{alert['severity']}] {alert['message']}")


def run_demo(speed: float, trades: int | None, keep_running: bool,
             summary_json: Path | None, timeout: float, web_port: int | None = None) -> int:
    from rich.console import Console

    from marketflow.infra import procs as recorded
    from marketflow.infra.embedded import EmbeddedStack, Endpoints, free_port
    from marketflow.sim.commands import build_generator, publish

    console = Console()
    settings = load_settings()
    # the page first: open it now and watch the day unfold
    board_port = recorded.pick_port(web_port or settings.web_port, settings.web_host)
    board = recorded.board_url(settings.web_host, board_port)
    console.print(f"[bold]market board: {board}[/]  (open it now: it follows the replay live)",
                  soft_wrap=True)
    state = settings.state_dir.resolve() / "demo"
    state.mkdir(parents=True, exist_ok=True)
    stack = None
    if settings.kafka_bootstrap and settings.redis_url:
        endpoints = Endpoints(settings.kafka_bootstrap, settings.redis_url.get_secret_value(),
                              False)
    else:
        console.print("starting the embedded broker (tansu) and redis-server ...")
        with exit_on_error(settings):
            stack = EmbeddedStack.start(state, owned=not keep_running)
        endpoints = Endpoints(stack.bootstrap, stack.redis_url, True)
    try:
        prepared = connect(settings, need_redis=True, topics=True, endpoints=endpoints)
    except typer.Exit:
        if stack is not None:
            stack.stop()
        raise
    bootstrap, redis_url = prepared.bootstrap, prepared.redis_url
    assert redis_url is not None  # need_redis
    metrics_port = settings.metrics_port or free_port()
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=bootstrap, MARKETFLOW_REDIS_URL=redis_url,
               MARKETFLOW_APP_ID=f"marketflow-demo-{uuid.uuid4().hex[:6]}",
               MARKETFLOW_STATE_DIR=str(state))
    web = recorded.start_board(env, settings.web_host, board_port, state / "web.log")
    procs = [_spawn(["worker", "--web-port", str(free_port()), "--datadir",
                     str(state / "worker"), "--metrics-port", str(metrics_port)],
                    env, state / "worker.log"), web]
    if settings.slack_webhook_url is not None:
        procs.append(_spawn(["notify"], env, state / "notify.log"))
    if not recorded.wait_board(web, board):
        console.print(f"[yellow]the market board did not start[/] (see {state / 'web.log'}); "
                      "the replay goes on without it")
    printer = AlertPrinter(redis_url, f"{settings.redis_prefix}alerts", console)
    printer.start()
    console.print(f"worker started (metrics http://127.0.0.1:{metrics_port}/metrics, "
                  f"log {state / 'worker.log'}); replaying the day at "
                  f"{'full speed' if speed <= 0 else f'{speed:g}x'} ...")
    code = 0
    try:
        generator = build_generator("2025-11-24", trades, None, settings)
        summary = _replay(generator, bootstrap, settings, speed, console, publish)
        console.print(f"published {summary.sent:,} records in {summary.elapsed:.1f}s")
        result = _wait_for_close(redis_url, settings.redis_prefix, procs, timeout, console)
        print_summary(result, console)
        if summary_json is not None:
            summary_json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    except Exception as error:  # report, stop everything, exit 1
        console.print(f"[red]demo failed:[/] {scrub(str(error), settings)}  (logs in {state})")
        code = 1
    finally:
        printer.stop()
        if keep_running and code == 0:
            names = ("worker", "web", "notify")
            for name, proc in zip(names, procs, strict=False):
                if proc.poll() is None:
                    recorded.record(state, name, proc.pid,
                                    **({"url": board} if name == "web" else {}))
            console.print(f"left running: the market board {board}, kafka {bootstrap}, "
                          f"redis {mask_url(redis_url)}, worker pid {procs[0].pid}, board "
                          f"pid {web.pid}.\nStop everything with "
                          f"`MARKETFLOW_STATE_DIR={state} marketflow stack down`.",
                          soft_wrap=True)  # a command to copy: never wrapped
        else:
            for proc in procs:
                _stop(proc)
            if stack is not None:
                stack.stop()
            if code == 0:
                console.print("stopped; the board stopped with it (`--keep-running` keeps "
                              "the board, worker, broker and Redis up)")
    return code


def _replay(generator: Any, bootstrap: str, settings: Settings, speed: float, console: Any,
            publish: Any) -> Any:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    total = generator.trades + 20_500  # trades + index ticks + southbound, roughly
    with Progress(TextColumn("replaying"), BarColumn(), TextColumn("{task.completed:,} records"),
                  TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("replay", total=total)
        return publish(generator, bootstrap, settings.topics, speed, 50,
                       lambda n: progress.advance(task, n))


def _wait_for_close(redis_url: str, prefix: str, procs: list[Any], timeout: float,
                    console: Any) -> dict[str, Any]:
    """Until the worker has closed the day (final snapshots) and alerts have settled."""
    deadline = time.monotonic() + timeout
    previous: tuple[bool, int] | None = None
    while time.monotonic() < deadline:
        if procs[0].poll() is not None:
            raise RuntimeError(f"the worker exited with {procs[0].returncode}")
        summary = read_summary(redis_url, prefix)
        state = (summary["market"]["final"], len(summary["alerts"]))
        if state[0] and state == previous:
            return summary
        previous = state
        time.sleep(1.5)
    raise RuntimeError(f"the worker did not close the day within {timeout:.0f}s")


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        speed: float = typer.Option(400.0, help="Replay speed (x real time); 400 = the day "
                                                "in about a minute, 0 = as fast as possible."),
        trades: int | None = typer.Option(None, min=1000, help="Trade ticks (default 300k)."),
        keep_running: bool = typer.Option(False, help="Leave the stack and worker up."),
        summary_json: Path | None = typer.Option(None, help="Also write the summary here."),
        timeout: float = typer.Option(180.0, help="Seconds to wait for the day to close."),
        web_port: int | None = typer.Option(
            None, min=1, max=65535, help="The market board's port (default "
                                         "MARKETFLOW_WEB_PORT, 8050; a free one if taken)."),
    ) -> None:
        """Replay 24 Nov 2025 through broker, worker, alerts and sinks, live on the market
        board (its URL is printed first); print the summary."""
        raise typer.Exit(run_demo(speed, trades, keep_running, summary_json, timeout,
                                  web_port))
