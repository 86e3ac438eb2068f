"""(h-k) Input shaped like the real world: a day in loose forms (RFC 3339 and epoch-ms
times mixed, `0700.HK` / `HK.00700` symbols, some explicit turnovers), one tick per Kafka
record as feeds write it (keyed by the 5-digit code, a plain aiokafka producer), already
in `md.ticks` when the worker starts; the same day batched; `marketflow backtest` on loose
and canonical files; and two workers on the two cores against one.

A worker's time runs from the first tick applied to the day's market turnover in Redis
(every frame aggregated and written: the figures a user waits for); when the partition
processors had applied every tick is reported beside it (`applied_ticks_per_s`): with two
workers the aggregator, in one of them, can still be working through frames then. Row h
and Quix Streams take turns (`head_to_head`), each reported as its median round."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaProducer

from marketflow.infra.embedded import EmbeddedStack
from marketflow.ingest.partitioner import partition_for
from marketflow.settings import PACKAGE_DATA
from tests.bench.common import (
    INDICES,
    PARTITIONS,
    UNIVERSE,
    WorkerProc,
    base_env,
    cpu_seconds,
    ensure,
    log,
)
from tests.integration.test_backlog import write_loose_day

RULES = PACKAGE_DATA / "rules.yaml"


async def produce_file(bootstrap: str, topic: str, path: Path, batch: int) -> int:
    """Each line's tick to its symbol's partition: one keyed record each (batch 1), or
    JSON arrays of `batch` per partition."""
    from marketflow.core.records import normalise_symbol

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                                max_batch_size=4 << 20, max_request_size=16 << 20)
    await producer.start()
    pending: dict[int, list[bytes]] = {}
    count = 0
    try:
        with path.open("rb") as lines:
            for line in lines:
                obj = orjson.loads(line)
                symbol = normalise_symbol(obj["symbol"])
                count += 1
                if batch == 1:
                    await producer.send(topic, line.strip(), key=symbol.encode())
                    continue
                part = partition_for(symbol, PARTITIONS)
                items = pending.setdefault(part, [])
                items.append(line.strip())
                if len(items) >= batch:
                    await producer.send(topic, b"[" + b",".join(items) + b"]", partition=part)
                    pending[part] = []
        for part, items in pending.items():
            if items:
                await producer.send(topic, b"[" + b",".join(items) + b"]", partition=part)
        await producer.flush()
    finally:
        await producer.stop()
    return count


def run_workers(stack: EmbeddedStack, state: Path, day: Path, batch: int, workers: int,
                label: str, expected_turnover: float) -> dict[str, Any]:
    prefix = f"{label}{uuid.uuid4().hex[:6]}"
    env = base_env(stack, prefix, state, MARKETFLOW_IDLE_MS="2000")
    ensure(env)
    count = asyncio.run(produce_file(stack.bootstrap, f"{prefix}.ticks", day, batch))
    form = "one per record" if batch == 1 else f"{batch} per record"
    log(f"{label}: {count:,} ticks in md.ticks ({form}); {workers} worker(s)")
    procs = [WorkerProc(env, state, f"{label}-{i}") for i in range(workers)]
    broker_cpu0 = cpu_seconds(stack.info.tansu_pid)
    try:
        timing = _until_figures(procs, count, expected_turnover, stack.redis_url,
                                f"{prefix}:", 900)
        shares = [p.ticks() for p in procs]
    finally:
        for proc in procs:
            proc.kill()
    import psutil

    broker = psutil.Process(stack.info.tansu_pid)
    seconds = timing["figures_at"] - timing["start"]
    applied = timing["applied_at"] - timing["start"]
    return {"ticks": count, "seconds": seconds, "ticks_per_s": count / seconds,
            "applied_s": applied, "applied_ticks_per_s": count / applied,
            "workers": workers, "ticks_per_worker": shares,
            "worker_cpu_s": timing["cpu_end"] - timing["cpu_start"],
            "peak_rss_mb": timing["peak_rss_mb"],
            "broker_cpu_s": cpu_seconds(stack.info.tansu_pid) - broker_cpu0,
            "broker_rss_mb_at_end": broker.memory_info().rss / 2**20,
            "market_turnover_hkd": timing["turnover"]}


def _until_figures(procs: list[WorkerProc], expected: int, turnover: float, redis_url: str,
                   prefix: str, timeout: float) -> dict[str, float]:
    """From the first tick any worker applied to (1) all `expected` ticks applied by the
    partition processors and (2) the day's market turnover in Redis (every frame
    aggregated and written: what a user waits for). Worker CPU over the same span."""
    client = redis.Redis.from_url(redis_url)
    out: dict[str, float] = {"peak_rss_mb": 0.0}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"worker exited; see {proc.log_path}")
        now = time.perf_counter()
        if "applied_at" not in out:
            seen = sum(max(0.0, p.ticks()) for p in procs)
            if seen > 0 and "start" not in out:
                out["start"] = now
                out["cpu_start"] = sum(cpu_seconds(p.proc.pid) for p in procs)
            if seen >= expected:
                out["applied_at"] = now
        if "start" in out:
            stored = client.hget(f"{prefix}latest:market", "turnover_hkd")
            if stored is not None and abs(float(stored) - turnover) < 0.005:
                out["applied_at"] = out.get("applied_at", now)
                out["figures_at"] = now
                out["cpu_end"] = sum(cpu_seconds(p.proc.pid) for p in procs)
                out["turnover"] = float(stored)
                return out
            out["peak_rss_mb"] = max(out["peak_rss_mb"], max(p.rss_mb() for p in procs))
        # every scrape costs the workers CPU: poll often only before the start
        time.sleep(0.02 if "start" not in out else 0.1)
    raise RuntimeError(f"the day's figures were not in Redis within {timeout}s: {out}")


def day_turnover(path: Path) -> float:
    """The day's market turnover as `marketflow backtest` computes it: the figure the
    workers' Redis must reach."""
    from marketflow.backtest import run_backtest

    result = run_backtest(UNIVERSE, INDICES, RULES, path)
    return float(result["final"]["market"]["turnover_hkd"])


def backtest_rate(path: Path) -> dict[str, Any]:
    lines = sum(1 for _ in path.open("rb"))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "marketflow.cli", "backtest", "--universe", str(UNIVERSE),
         "--indices", str(INDICES), "--rules", str(RULES), "--ticks", str(path), "--json"],
        capture_output=True, check=True)
    seconds = time.perf_counter() - started
    turnover = orjson.loads(done.stdout)["final"]["market"]["turnover_hkd"]
    return {"ticks": lines, "seconds": seconds, "ticks_per_s": lines / seconds,
            "market_turnover_hkd": turnover}


def canonical_copy(loose: Path) -> Path:
    """The same ticks in the canonical wire form (what `marketflow produce` writes)."""
    from marketflow.core.records import parse_tick

    out = loose.with_name(loose.stem + "-canonical.jsonl")
    with loose.open("rb") as src, out.open("wb") as dst:
        for line in src:
            dst.write(orjson.dumps(parse_tick(orjson.loads(line)).to_json()) + b"\n")
    return out


def large_backlog(stack: EmbeddedStack, state: Path, ticks: int) -> dict[str, Any]:
    """(m) The issue's stalled case: a day of about 1M ticks in loose forms, one per
    record, in `md.ticks` before one worker starts; to the day's figures in Redis. A real
    day holds 200k-5M trades: on a small one the fixed wait for the last frames (`idle_ms`
    after a 250 ms flush, 2.25 s) is most of the time, here it is a small part."""
    day = state / f"loose-{ticks}.jsonl"
    count = write_loose_day(day, ticks)
    turnover = day_turnover(day)
    log(f"large loose-form day: {count:,} ticks; market turnover HK${turnover:,.2f}")
    return run_workers(stack, state, day, 1, 1, "large", turnover)


def median_round(rounds: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The round with the median `key` (the lower middle of an even count), carrying every
    round's figures: one run of a row moves by a fifth from one run to the next here, too
    much to rank the worker and Quix Streams on one each. Rounds that failed are left out
    (all failed: the first one's error)."""
    good = sorted((r for r in rounds if key in r), key=lambda r: r[key])
    if not good:
        return rounds[0]
    out = dict(good[(len(good) - 1) // 2])
    out["rounds"] = [{k: r[k] for k in ("ticks_per_s", "applied_ticks_per_s") if k in r}
                     for r in rounds]
    return out


def k_range(rates: list[float]) -> str:
    """The spread of the rounds' rates, in thousands: `122k-139k`."""
    return f"{min(rates) / 1000:,.0f}k-{max(rates) / 1000:,.0f}k"


def head_to_head(stack: EmbeddedStack, state: Path, day: Path, turnover: float, rounds: int,
                 quix_ticks: int | None) -> dict[str, Any]:
    """(h) and, with `quix_ticks`, (c) Quix Streams on as many single-tick records, taking
    turns `rounds` times (a slower minute of the machine falls on both); each reported as
    its median round."""
    from tests.bench.throughput import baseline

    workers: list[dict[str, Any]] = []
    quix: list[dict[str, Any]] = []
    for turn in range(1, rounds + 1):
        workers.append(run_workers(stack, state, day, 1, 1, "single", turnover))
        log(f"h, round {turn} of {rounds}: {workers[-1]}")
        if quix_ticks:
            quix.append(baseline("baseline_quix", stack, state, quix_ticks))
            log(f"quix, round {turn} of {rounds}: {quix[-1]}")
    out = {"h_worker_single": median_round(workers, "applied_ticks_per_s")}
    if quix:
        out["c_quix"] = median_round(quix, "ticks_per_s")
    return out


def realworld(stack: EmbeddedStack, state: Path, ticks: int, backtest_sizes: list[int],
              skip: set[str], rounds: int = 1, quix_ticks: int | None = None,
              ) -> dict[str, Any]:
    """Rows h-k and j; with `quix_ticks`, row c too, taking turns with h."""
    report: dict[str, Any] = {}
    day = state / f"loose-{ticks}.jsonl"
    turnover = 0.0
    if not skip >= {"h", "i", "k"}:
        count = write_loose_day(day, ticks)
        turnover = day_turnover(day)
        log(f"loose-form day: {count:,} ticks in {day}; market turnover HK${turnover:,.2f}")
    if "h" not in skip:
        report.update(head_to_head(stack, state, day, turnover, rounds, quix_ticks))
    if "i" not in skip:
        report["i_worker_batched"] = run_workers(stack, state, day, 100, 1, "batched", turnover)
        log(f"i: {report['i_worker_batched']}")
    if "k" not in skip:
        report["k_two_workers"] = run_workers(stack, state, day, 1, 2, "two", turnover)
        one = report.get("h_worker_single", {}).get("market_turnover_hkd")
        two = report["k_two_workers"]["market_turnover_hkd"]
        report["k_two_workers"]["equal_to_one_worker"] = one is None or one == two
        log(f"k: {report['k_two_workers']}")
    if "j" not in skip:
        rows = []
        for size in backtest_sizes:
            loose = state / f"bt-loose-{size}.jsonl"
            write_loose_day(loose, size)
            canonical = canonical_copy(loose)
            row = {"trades": size, "loose": backtest_rate(loose),
                   "canonical": backtest_rate(canonical)}
            row["loose_over_canonical"] = (row["canonical"]["ticks_per_s"]
                                           / row["loose"]["ticks_per_s"])
            rows.append(row)
            log(f"j: {row}")
        report["j_backtest"] = rows
    return report


def realworld_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The report's (h-k) rows for the table `make bench` prints."""
    rows: list[tuple[str, str, str, str]] = []

    def worker_row(key: str, letter: str, label: str, goal: str) -> None:
        if key not in report:
            return
        r = report[key]
        rows.append((letter, label, f"{r['ticks_per_s']:>12,.0f} ticks/s", goal))
        if len(r.get("rounds", [])) > 1:
            rows.append((letter, f"  median of {len(r['rounds'])} rounds", spread(r["rounds"]),
                         "the round with the median applied rate"))
        rows.append((letter, "  CPU and broker", f"worker {r['worker_cpu_s']:.1f} s, broker "
                     f"{r['broker_cpu_s']:.1f} s over {r['seconds']:.1f} s",
                     f"ticks applied at {r['applied_ticks_per_s']:,.0f}/s; broker RSS at "
                     f"end {r['broker_rss_mb_at_end']:.0f} MB"))

    def spread(rounds: list[dict[str, Any]]) -> str:
        out = []
        for key, what in (("ticks_per_s", "figures"), ("applied_ticks_per_s", "applied")):
            rates = [r[key] for r in rounds if key in r]
            if rates:
                out.append(f"{what} {k_range(rates)}")
        return ", ".join(out)

    faust = report.get("b_faust_baseline", {}).get("ticks_per_s")
    quix = report.get("c_quix", {}).get("ticks_per_s")

    def versus(key: str, quix_rate: float | None) -> str:
        """The baselines time their first record to their last, as `applied` does; the
        figures also wait for the last frames (`idle_ms`)."""
        if key not in report:
            return ""
        vs = [f"{report[key][rate] / base:.1f}x {name} {how}"
              for name, base in (("Faust", faust), ("Quix", quix_rate)) if base
              for rate, how in (("applied_ticks_per_s", "applied"),
                                ("ticks_per_s", "to the figures"))]
        return f" ({', '.join(vs)})" if vs else ""

    worker_row("h_worker_single", "h", "worker, loose, 1 tick/record",
               "goal >= 100,000/s" + versus("h_worker_single", quix))
    worker_row("i_worker_batched", "i", "worker, loose, 100 ticks/record", "goal >= 200,000/s")
    if "k_two_workers" in report:
        k = report["k_two_workers"]
        shares = "/".join(f"{x:,.0f}" for x in k["ticks_per_worker"])
        rows.append(("k", "two workers, 1 tick/record", f"{k['ticks_per_s']:>12,.0f} ticks/s",
                     f"ticks {shares}; results equal one worker: {k['equal_to_one_worker']}"))
        rows.append(("k", "  CPU and broker", f"workers {k['worker_cpu_s']:.1f} s, broker "
                     f"{k['broker_cpu_s']:.1f} s over {k['seconds']:.1f} s",
                     f"ticks applied at {k['applied_ticks_per_s']:,.0f}/s"))
    if "m_large_single" in report:
        ticks = report["m_large_single"]["ticks"]
        quix_m = report.get("m_quix", {}).get("ticks_per_s")
        worker_row("m_large_single", "m", f"worker, loose, 1 tick/record, {ticks:,}",
                   "goal >= 100,000/s" + versus("m_large_single", quix_m)
                   + (" (Quix on as many records)" if quix_m else ""))
        if "m_quix" in report:
            m_quix = report["m_quix"]
            rows.append(("m", "  Quix Streams, as many records",
                         f"{quix_m:>12,.0f} ticks/s" if quix_m
                         else f"error: {m_quix.get('error', '?')[:60]}", ""))
    for row in report.get("j_backtest", []):
        rows.append(("j", f"backtest, loose, {row['loose']['ticks']:,} ticks",
                     f"{row['loose']['ticks_per_s']:>12,.0f} ticks/s",
                     f"canonical {row['canonical']['ticks_per_s']:,.0f}/s "
                     f"({row['loose_over_canonical']:.2f}x); goal >= "
                     f"{'250' if row['loose']['ticks'] > 1_000_000 else '200'},000/s"))
    return rows
