"""The whole computation in one process: ticks and southbound updates in, figures and alerts out.

`marketflow backtest` runs this. The live worker runs the same steps split across
partitions (a `PartitionProcessor` per `md.ticks` partition, their frame partials routed
to one `SectorAggregator` by the same `FrameRouter`, one `SouthboundBook`); here there is
a single source, whose watermark closes the frames.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from marketflow.core.frames import FrameClock, FrameRouter
from marketflow.core.output import Alert, Output, Snapshot
from marketflow.core.partition import PartitionProcessor
from marketflow.core.records import RecordError, SouthboundUpdate, Tick
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RuleSet
from marketflow.core.sectors import SectorAggregator
from marketflow.core.southbound import SouthboundBook
from marketflow.core.windows import DEFAULT_WINDOWS


def _offline_clock() -> float:
    return 0.0  # offline, sources are never idle: wall time plays no part


class Pipeline:
    def __init__(self, ref: ReferenceData, rules: RuleSet, frame_ms: int = 1000,
                 windows: Iterable[str] = DEFAULT_WINDOWS,
                 keep_snapshots: bool = False) -> None:
        self.ref = ref
        self.processor = PartitionProcessor(ref, rules, frame_ms, 0,
                                            emit_snapshots=keep_snapshots)
        self.aggregator = SectorAggregator(ref, rules, frame_ms, windows,
                                           emit_snapshots=keep_snapshots)
        self.router = FrameRouter(self.aggregator,
                                  FrameClock(1, frame_ms, idle_ms=None, now=_offline_clock))
        self.southbound = SouthboundBook(rules)
        self.keep_snapshots = keep_snapshots
        self.alerts: list[Alert] = []
        self.snapshots: list[Snapshot] = []
        self.rejected: Counter[str] = Counter()
        self.ticks = 0

    def on_tick(self, tick: Tick) -> None:
        processor = self.processor
        ts = tick.ts
        if not processor.in_open_frame(ts):
            try:
                processor.advance(ts)
            except RecordError as error:
                self.rejected[error.reason] += 1
                return
            if processor.closed:
                # frames before this tick close first: alerts come out in event-time order
                out = processor.emit()
                self._collect(out.add(self.router.route(out.partials)))
        try:
            alerts = processor.on_tick(tick)
        except RecordError as error:
            self.rejected[error.reason] += 1
            return
        self.ticks += 1
        if alerts:
            self.alerts += alerts

    def run(self, ticks: Iterable[Tick]) -> None:
        """`on_tick` for each of `ticks` (the loop of `marketflow backtest`)."""
        for tick in ticks:
            self.on_tick(tick)

    def on_southbound(self, update: SouthboundUpdate) -> None:
        try:
            out = self.southbound.on_update(update)
        except RecordError as error:
            self.rejected[error.reason] += 1
            return
        self._collect(out)

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def finish(self) -> None:
        """End of input: close the open frame and every pending one, emit final snapshots."""
        out = self.processor.flush()
        out.add(self.router.finish(out.partials))
        out.snapshots += self.processor.final_snapshots()
        out.snapshots += self.southbound.final_snapshots()
        self._collect(out)

    def _collect(self, out: Output) -> None:
        self.alerts += out.alerts
        if self.keep_snapshots:
            self.snapshots += out.snapshots

    @property
    def duplicates(self) -> int:
        return self.processor.duplicates

    def result(self) -> dict[str, Any]:
        """The `marketflow backtest --json` object (docs/contracts.md, "Backtest JSON")."""
        processor = self.processor
        indices = {}
        for symbol, index in self.ref.indices.items():
            state = processor.indices.get(symbol)
            level = state.level if state is not None else index.prev_close
            indices[symbol] = {
                "level": level / 1000,
                "change_pct": (level - index.prev_close) * 100 / index.prev_close,
            }
        stocks = {}
        for symbol, stock in self.ref.stocks.items():
            st = processor.stocks.get(symbol)
            if st is not None:
                stocks[symbol] = st.figures()
            else:
                stocks[symbol] = {"last": stock.prev_close / 1000, "change_pct": 0.0,
                                  "turnover_hkd": 0.0, "volume": 0, "trades": 0}
        sectors, market = self.aggregator.final_figures()
        for figures in sectors.values():
            figures.pop("level", None)
        return {
            "final": {
                "indices": indices,
                "stocks": stocks,
                "sectors": sectors,
                "market": market,
                "southbound": self.southbound.final(),
            },
            "alerts": self.alerts,
            "rejected": dict(sorted(self.rejected.items())),
            "duplicates": self.duplicates,
        }
