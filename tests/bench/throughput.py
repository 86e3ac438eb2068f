"""(a, f, g) the worker over a simulated day and its recovery after kill -9; (b, c) the
plain Faust and Quix Streams baselines; (d) the core without Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
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
from tests.bench.common import (
    INDICES,
    PARTITIONS,
    ROOT,
    UNIVERSE,
    WorkerProc,
    base_env,
    ensure,
    log,
    wait_ticks,
)


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


