"""kill -9 at random points of a rough replay (ticks out of order within a frame,
duplicated seqs, records that are not ticks, market and southbound alerts that fire),
three times over: each killed worker had processed and emitted something, each successor
rebuilt what its predecessor had processed, and the end state equals the backtest of the
same input in every sink: final snapshots, `mf.alerts` and Redis, each alert once."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from marketflow.backtest import run_backtest
from tests.integration.harness import (
    SMALL,
    Worker,
    unique_topics,
    wait_for,
    worker_env,
)
from tests.integration.test_worker import (
    assert_equal_to_backtest,
    free_port,
    wait_until_final,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KILLS = 3
BAD_LINES = ['{"symbol": "00700", "ts": 1763947801304, "price": -1, "qty": 100}',
             '{"symbol": "00700", "ts": "yesterday", "price": 600, "qty": 100}',
             '{"symbol": "NOT A CODE!", "ts": 1763947801304, "price": 600, "qty": 100}',
             '[{"symbol": "00005", "ts": 1763947801304, "price": 60, "qty": 1}, 7]']


def rough_day(tmp: Path, rng: random.Random) -> tuple[Path, Path, list[str]]:
    """The small day, roughened: neighbouring ticks of one frame swapped (out of order
    within the frame, so the frame clock is the same live and offline), some ticks sent
    twice (same seq), bad records among them; rules under which the market turnover and
    the southbound net inflow alerts fire too."""
    ticks = [json.loads(line) for line in (SMALL / "ticks.jsonl").read_text().splitlines()]
    for i in range(len(ticks) - 1):
        a, b = ticks[i], ticks[i + 1]
        if a["ts"] // 1000 == b["ts"] // 1000 and rng.random() < 0.2:
            ticks[i], ticks[i + 1] = b, a
    lines: list[str] = []
    for tick in ticks:
        lines.append(json.dumps(tick))
        if "seq" in tick and rng.random() < 0.03:
            lines.append(json.dumps(tick))  # a duplicate: ignored by its seq
    for bad in BAD_LINES:
        lines.insert(rng.randrange(len(lines)), bad)
    path = tmp / "rough-ticks.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rules = tmp / "rules.yaml"
    rules.write_text((SMALL / "rules.yaml").read_text()
                     .replace("threshold: 1.0e9\n", "threshold: 2.0e8\n", 1)  # market
                     .replace("threshold: 1.0e9\n", "threshold: 3.0e8\n", 1))  # southbound
    return path, rules, lines


def metric(port: int, name: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
    except OSError:
        return -1.0
    total = 0.0  # summed over labels (ticks are counted per partition)
    for line in body.decode().splitlines():
        if line.startswith((name + " ", name + "{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_three_kills_at_random_points(stack: Any, tmp_path: Path, redis_client: Any) -> None:
    rng = random.Random(20251124)
    ticks_path, rules, lines = rough_day(tmp_path, rng)
    expected = run_backtest(SMALL / "universe.csv", SMALL / "indices.csv", rules, ticks_path,
                            SMALL / "southbound.jsonl")
    metrics_fired = {a["metric"] for a in expected["alerts"]}
    assert {"market.turnover_hkd", "southbound.net_inflow_hkd"} <= metrics_fired
    assert expected["duplicates"] > 0 and sum(expected["rejected"].values()) == len(BAD_LINES)

    topics = unique_topics(stack.bootstrap, "kills")
    app_id = f"mf-kills-{topics['ticks']}"
    env = worker_env(stack.bootstrap, stack.redis_url, topics, app_id,
                     MARKETFLOW_RULES=str(rules))
    updates = (SMALL / "southbound.jsonl").read_text().splitlines()

    def produce() -> None:
        async def send(topic: str, records: list[str], key_field: str, every: int) -> None:
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
            await producer.start()
            try:
                for n, line in enumerate(records, start=1):
                    obj = json.loads(line)
                    if isinstance(obj, list):  # an array goes where its ticks belong
                        obj = obj[0]
                    key = obj.get(key_field) if isinstance(obj, dict) else None
                    # keyed like a feed (murmur2 on the symbol); a bad record anywhere
                    await producer.send(topic, line.encode(),
                                        key=str(key).encode() if key else b"?")
                    if n % every == 0:
                        await producer.flush()
                        await asyncio.sleep(0.4)
                await producer.flush()
            finally:
                await producer.stop()

        async def run() -> None:
            await asyncio.gather(send(topics["southbound"], updates, "channel", 2),
                                 send(topics["ticks"], lines, "symbol", 25))

        asyncio.run(run())

    port = free_port()
    worker = Worker(env, tmp_path, "w0", free_port(), port)
    workers = [worker]
    try:
        time.sleep(4)
        producer = threading.Thread(target=produce)
        producer.start()
        for n in range(KILLS):
            # let it work a random while, then prove it had processed and emitted something
            time.sleep(rng.uniform(1.0, 3.0))
            wait_for(lambda p=port: metric(p, "marketflow_ticks_total") > 0, 30,
                     f"worker {n} to apply ticks")
            wait_for(lambda p=port: metric(p, "marketflow_market_turnover_hkd") > 0, 30,
                     f"worker {n} to emit a market snapshot")  # to Kafka, Redis and here
            applied = metric(port, "marketflow_ticks_total")
            worker.kill()  # SIGKILL
            assert worker.proc.returncode == -9
            port = free_port()
            worker = Worker(env, tmp_path, f"w{n + 1}", free_port(), port)
            workers.append(worker)
            print(f"kill {n + 1}: worker {n} had applied {applied:.0f} ticks")
        producer.join()
        alerts, latest = wait_until_final(stack.bootstrap, topics, expected, [worker],
                                          timeout=120)
        assert_equal_to_backtest(alerts, latest, expected)
        for n, successor in enumerate(workers[1:], start=1):
            text = successor.text()
            replayed = [int(part.split(" record")[0].rsplit(" ", 1)[-1])
                        for part in text.split("rebuilt from ")[1:]]
            assert any(r > 0 for r in replayed), (
                f"worker {n} did not replay what its predecessor processed:\n{text[-2000:]}")
        prefix = f"{app_id}:"
        stream = [e[1][b"alert_id"].decode() for e in redis_client.xrange(f"{prefix}alerts")]
        assert len(stream) == len(set(stream)), "an alert is in Redis twice"
        assert sorted(stream) == sorted(a["alert_id"] for a in expected["alerts"])
        market = redis_client.hgetall(f"{prefix}latest:market")
        assert float(market[b"turnover_hkd"]) == expected["final"]["market"]["turnover_hkd"]
    finally:
        for w in workers:
            w.stop()
