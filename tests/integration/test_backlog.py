"""A backlog fed the plain way: a simulated day of the default universe written as JSON
lines in loose forms (RFC 3339 and epoch-ms times mixed, `"0700.HK"` / `"HK.00700"`
symbols, some explicit turnovers), published with `marketflow produce ticks FILE --speed 0
--batch 1` (one tick per Kafka record) BEFORE the worker starts. The worker must work
through it and end with Redis and `mf.alerts` equal to `marketflow backtest` on the file.

The size is the smallest found to reproduce the stall this guards against (a worker that
took the md.ticks partitions one after another and whose frame partials agent hung); see
`BACKLOG_TICKS`. `MARKETFLOW_TEST_BACKLOG_TICKS` overrides it for experiments.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from marketflow.backtest import run_backtest
from marketflow.core.refdata import ReferenceData
from marketflow.core.timeutil import HKT
from marketflow.settings import PACKAGE_DATA
from marketflow.sim.generate import Generator
from marketflow.sim.scenario import load_scenario
from tests.integration.harness import Worker, read_topic, unique_topics, worker_env
from tests.integration.test_worker import free_port

BACKLOG_TICKS = int(os.environ.get("MARKETFLOW_TEST_BACKLOG_TICKS", "200000"))
UNIVERSE, INDICES, RULES = (PACKAGE_DATA / "universe.csv", PACKAGE_DATA / "indices.csv",
                            PACKAGE_DATA / "rules.yaml")
WAIT_S = 240  # for the worker to be done, once the backlog is in md.ticks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]


def loosen(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One simulated tick in one of the forms feeds send (the same tick once parsed)."""
    out = dict(record)
    symbol = record["symbol"]
    if symbol.isdigit():
        out["symbol"] = rng.choice((symbol, f"{int(symbol):04d}.HK", f"HK.{symbol}"))
    ts = record["ts"]
    form = rng.randrange(3)
    if form == 1:  # RFC 3339 in Hong Kong time
        out["ts"] = dt.datetime.fromtimestamp(ts / 1000, HKT).isoformat(timespec="milliseconds")
    elif form == 2:  # RFC 3339 in UTC with Z
        stamp = dt.datetime.fromtimestamp(ts / 1000, dt.UTC).isoformat(timespec="milliseconds")
        out["ts"] = stamp.replace("+00:00", "Z")
    if record["kind"] == "trade" and "turnover" not in record and rng.random() < 0.2:
        # an explicit turnover, truncated to the cent (the implicit one rounds half-even)
        milli = round(record["price"] * 1000)
        out["turnover"] = milli * record["qty"] // 10 / 100
    return out


def write_loose_day(path: Path, trades: int, seed: int = 7) -> int:
    """The 2025-11-24 scenario's ticks (default universe, HSI and HSTECH index ticks, a
    few non-universe symbols) in event-time order, loosened with a seeded RNG."""
    generator = Generator(load_scenario("2025-11-24"), ReferenceData.load(UNIVERSE, INDICES),
                          trades=trades)
    rng = random.Random(seed)
    count = 0
    with path.open("wb") as out:
        for kind, record in generator.records():
            if kind == "ticks":
                out.write(orjson.dumps(loosen(record, rng)) + b"\n")
                count += 1
    return count


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def redis_differences(client: Any, prefix: str, expected: dict[str, Any]) -> list[str]:
    """What the `latest:*` hashes and the alert stream hold that backtest does not (empty
    when they agree)."""
    final = expected["final"]
    wanted: dict[str, dict[str, float]] = {}
    for symbol, figures in final["indices"].items():
        wanted[f"{prefix}latest:index:{symbol}"] = figures
    for symbol, figures in final["stocks"].items():
        wanted[f"{prefix}latest:stock:{symbol}"] = figures
    for name, figures in final["sectors"].items():
        flat = {k: v for k, v in figures.items() if k != "rolling"}
        flat.update({f"rolling_{w}": g for w, g in figures["rolling"].items()})
        wanted[f"{prefix}latest:sector:{name}"] = flat
    wanted[f"{prefix}latest:market"] = final["market"]
    out = []
    pipe = client.pipeline(transaction=False)
    for key in wanted:
        pipe.hgetall(key)
    for (key, figures), stored in zip(wanted.items(), pipe.execute(), strict=True):
        for field, value in figures.items():
            got = stored.get(field.encode())
            if got is None or not close(float(got), float(value)):
                out.append(f"{key} {field}: redis {got and got.decode()} != backtest {value}")
    ids = sorted(e[1][b"alert_id"].decode() for e in client.xrange(f"{prefix}alerts"))
    want = sorted(a["alert_id"] for a in expected["alerts"])
    if ids != want:
        out.append(f"alert stream: {len(ids)} entries, backtest {len(want)} alerts "
                   f"(missing {len(set(want) - set(ids))}, extra {len(set(ids) - set(want))})")
    return out


def test_plain_backlog_one_tick_per_record(stack: Any, tmp_path: Path,
                                           redis_client: Any) -> None:
    ticks_file = tmp_path / "ticks.jsonl"
    count = write_loose_day(ticks_file, BACKLOG_TICKS)
    expected = run_backtest(UNIVERSE, INDICES, RULES, ticks_file)
    assert expected["rejected"] == {} and expected["alerts"]

    topics = unique_topics(stack.bootstrap, "backlog")
    app_id = f"mf-backlog-{topics['ticks']}"
    env = worker_env(stack.bootstrap, stack.redis_url, topics, app_id,
                     MARKETFLOW_UNIVERSE=str(UNIVERSE), MARKETFLOW_INDICES=str(INDICES),
                     MARKETFLOW_RULES=str(RULES))
    started = time.monotonic()
    produced = subprocess.run(  # the real producer, one tick per record, flat out
        [sys.executable, "-m", "marketflow.cli", "produce", "ticks", str(ticks_file),
         "--speed", "0", "--batch", "1", "--quiet"],
        env=env, capture_output=True, text=True, timeout=300)
    assert produced.returncode == 0, produced.stderr
    assert f"sent {count:,} ticks in {count:,} message(s); rejected 0" in produced.stderr, (
        produced.stderr)
    published = time.monotonic()

    worker = Worker(env, tmp_path, "w0", free_port())
    prefix = f"{app_id}:"
    try:
        differences: list[str] = ["not polled yet"]
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if worker.proc.poll() is not None:
                raise AssertionError(f"worker exited early:\n{worker.text()[-3000:]}")
            differences = redis_differences(redis_client, prefix, expected)
            if not differences:
                break
            time.sleep(1.0)
        done = time.monotonic()
        print(f"\n{count:,} ticks: produced in {published - started:.1f}s, worker done in "
              f"{done - published:.1f}s ({count / (done - published):,.0f} ticks/s)")
        assert not differences, (
            f"after {WAIT_S}s Redis does not hold the backtest figures of {count:,} ticks "
            f"({len(differences)} difference(s)):\n" + "\n".join(differences[:40])
            + f"\n--- worker log (tail) ---\n{worker.text()[-4000:]}")

        # each alert exactly once in mf.alerts, as backtest fires it
        alerts = [a for _, a in asyncio.run(read_topic(stack.bootstrap, topics["alerts"],
                                                       idle_s=0.5))]
        ids = [a["alert_id"] for a in alerts]
        assert len(ids) == len(set(ids)), "an alert was emitted twice to mf.alerts"
        assert sorted(ids) == sorted(a["alert_id"] for a in expected["alerts"])
        by_id = {a["alert_id"]: a for a in expected["alerts"]}
        for alert in alerts:
            assert {k: v for k, v in alert.items() if k != "emitted_at"} == by_id[
                alert["alert_id"]]
        stream = [e[1][b"alert_id"].decode() for e in redis_client.xrange(f"{prefix}alerts")]
        assert len(stream) == len(set(stream)), "an alert was appended twice to Redis"
    finally:
        worker.stop()
