"""`make bench`: every figure of issue 6 from one run, against the embedded broker.

  a. worker throughput over a simulated day (ticks/s, md.ticks -> every output)
  b. the same job as a plain Faust agent, one JSON tick per record (baseline)
  c. the same job in Quix Streams (if it runs against the broker; else why not)
  d. core only: in-process, and `marketflow backtest` as a whole process
  e. latency at a paced 20k ticks/s: tick produced -> stock/index alert in Redis, and
     frame close -> sector/market alert in Redis (p50/p99/p99.9)
  f. peak RSS of the worker over the day
  g. time to recover a worker's full-day state after kill -9

Writes bench-report.json and prints a table. Not part of `make test`: speed is measured
here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from marketflow.core.pipeline import Pipeline
from marketflow.core.records import parse_tick
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import load_rules
from marketflow.infra.embedded import EmbeddedStack
from marketflow.ingest.partitioner import partition_for
from marketflow.settings import PACKAGE_DATA
from marketflow.sim.generate import Generator
from marketflow.sim.scenario import load_scenario

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
              "deadletter", "partials")
    return {f"MARKETFLOW_TOPIC_{f.upper()}": f"{prefix}.{f}" for f in fields}


def base_env(stack: EmbeddedStack, prefix: str, state: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap,
               MARKETFLOW_REDIS_URL=stack.redis_url, MARKETFLOW_APP_ID=f"bench-{prefix}",
               MARKETFLOW_REDIS_PREFIX=f"{prefix}:", MARKETFLOW_STATE_DIR=str(state),
               MARKETFLOW_EMBEDDED="1", **topics_env(prefix))
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
        for line in body.splitlines():
            if line.startswith("marketflow_ticks_total "):
                return float(line.split()[1])
        return 0.0

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


async def produce_day(bootstrap: str, topic: str, generator: Generator, batch: int,
                      dump: Path | None) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=4 << 20, max_request_size=16 << 20)
    await producer.start()
    pending: dict[int, list[dict[str, Any]]] = {}
    count = 0
    out = dump.open("wb") if dump else None
    try:
        for kind, record in generator.records():
            if kind != "ticks":
                continue
            count += 1
            if out:
                out.write(orjson.dumps(record) + b"\n")
            part = partition_for(record["symbol"], PARTITIONS)
            items = pending.setdefault(part, [])
            items.append(record)
            if len(items) >= batch:
                await producer.send(topic, orjson.dumps(items), partition=part)
                pending[part] = []
        for part, items in pending.items():
            if items:
                await producer.send(topic, orjson.dumps(items), partition=part)
        await producer.flush()
    finally:
        await producer.stop()
        if out:
            out.close()
    return count


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


def throughput_and_recovery(stack: EmbeddedStack, state: Path, trades: int) -> dict[str, Any]:
    prefix = f"day{uuid.uuid4().hex[:6]}"
    env = base_env(stack, prefix, state)
    ensure(env)
    generator = Generator(load_scenario("2025-11-24"), ReferenceData.load(UNIVERSE, INDICES),
                          trades=trades)
    dump = state / "day-ticks.jsonl"
    log(f"producing a simulated day of {trades:,} trades (batches of 100 ticks) ...")
    count = asyncio.run(produce_day(stack.bootstrap, f"{prefix}.ticks", generator, 100, dump))
    log(f"{count:,} ticks in md.ticks; starting the worker")
    worker = WorkerProc(env, state, "worker-day")
    rss: list[float] = []
    cpu: dict[str, tuple[int, list[float]]] = {"worker": (worker.proc.pid, []),
                                               "broker": (stack.info.tansu_pid, [])}
    try:
        start, end = wait_ticks(worker, count, 900, rss, cpu)
    finally:
        worker.kill(signal.SIGKILL)
    seconds = end - start
    used = {name: marks[1] - marks[0] for name, (_, marks) in cpu.items()}
    log(f"worker: {count / seconds:,.0f} ticks/s; CPU worker {used['worker']:.1f} s, broker "
        f"{used['broker']:.1f} s over {seconds:.1f} s; peak RSS {max(rss):.0f} MB; kill -9")
    # g. recovery: a new worker, one new tick per partition; time until all are applied
    restart = time.perf_counter()
    second = WorkerProc(env, state, "worker-recovered")
    try:
        symbols = {partition_for(s, PARTITIONS): s for s in generator.ref.stocks}
        ts = 1_763_971_800_000 + 1  # 16:10 HKT + 1 ms on the demo day
        probes = [{"symbol": symbol, "ts": ts,
                   "price": generator.ref.stocks[symbol].prev_close / 1000,
                   "qty": generator.ref.stocks[symbol].lot_size}
                  for _, symbol in sorted(symbols.items())]

        async def send_probes() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
            await producer.start()
            for probe in probes:
                await producer.send_and_wait(f"{prefix}.ticks", orjson.dumps(probe),
                                             key=probe["symbol"].encode())
            await producer.stop()

        asyncio.run(send_probes())
        _, recovered = wait_ticks(second, len(probes), 300)
    finally:
        second.kill()
    return {"ticks": count, "seconds": seconds, "ticks_per_s": count / seconds,
            "worker_cpu_s": used["worker"], "broker_cpu_s": used["broker"],
            "worker_cpu_us_per_tick": used["worker"] * 1e6 / count,
            "peak_rss_mb": max(rss), "recovery_s": recovered - restart,
            "recovery_partitions": len(probes), "dump": str(dump)}


def baseline(module: str, stack: EmbeddedStack, state: Path, n: int) -> dict[str, Any]:
    topic = f"base-{module}-{uuid.uuid4().hex[:6]}"
    subprocess.run([sys.executable, "-m", "marketflow.cli", "topics"], capture_output=True,
                   env=dict(os.environ, MARKETFLOW_KAFKA_BOOTSTRAP=stack.bootstrap))
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    generator = Generator(load_scenario("2025-11-24"), ReferenceData.load(UNIVERSE, INDICES),
                          trades=n)

    async def produce() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1, linger_ms=20)
        await producer.start()
        sent = 0
        for kind, record in generator.records():
            if kind == "ticks" and record["kind"] == "trade" and sent < n:
                await producer.send(topic, orjson.dumps(record), key=record["symbol"].encode())
                sent += 1
        await producer.flush()
        await producer.stop()
        return sent

    sent = asyncio.run(produce())
    log(f"{module}: {sent:,} single-tick records produced; running the baseline")
    proc = subprocess.Popen(
        [sys.executable, "-m", f"tests.bench.{module}", stack.bootstrap, topic, str(UNIVERSE),
         str(sent), f"g-{topic}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    finally:  # also on Ctrl-C: a Faust worker in its own session would outlive the bench
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    for line in done.stdout.splitlines()[::-1]:
        if "{" in line:  # the worker may prefix terminal control codes
            result = json.loads(line[line.index("{"):])
            if "seconds" in result:
                result["ticks_per_s"] = result["ticks"] / result["seconds"]
            return result
    return {"error": f"no result (exit {done.returncode}): {done.stderr[-500:]}"}


def core_only(dump: Path, limit: int) -> dict[str, Any]:
    ref = ReferenceData.load(UNIVERSE, INDICES)
    lines = []
    with dump.open("rb") as handle:
        for n, line in enumerate(handle):
            if n >= limit:
                break
            lines.append(line)
    started = time.perf_counter()
    ticks = [parse_tick(orjson.loads(line)) for line in lines]
    parsed = time.perf_counter()
    pipeline = Pipeline(ref, load_rules(PACKAGE_DATA / "rules.yaml"))
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.finish()
    done = time.perf_counter()
    path = dump.with_name("core-ticks.jsonl")
    path.write_bytes(b"".join(lines))
    whole = time.perf_counter()
    subprocess.run([sys.executable, "-m", "marketflow.cli", "backtest", "--universe",
                    str(UNIVERSE), "--indices", str(INDICES), "--rules",
                    str(PACKAGE_DATA / "rules.yaml"), "--ticks", str(path), "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    whole_s = time.perf_counter() - whole
    return {"ticks": len(ticks), "core_ticks_per_s": len(ticks) / (done - parsed),
            "parse_and_core_ticks_per_s": len(ticks) / (done - started),
            "backtest_process_ticks_per_s": len(ticks) / whole_s, "backtest_process_s": whole_s}


WARMUP_MS = 2_000
BENCH_RULES = """
rules:
  - {id: stock-up, metric: stock.change_pct, op: ">=", threshold: 1.0, hysteresis: 0.5,
     max_per_day: 1000000}
  - {id: stock-down, metric: stock.change_pct, op: "<=", threshold: -1.0, hysteresis: 0.5,
     max_per_day: 1000000}
  - {id: sector-up, metric: sector.gain_pct, op: ">=", threshold: 0.3, hysteresis: 0.2,
     max_per_day: 1000000}
  - {id: sector-down, metric: sector.gain_pct, op: "<=", threshold: -0.3, hysteresis: 0.2,
     max_per_day: 1000000}
"""


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"count": len(ordered), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "p999_ms": pick(0.999), "max_ms": ordered[-1] * 1000}


def latency(stack: EmbeddedStack, state: Path, rate: int, seconds: float) -> dict[str, Any]:
    import math
    import random
    from bisect import bisect_left

    import redis

    from marketflow.sim.market import round_to_grid

    prefix = f"lat{uuid.uuid4().hex[:6]}"
    rules = state / "bench-rules.yaml"
    rules.write_text(BENCH_RULES)
    env = base_env(stack, prefix, state, MARKETFLOW_RULES=str(rules))
    ensure(env)
    worker = WorkerProc(env, state, "worker-latency")
    arrivals: list[tuple[float, dict[str, Any]]] = []
    client = redis.Redis.from_url(stack.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{prefix}:alerts")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message is not None:
                arrivals.append((time.time(), orjson.loads(message["data"])))

    cpu: list[tuple[float, float, float]] = []  # (seconds since pacing began, broker %, worker %)
    paced_at: list[float] = []

    def sample_cpu() -> None:
        import psutil

        broker, work = psutil.Process(stack.info.tansu_pid), psutil.Process(worker.proc.pid)
        broker.cpu_percent(), work.cpu_percent()
        while not stop.wait(1.0):
            try:
                shares = broker.cpu_percent(), work.cpu_percent()
            except psutil.Error:
                return
            if paced_at:
                cpu.append((time.time() - paced_at[0], *shares))

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    sampler = threading.Thread(target=sample_cpu, daemon=True)
    sampler.start()
    ref = ReferenceData.load(UNIVERSE, INDICES)
    symbols = list(ref.stocks)
    rng = random.Random(3)
    phases = {s: rng.uniform(0, 0.6) for s in symbols}
    produced: dict[tuple[str, int], float] = {}
    batches: list[tuple[int, float]] = []  # (max event time in the batch, wall time sent)
    day_base = 1_763_949_600_000  # 2025-11-24 10:00 HKT

    async def pace() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1, linger_ms=0)
        await producer.start()
        start = time.time()
        paced_at.append(start)
        sent = 0
        seq: dict[str, int] = {}
        while (now := time.time()) - start < seconds:
            due = int((now - start) * rate) - sent
            pending: dict[int, list[dict[str, Any]]] = {}
            ts = day_base + int((now - start) * 1000)
            for _ in range(max(0, due)):
                symbol = rng.choice(symbols)
                prev = ref.stocks[symbol].prev_close
                wave = 0.016 * math.sin(2 * math.pi * ((now - start) / 6 + phases[symbol]))
                price = round_to_grid(prev * (1 + wave + rng.gauss(0, 0.0005)))
                seq[symbol] = seq.get(symbol, 0) + 1
                tick = {"symbol": symbol, "ts": ts, "price": price / 1000,
                        "qty": ref.stocks[symbol].lot_size, "seq": seq[symbol]}
                pending.setdefault(partition_for(symbol, PARTITIONS), []).append(tick)
                produced.setdefault((symbol, ts), now)
            for part, items in pending.items():
                await producer.send(f"{prefix}.ticks", orjson.dumps(items), partition=part)
            sent += max(0, due)
            batches.append((ts, now))
            await asyncio.sleep(0.004)
        await producer.flush()
        await producer.stop()
        return sent

    try:
        wait_until = time.monotonic() + 30
        while worker.ticks() < 0 and time.monotonic() < wait_until:
            time.sleep(0.2)
        time.sleep(5)  # the consumer group forms (session timeout 3 s)
        log(f"latency: producing {rate:,} ticks/s for {seconds:.0f}s")
        sent = asyncio.run(pace())
        time.sleep(4)
    finally:
        stop.set()
        listener.join(timeout=2)
        sampler.join(timeout=2)
        worker.kill()
        pubsub.close()
        client.close()
    tick_latency, frame_latency = [], []
    timeline: list[tuple[int, float]] = []  # (event time since start, latency)
    batch_ts = [b[0] for b in batches]
    warm = day_base + WARMUP_MS  # steady state: the first seconds include partition rebuilds
    from marketflow.core.timeutil import from_datetime

    for arrived, alert in arrivals:
        import datetime as dt

        ts = from_datetime(dt.datetime.fromisoformat(alert["ts"]))
        if ts < warm:
            continue
        if alert["metric"] == "stock.change_pct":
            when = produced.get((alert["subject"], ts))
            if when is not None:
                tick_latency.append(arrived - when)
                timeline.append((ts - day_base, arrived - when))
        else:  # frame end ts: closed when event time ts was first produced
            i = bisect_left(batch_ts, ts)
            if i < len(batches):
                frame_latency.append(arrived - batches[i][1])
                timeline.append((ts - day_base, arrived - batches[i][1]))
    return {"rate": rate, "ticks": sent, "alerts": len(arrivals), "warmup_ms": WARMUP_MS,
            "tick_to_alert": percentiles(tick_latency),
            "frame_to_alert": percentiles(frame_latency),
            "by_period": by_period(timeline, cpu, SLICE_MS)}


SLICE_MS = 5_000


def broker_alone(stack: EmbeddedStack, rate: int, seconds: float) -> dict[str, Any]:
    """The embedded broker with no marketflow at all: the latency run's record stream
    (every 4 ms one record of rate/250/8 ticks per partition) produced by aiokafka and
    tailed by one plain aiokafka consumer. Its CPU over time tells how much of (e) is the
    broker's own cost of serving a growing in-memory log."""
    import psutil
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"alone-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    per_record = max(1, rate // 250 // PARTITIONS)
    body = orjson.dumps([{"symbol": "00700", "ts": 1_763_949_600_000, "price": 598.5,
                          "qty": 100, "seq": n} for n in range(per_record)])
    broker = psutil.Process(stack.info.tansu_pid)
    shares: list[float] = []
    latencies: list[float] = []

    async def run() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks=1, linger_ms=0)
        consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, group_id=None,
                                    fetch_max_wait_ms=5)
        await producer.start()
        await consumer.start()
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        sent_at: dict[tuple[int, int], float] = {}
        received = 0

        async def tail() -> None:
            nonlocal received
            while True:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.time()
                for tp, records in batches.items():
                    received += len(records)
                    for record in records:
                        at = sent_at.pop((tp.partition, record.offset), None)
                        if at is not None:
                            latencies.append(now - at)

        reader = asyncio.ensure_future(tail())
        broker.cpu_percent()
        start = last = time.time()
        while (now := time.time()) - start < seconds:
            for part in range(PARTITIONS):
                future = await producer.send(topic, body, partition=part)
                future.add_done_callback(
                    lambda f, p=part, at=now: sent_at.__setitem__((p, f.result().offset), at))
            if now - last >= SLICE_MS / 1000:
                shares.append(broker.cpu_percent())
                last = now
            await asyncio.sleep(0.004)
        shares.append(broker.cpu_percent())
        await asyncio.sleep(1)
        reader.cancel()
        await producer.stop()
        await consumer.stop()
        return received

    received = asyncio.run(run())
    return {"records": received, "ticks_per_record": per_record,
            "produce_to_fetch": percentiles(latencies),
            "broker_cpu_pct_by_period": [round(x) for x in shares]}


def by_period(timeline: list[tuple[int, float]], cpu: list[tuple[float, float, float]],
              slice_ms: int) -> list[dict[str, Any]]:
    """Latency (ticks and frames together) and CPU per slice of the paced run: shows
    whether latency is steady or grows, and whose CPU grows with it (broker or worker)."""
    out = []
    for start in range(0, max((t for t, _ in timeline), default=-1) + 1, slice_ms):
        values = [v for t, v in timeline if start <= t < start + slice_ms]
        shares = [(b, w) for t, b, w in cpu if start <= t * 1000 < start + slice_ms]
        row: dict[str, Any] = {"from_s": start / 1000, **percentiles(values)}
        if shares:
            row["broker_cpu_pct"] = sum(b for b, _ in shares) / len(shares)
            row["worker_cpu_pct"] = sum(w for _, w in shares) / len(shares)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=3_000_000, help="trades in the day (a)")
    parser.add_argument("--baseline-ticks", type=int, default=200_000)
    parser.add_argument("--latency-rate", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--core-ticks", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-report.json")
    parser.add_argument("--skip", nargs="*", default=[], help="a b c d e f g to skip")
    args = parser.parse_args()
    skip = set("".join(args.skip))
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                              "skipped": sorted(skip)}
    with tempfile.TemporaryDirectory(prefix="mf-bench-") as tmp:
        state = Path(tmp)
        stack = EmbeddedStack.start(state / "stack", owned=True)
        try:
            dump = None
            if not skip >= {"a", "f", "g"}:
                day = throughput_and_recovery(stack, state, args.trades)
                report["a_worker"] = {k: day[k] for k in (
                    "ticks", "seconds", "ticks_per_s", "worker_cpu_s", "broker_cpu_s",
                    "worker_cpu_us_per_tick")}
                report["f_peak_rss_mb"] = day["peak_rss_mb"]
                report["g_recovery_s"] = day["recovery_s"]
                dump = Path(day["dump"])
            if "d" not in skip:
                if dump is None:
                    dump = dump_day(state, args.core_ticks)
                report["d_core"] = core_only(dump, args.core_ticks)
                log(f"core: {report['d_core']}")
            if "b" not in skip:
                report["b_faust_baseline"] = baseline("baseline_faust", stack, state,
                                                      args.baseline_ticks)
                log(f"faust baseline: {report['b_faust_baseline']}")
            if "c" not in skip:
                report["c_quix"] = baseline("baseline_quix", stack, state, args.baseline_ticks)
                log(f"quix: {report['c_quix']}")
            if "e" not in skip:
                report["e_latency"] = latency(stack, state, args.latency_rate,
                                              args.latency_seconds)
                report["e_broker_alone"] = broker_alone(stack, args.latency_rate,
                                                        args.latency_seconds)
                log(f"broker alone: {report['e_broker_alone']}")
        finally:
            stack.stop()
    worker = report.get("a_worker", {}).get("ticks_per_s")
    for key in ("b_faust_baseline", "c_quix"):
        if key in report:
            rate = report[key].get("ticks_per_s")
            report[key]["worker_ratio"] = worker / rate if rate and worker else None
    args.out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nreport: {args.out}")


def dump_day(state: Path, trades: int) -> Path:
    """The simulated day's ticks as JSON lines, for (d) when (a) is skipped."""
    generator = Generator(load_scenario("2025-11-24"), ReferenceData.load(UNIVERSE, INDICES),
                          trades=trades)
    dump = state / "day-ticks.jsonl"
    with dump.open("wb") as out:
        for kind, record in generator.records():
            if kind == "ticks":
                out.write(orjson.dumps(record) + b"\n")
    return dump


def print_table(report: dict[str, Any]) -> None:
    def rate(result: dict[str, Any]) -> str:
        if "ticks_per_s" in result:
            return f"{result['ticks_per_s']:>12,.0f} ticks/s"
        return f"error: {result.get('error', '?')[:60]}"

    def latency_row(figures: dict[str, Any]) -> str:
        return (f"p50 {figures.get('p50_ms', 0):.1f} p99 {figures.get('p99_ms', 0):.1f} "
                f"p99.9 {figures.get('p999_ms', 0):.1f} ms")

    rows = []
    if "a_worker" in report:
        a = report["a_worker"]
        rows.append(("a", "worker, full simulated day", rate(a), "goal >= 200,000/s"))
        rows.append(("a", "  CPU during (a)", f"worker {a['worker_cpu_s']:.1f} s "
                     f"({a['worker_cpu_us_per_tick']:.2f} us/tick), broker "
                     f"{a['broker_cpu_s']:.1f} s", f"over {a['seconds']:.1f} s, 2 cores"))
    if "b_faust_baseline" in report:
        b = report["b_faust_baseline"]
        rows.append(("b", "plain Faust agent (baseline)", rate(b),
                     f"worker = {b.get('worker_ratio') or 0:.1f}x (goal >= 15x)"))
    if "c_quix" in report:
        c = report["c_quix"]
        rows.append(("c", "Quix Streams", rate(c), f"worker = {c.get('worker_ratio') or 0:.2f}x"))
    if "d_core" in report:
        d = report["d_core"]
        rows += [
            ("d", "core in-process", f"{d['core_ticks_per_s']:>12,.0f} ticks/s",
             "goal >= 500,000/s"),
            ("d", "parse + core in-process",
             f"{d['parse_and_core_ticks_per_s']:>12,.0f} ticks/s", ""),
            ("d", "marketflow backtest process",
             f"{d['backtest_process_ticks_per_s']:>12,.0f} ticks/s", "goal >= 250,000/s"),
        ]
    if "e_latency" in report:
        e = report["e_latency"]
        rows += [
            ("e", f"tick -> alert @ {e['rate']:,}/s", latency_row(e["tick_to_alert"]),
             "goal p99 <= 50 ms"),
            ("e", "frame close -> alert", latency_row(e["frame_to_alert"]), "goal p99 <= 50 ms"),
        ]
        alone = report.get("e_broker_alone")
        if alone:
            rows.append(("e", "broker alone: produce -> fetch", latency_row(
                alone["produce_to_fetch"]), "CPU broker " + " -> ".join(
                f"{x}%" for x in alone["broker_cpu_pct_by_period"])))
        for row in e.get("by_period", []):
            rows.append(("e", f"  both, from {row['from_s']:.0f} s", latency_row(row),
                         f"CPU broker {row.get('broker_cpu_pct', 0):.0f}% "
                         f"worker {row.get('worker_cpu_pct', 0):.0f}%"))
    if "f_peak_rss_mb" in report:
        rows.append(("f", "worker peak RSS", f"{report['f_peak_rss_mb']:>12,.0f} MB",
                     "goal < 500 MB"))
    if "g_recovery_s" in report:
        rows.append(("g", "recovery after kill -9", f"{report['g_recovery_s']:>12.1f} s",
                     "goal <= 30 s"))
    for row in rows:
        print(f"{row[0]}  {row[1]:<32} {row[2]:<44} {row[3]}")

if __name__ == "__main__":
    main()
