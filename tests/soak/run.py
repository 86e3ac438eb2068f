"""`make soak`: one worker on the embedded stack fed at a steady rate for a long time.

    python -m tests.soak.run [--minutes 10] [--rate 50000] [--batch 100] [--sample-s 5]

Starts tansu and redis-server (owned: they stop with this process), creates the topics,
starts one `marketflow worker` on the bundled universe and rules, and publishes synthetic
ticks for the bundled universe at `--rate` ticks/s (event time advancing with wall time
from 09:30 HKT, per-partition JSON arrays of up to `--batch` ticks, as `produce` writes
them), two index ticks and two southbound updates a second. Every `--sample-s` seconds it
samples, from the broker, the worker's consumer lag on md.ticks (its group's committed
offsets against the high watermark of a fetch: tansu's ListOffsets LATEST is wrong, see
docs/contracts.md), the worker's RSS, and new error lines in the worker's log. Then it
waits up to `--drain-s` for the worker to catch up and prints a verdict:

- lag bounded: after warm-up, no sample's lag exceeds `--max-lag-s` seconds of input, and
  the worker catches up once the feed stops;
- memory: the worker's RSS at the end is less than `--max-rss-growth` (5%) above its RSS at
  the end of warm-up (the median of three samples each);
- no errors: no ERROR/CRITICAL line or traceback in the worker's log, and it is still up.

Exit 0 when all hold, 1 otherwise. Not part of `make test` (it runs for minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from marketflow.core.refdata import ReferenceData
from marketflow.infra.embedded import EmbeddedStack, free_port
from marketflow.infra.topics import ensure_topics
from marketflow.ingest.partitioner import partition_for
from marketflow.settings import PACKAGE_DATA, Settings

DAY_START_MS = 1_763_947_800_000  # 2025-11-24 09:30 HKT
ERROR_LINE = re.compile(r"\[(ERROR|CRITICAL)\]|Traceback \(most recent call last\)")
APP_ID = "marketflow-soak"


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Sample:
    t: float  # seconds since the feed started
    produced: int  # ticks sent so far
    lag_records: int | None  # md.ticks records behind (broker: high watermark - committed)
    lag_produced: int | None  # the same against the offsets the producer was acked
    rss_mb: float
    broker_rss_mb: float
    errors: int  # error lines in the worker's log so far


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def judge(samples: list[Sample], *, warmup_s: float, lag_bound: int, max_rss_growth: float,
          drained: bool, worker_alive: bool) -> Verdict:
    """The verdict from the samples alone (pure: tested in tests/soak/test_verdict.py)."""
    after = [s for s in samples if s.t >= warmup_s]
    verdict = Verdict(True)
    if len(after) < 3:
        return Verdict(False, [f"too few samples after a {warmup_s:.0f}s warm-up: run longer"])
    lags = [s.lag_records for s in after if s.lag_records is not None]
    worst = max(lags, default=None)
    rss_start = statistics.median(s.rss_mb for s in after[:3])
    rss_end = statistics.median(s.rss_mb for s in after[-3:])
    growth = (rss_end - rss_start) / rss_start if rss_start else float("inf")
    errors = samples[-1].errors if samples else 0
    verdict.figures = {"max_lag_records": worst, "lag_bound_records": lag_bound,
                       "rss_after_warmup_mb": round(rss_start, 1),
                       "rss_end_mb": round(rss_end, 1), "rss_growth": round(growth, 4),
                       "errors": errors, "drained": drained}
    checks = [
        (worst is not None, "no lag sample could be taken after warm-up"),
        (worst is None or worst <= lag_bound,
         f"lag reached {worst} records after warm-up (bound {lag_bound})"),
        (drained, "the worker did not catch up after the feed stopped"),
        (growth < max_rss_growth,
         f"worker RSS grew {growth:.1%} after warm-up ({rss_start:.0f} -> {rss_end:.0f} MB; "
         f"bound {max_rss_growth:.0%})"),
        (errors == 0, f"{errors} error line(s) in the worker's log"),
        (worker_alive, "the worker exited"),
    ]
    for ok, reason in checks:
        if not ok:
            verdict.passed = False
            verdict.reasons.append(reason)
    return verdict


class Feed:
    """Synthetic ticks for the universe: random walks on the 0.001 grid, one seq per stock."""

    def __init__(self, ref: ReferenceData, partitions: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.symbols = list(ref.stocks)
        self.prices = {s: stock.prev_close for s, stock in ref.stocks.items()}  # thousandths
        self.lots = {s: stock.lot_size for s, stock in ref.stocks.items()}
        self.seq = dict.fromkeys(self.symbols, 0)
        self.indices = {s: index.prev_close for s, index in ref.indices.items()}
        self.partition = {s: partition_for(s, partitions) for s in [*self.symbols,
                                                                    *self.indices]}
        self.southbound = {"SH": 0, "SZ": 0}

    def ticks(self, count: int, ts: int) -> dict[int, list[dict[str, Any]]]:
        by_partition: dict[int, list[dict[str, Any]]] = {}
        rng, prices = self.rng, self.prices
        for _ in range(count):
            symbol = rng.choice(self.symbols)
            price = max(1, prices[symbol] + rng.randint(-2, 2) * max(1, prices[symbol] // 2000))
            prices[symbol] = price
            self.seq[symbol] += 1
            by_partition.setdefault(self.partition[symbol], []).append(
                {"symbol": symbol, "ts": ts, "price": price / 1000,
                 "qty": self.lots[symbol] * rng.randint(1, 20), "seq": self.seq[symbol]})
        return by_partition

    def index_ticks(self, ts: int) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {}
        for symbol, level in self.indices.items():
            level = max(1, level + self.rng.randint(-500, 500))
            self.indices[symbol] = level
            out.setdefault(self.partition[symbol], []).append(
                {"symbol": symbol, "ts": ts, "price": level / 1000, "kind": "index"})
        return out

    def southbound_updates(self, ts: int) -> list[dict[str, Any]]:
        updates = []
        for channel in self.southbound:
            self.southbound[channel] += self.rng.randint(1, 50) * 1_000_000
            buy = self.southbound[channel]
            updates.append({"channel": channel, "ts": ts, "buy_hkd": buy,
                            "sell_hkd": buy * 0.8})
        return updates


async def publish(bootstrap: str, settings: Settings, feed: Feed, rate: int, batch: int,
                  seconds: float, state: dict[str, Any]) -> None:
    """Paced in 50 ms slices; records the acked end offset of every md.ticks partition."""
    from aiokafka import AIOKafkaProducer

    topics = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=1 << 20, max_request_size=8 << 20)
    await producer.start()
    ends: dict[int, int] = state.setdefault("ends", {})

    def acked(partition: int) -> Any:
        def done(future: Any) -> None:
            if not future.cancelled() and future.exception() is None:
                ends[partition] = max(ends.get(partition, 0), future.result().offset + 1)
        return done

    started = time.monotonic()
    state["started"] = started
    sent, last_second = 0, -1
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            ts = DAY_START_MS + int(elapsed * 1000)
            due = int(rate * elapsed) - sent
            groups = feed.ticks(due, ts) if due > 0 else {}
            if int(elapsed) != last_second:
                last_second = int(elapsed)
                for partition, items in feed.index_ticks(ts).items():
                    groups.setdefault(partition, []).extend(items)
                for update in feed.southbound_updates(ts):
                    await producer.send(topics.southbound, orjson.dumps(update),
                                        key=update["channel"].encode())
            for partition, items in groups.items():
                for start in range(0, len(items), batch):
                    future = await producer.send(
                        topics.ticks, orjson.dumps(items[start:start + batch]),
                        partition=partition)
                    future.add_done_callback(acked(partition))
            sent += max(due, 0)
            state["produced"] = sent
            await asyncio.sleep(max(0.0, 0.05 - (time.monotonic() - started - elapsed)))
        await producer.flush()
    finally:
        await producer.stop()


class Lag:
    """Consumer lag of the worker's group on md.ticks, from the broker: committed offsets
    (OffsetFetch) against high watermarks taken from fetch responses."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.admin import KafkaAdminClient

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                      enable_auto_commit=False, fetch_max_wait_ms=50,
                                      max_partition_fetch_bytes=64 * 1024)
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]

    def committed(self) -> dict[int, int]:
        """The offsets of whichever group reads md.ticks: `{app_id}.ticks` (the worker's
        own ticks reader, when it has one) or the Faust app's group `{app_id}`."""
        for group in (f"{APP_ID}.ticks", APP_ID):
            offsets = self.admin.list_group_offsets({group: self.tps})[group]
            found = {tp.partition: meta.offset for tp, meta in offsets.items()
                     if meta.offset >= 0}
            if found:
                return found
        return {}

    def sample(self) -> tuple[dict[int, int], dict[int, int]]:
        """One partition at a time: kafka-python learns a partition's high watermark when
        it parses that partition's fetch response, and a fresh assignment forgets it."""
        committed = self.committed()
        highwater: dict[int, int] = {}
        for tp in self.tps:
            self.consumer.assign([tp])
            self.consumer.seek(tp, committed.get(tp.partition, 0))
            for _ in range(10):
                self.consumer.poll(timeout_ms=100, max_records=1)
                hw = self.consumer.highwater(tp)
                if hw is not None:
                    highwater[tp.partition] = hw
                    break
        return committed, highwater

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


def total_lag(ends: dict[int, int], committed: dict[int, int]) -> int:
    return sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=50_000, help="ticks per second")
    parser.add_argument("--batch", type=int, default=100, help="ticks per Kafka record")
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="default: 20%% of the run, at most 60 s")
    parser.add_argument("--max-lag-s", type=float, default=10.0,
                        help="lag bound, in seconds of input")
    parser.add_argument("--max-rss-growth", type=float, default=0.05)
    parser.add_argument("--drain-s", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None, help="write samples and verdict")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.batch <= 0:
        parser.error("--minutes, --rate and --batch must be positive")
    seconds = args.minutes * 60
    warmup = args.warmup_s if args.warmup_s is not None else min(60.0, seconds * 0.2)
    records_per_s = args.rate / args.batch + 8 / 0.05  # full arrays + partial ones per slice
    lag_bound = int(args.max_lag_s * records_per_s)

    state_dir = Path(tempfile.mkdtemp(prefix="marketflow-soak-"))
    log(f"{args.minutes:g} min at {args.rate:,} ticks/s, batch {args.batch}; state in "
        f"{state_dir}")
    stack = EmbeddedStack.start(state_dir, owned=True)
    worker: subprocess.Popen[bytes] | None = None
    passed = False
    try:
        settings = Settings(kafka_bootstrap=stack.bootstrap, app_id=APP_ID)
        ensure_topics(stack.bootstrap, settings)
        env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
                   MARKETFLOW_REDIS_URL=stack.redis_url, MARKETFLOW_APP_ID=APP_ID,
                   MARKETFLOW_STATE_DIR=str(state_dir))
        worker_log = state_dir / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "marketflow.cli", "worker", "--web-port", str(free_port()),
             "--datadir", str(state_dir / "worker"), "--metrics-port", str(free_port()),
             "--loglevel", "info"],
            env=env, stdout=worker_log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        time.sleep(5)  # the group forms (session timeout 3 s)
        feed = Feed(ReferenceData.load(PACKAGE_DATA / "universe.csv",
                                       PACKAGE_DATA / "indices.csv"), settings.ticks_partitions)
        state: dict[str, Any] = {"produced": 0}
        thread = threading.Thread(target=lambda: asyncio.run(publish(
            stack.bootstrap, settings, feed, args.rate, args.batch, seconds, state)),
            daemon=True)
        thread.start()
        lag = Lag(stack.bootstrap, settings.topics.ticks, settings.ticks_partitions)
        samples = sample_until(lambda: not thread.is_alive(), state, lag, worker, worker_log,
                               stack, args.sample_s)
        thread.join()
        drained = drain(lag, state, args.drain_s)
        alive = worker.poll() is None
        errors = count_errors(worker_log)
        if samples:
            samples[-1].errors = errors
        lag.close()
        verdict = judge(samples, warmup_s=warmup, lag_bound=lag_bound,
                        max_rss_growth=args.max_rss_growth, drained=drained,
                        worker_alive=alive)
        report(verdict, samples, args, warmup, worker_log)
        passed = verdict.passed
        return 0 if passed else 1
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
        stack.stop()
        if passed:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            log(f"logs kept in {state_dir}")


def sample_until(done: Any, state: dict[str, Any], lag: Lag, worker: Any, worker_log: Path,
                 stack: EmbeddedStack, every: float) -> list[Sample]:
    samples: list[Sample] = []
    proc, broker = psutil.Process(worker.pid), psutil.Process(stack.info.tansu_pid)
    while not done():
        time.sleep(every)
        if "started" not in state:
            continue
        try:
            committed, highwater = lag.sample()
            lag_records: int | None = total_lag(highwater, committed)
        except Exception as error:  # a sample may fail; the run goes on
            log(f"lag sample failed: {type(error).__name__}: {error}")
            committed, lag_records = {}, None
        sample = Sample(
            t=round(time.monotonic() - state["started"], 1), produced=state["produced"],
            lag_records=lag_records,
            lag_produced=total_lag(dict(state.get("ends", {})), committed) if committed
            else None,
            rss_mb=proc.memory_info().rss / 2**20 if worker.poll() is None else 0.0,
            broker_rss_mb=broker.memory_info().rss / 2**20,
            errors=count_errors(worker_log))
        samples.append(sample)
        log(f"t={sample.t:6.1f}s sent {sample.produced:>11,} lag {sample.lag_records} records "
            f"(producer view {sample.lag_produced}) worker {sample.rss_mb:6.1f} MB broker "
            f"{sample.broker_rss_mb:7.1f} MB errors {sample.errors}")
    return samples


def drain(lag: Lag, state: dict[str, Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    ends = dict(state.get("ends", {}))
    while time.monotonic() < deadline:
        try:
            if total_lag(ends, lag.committed()) == 0:
                return True
        except Exception as error:
            log(f"committed offsets failed: {error}")
        time.sleep(1.0)
    return False


def count_errors(path: Path) -> int:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if ERROR_LINE.search(line))


def report(verdict: Verdict, samples: list[Sample], args: argparse.Namespace, warmup: float,
           worker_log: Path) -> None:
    print(f"soak: {args.minutes:g} min at {args.rate:,} ticks/s (batch {args.batch}), "
          f"warm-up {warmup:.0f}s, {len(samples)} samples")
    for name, value in verdict.figures.items():
        print(f"  {name}: {value}")
    if verdict.passed:
        print("PASS: lag bounded, RSS growth below the bound, no errors")
    else:
        print("FAIL: " + "; ".join(verdict.reasons))
        errors = [line for line in worker_log.read_text(errors="replace").splitlines()
                  if ERROR_LINE.search(line)]
        for line in errors[:10]:
            print(f"  {line[:300]}")
    if args.json is not None:
        args.json.write_text(json.dumps({"samples": [asdict(s) for s in samples],
                                         "verdict": asdict(verdict)}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
