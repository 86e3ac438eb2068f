"""The whole computation in one process: ticks and southbound updates in, figures and alerts out.

`marketflow backtest` runs this. The live worker runs the same pieces split across
partitions (a `PartitionProcessor` per `md.ticks` partition, one `SectorAggregator` fed by
their frame partials, one `SouthboundBook`); here they are wired directly, with a single
source whose watermark closes the frames.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from marketflow.core.outbox import Outbox
from marketflow.core.partition import PartitionProcessor
from marketflow.core.records import RecordError, SouthboundUpdate, Tick
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RuleSet
from marketflow.core.sectors import SectorAggregator
from marketflow.core.southbound import SouthboundBook
from marketflow.core.windows import DEFAULT_WINDOWS


class Pipeline:
    def __init__(self, ref: ReferenceData, rules: RuleSet, frame_ms: int = 1000,
                 windows: Iterable[str] = DEFAULT_WINDOWS,
                 keep_snapshots: bool = False) -> None:
        self.ref = ref
        self.outbox = Outbox()
        self.processor = PartitionProcessor(ref, rules, frame_ms, 0, self.outbox,
                                            emit_snapshots=keep_snapshots)
        self.aggregator = SectorAggregator(ref, rules, frame_ms, windows, self.outbox,
                                           emit_snapshots=keep_snapshots)
        self.southbound = SouthboundBook(rules, self.outbox)
        self.keep_snapshots = keep_snapshots
        self.alerts: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = []
        self.rejected: Counter[str] = Counter()
        self.ticks = 0

    def on_tick(self, tick: Tick) -> None:
        processor = self.processor
        try:
            processor.advance(tick.ts)
        except RecordError as error:
            self.rejected[error.reason] += 1
            return
        if processor.closed:
            # frames before this tick close first, so alerts come out in event-time order
            processor.emit_partial()
            aggregator = self.aggregator
            for partial in self.outbox.partials:
                aggregator.on_partial(partial)
            self.outbox.partials.clear()
            aggregator.close_until_watermark(processor.watermark)
        try:
            processor.on_tick(tick)
        except RecordError as error:
            self.rejected[error.reason] += 1
            return
        self.ticks += 1
        if self.outbox.alerts or self.outbox.snapshots:
            self._collect()

    def on_southbound(self, update: SouthboundUpdate) -> None:
        try:
            self.southbound.on_update(update)
        except RecordError as error:
            self.rejected[error.reason] += 1
            return
        self._collect()

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def finish(self) -> None:
        """End of input: close the open frame and every pending one, emit final snapshots."""
        self.processor.flush()
        for partial in self.outbox.partials:
            self.aggregator.on_partial(partial)
        self.outbox.partials.clear()
        self.aggregator.close_all()
        self.aggregator.final_snapshots()
        self.outbox.snapshots += self.processor.final_snapshots()
        self.outbox.snapshots += self.southbound.final_snapshots()
        self._collect()

    def _collect(self) -> None:
        alerts, snapshots, _ = self.outbox.drain()
        self.alerts += alerts
        if self.keep_snapshots:
            self.snapshots += snapshots

    @property
    def duplicates(self) -> int:
        return self.processor.duplicates

    def result(self) -> dict[str, Any]:
        """The `marketflow backtest --json` object (SPEC.md)."""
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
