"""`make bench`: every figure of issue 6 from one run, against the embedded broker.

  a. worker throughput over a simulated day (ticks/s, md.ticks -> every output)
  b. the same job as a plain Faust agent, one JSON tick per record (baseline)
  c. the same job in Quix Streams (if it runs against the broker; else why not), taking
     turns with (h) `--rounds` times: each reports its median round
  d. core only: in-process, and `marketflow backtest` as a whole process
  e. latency at a paced 20k ticks/s: tick produced -> stock/index alert in Redis, and
     frame close -> sector/market alert in Redis (p50/p99/p99.9)
  f. peak RSS of the worker over the day
  g. time to recover a worker's full-day state after kill -9
  h-k. input shaped like the real world (tests/bench/realworld.py)
  l. the same with a previous day in md.ticks too: seconds, and records replayed (today's
     only) against records held
  m. a backlog of about 1M single-tick records in loose forms, to the day's figures, and
     Quix Streams on as many records

Writes bench-report.json and prints a table. Not part of `make test`: speed is measured
here, never asserted in tests. A fixed pure-Python loop is timed before and after the
rows: on a shared machine rates move by a third between runs, and it says by how much.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from marketflow.infra.embedded import EmbeddedStack
from tests.bench.common import ROOT, log
from tests.bench.latency import broker_alone, latency
from tests.bench.realworld import k_range, large_backlog, realworld, realworld_rows
from tests.bench.recovery import day_recovery
from tests.bench.throughput import baseline, core_only, dump_day, throughput_and_recovery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=3_000_000, help="trades in the day (a)")
    parser.add_argument("--baseline-ticks", type=int, default=200_000)
    parser.add_argument("--latency-rate", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--core-ticks", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-report.json")
    parser.add_argument("--loose-ticks", type=int, default=200_000,
                        help="trades in the loose-form day of (h, i, k)")
    parser.add_argument("--backtest-sizes", type=int, nargs="*", default=[300_000, 3_000_000],
                        help="trades in the loose-form days of (j)")
    parser.add_argument("--large-ticks", type=int, default=1_000_000,
                        help="trades in the large single-tick day of (m)")
    parser.add_argument("--recovery-ticks", type=int, default=5_000_000,
                        help="trades in each of the two days of (l)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of (h) and (c) Quix Streams, alternately; each reports "
                             "its median round")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="parts to skip: a b c d e f g h i j k l m")
    args = parser.parse_args()
    skip = set("".join(args.skip))
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                          "loop_10m_s_before": loop_seconds()},
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
            # with (h), (c) takes turns with it (realworld.head_to_head)
            if "c" not in skip and "h" in skip:
                report["c_quix"] = baseline("baseline_quix", stack, state, args.baseline_ticks)
                log(f"quix: {report['c_quix']}")
            if not skip >= set("hijk"):
                report.update(realworld(
                    stack, state, args.loose_ticks, args.backtest_sizes, skip,
                    max(1, args.rounds), None if "c" in skip else args.baseline_ticks))
            if "m" not in skip:
                report["m_large_single"] = large_backlog(stack, state, args.large_ticks)
                log(f"m: {report['m_large_single']}")
                if "c" not in skip:
                    report["m_quix"] = baseline("baseline_quix", stack, state,
                                                args.large_ticks)
                    log(f"quix, {args.large_ticks:,} records: {report['m_quix']}")
            if "l" not in skip:
                report["l_day_recovery"] = day_recovery(stack, state, args.recovery_ticks)
        finally:
            stack.stop()
        if "e" not in skip:  # on a broker of its own: tansu's memory store slows down as
            # it fills, and the rows before leave some 15M ticks in the first one
            stack = EmbeddedStack.start(state / "stack-e", owned=True)
            try:
                report["e_latency"] = latency(stack, state, args.latency_rate,
                                              args.latency_seconds)
                report["e_broker_alone"] = broker_alone(stack, args.latency_rate,
                                                        args.latency_seconds)
                log(f"broker alone: {report['e_broker_alone']}")
            finally:
                stack.stop()
    report["machine"]["loop_10m_s_after"] = loop_seconds()
    worker = report.get("a_worker", {}).get("ticks_per_s")
    single = report.get("h_worker_single", {}).get("ticks_per_s")
    for key in ("b_faust_baseline", "c_quix"):
        if key in report:
            rate = report[key].get("ticks_per_s")
            report[key]["worker_ratio"] = worker / rate if rate and worker else None
            report[key]["single_tick_worker_ratio"] = (single / rate if rate and single
                                                       else None)
    args.out.write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nreport: {args.out}")


def loop_seconds(steps: int = 10_000_000) -> float:
    """Seconds for a fixed pure-Python loop: how fast this machine runs Python now."""
    start = time.perf_counter()
    total = 0
    for step in range(steps):
        total += step
    return time.perf_counter() - start


def print_table(report: dict[str, Any]) -> None:
    def rate(result: dict[str, Any]) -> str:
        if "ticks_per_s" in result:
            return f"{result['ticks_per_s']:>12,.0f} ticks/s"
        return f"error: {result.get('error', '?')[:60]}"

    def latency_row(figures: dict[str, Any]) -> str:
        return (f"p50 {figures.get('p50_ms', 0):.1f} p99 {figures.get('p99_ms', 0):.1f} "
                f"p99.9 {figures.get('p999_ms', 0):.1f} ms")

    rows = []
    machine = report.get("machine", {})
    if "loop_10m_s_before" in machine:
        rows.append(("-", "machine: 10M-step Python loop",
                     f"{machine['loop_10m_s_before']:>12.2f} s before the rows",
                     f"{machine.get('loop_10m_s_after', 0):.2f} s after"))
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
        quix_rounds = [r["ticks_per_s"] for r in c.get("rounds", []) if "ticks_per_s" in r]
        if len(quix_rounds) > 1:
            rows.append(("c", f"  median of {len(c['rounds'])} rounds",
                         f"{k_range(quix_rounds)} ticks/s", "taking turns with (h)"))
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
    rows += realworld_rows(report)
    if "f_peak_rss_mb" in report:
        rows.append(("f", "worker peak RSS", f"{report['f_peak_rss_mb']:>12,.0f} MB",
                     "goal < 500 MB"))
    if "g_recovery_s" in report:
        rows.append(("g", "recovery after kill -9", f"{report['g_recovery_s']:>12.1f} s",
                     "goal <= 30 s"))
    if "l_day_recovery" in report:
        day = report["l_day_recovery"]
        rows.append(("l", "recovery, previous day in md.ticks", f"{day['recovery_s']:>12.1f} s",
                     f"replayed {day['records_replayed']:,} of {day['records_in_partitions']:,}"
                     f" records (today's: {day['records_today']:,})"))
    for row in rows:
        print(f"{row[0]}  {row[1]:<32} {row[2]:<44} {row[3]}")

if __name__ == "__main__":
    main()
