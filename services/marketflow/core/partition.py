"""Per-partition state of `md.ticks`: stocks and indices, evaluated at each of their ticks.

One symbol lives in one partition, so a stock's figures and its alerts are computed where
its ticks arrive, in arrival order. What sectors and the market need from this partition
leaves as `FrameGroup`s: the absolute state of the stocks it changed, per event-time frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from marketflow.core.frames import SNAPSHOT_EVERY_MS, FrameGroup, FramePartial
from marketflow.core.output import NO_ALERTS, Alert, Output, Snapshot
from marketflow.core.records import RecordError, Tick
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import Evidence, RuleEngine, RuleSet
from marketflow.core.timeutil import (
    day_bounds,
    day_clock,
    day_number,
    to_rfc3339,
    trading_date,
)

PER_TICK_METRICS = ("stock.change_pct", "index.change_pct")


class StockState:
    __slots__ = (
        "in_universe",
        "last",
        "last_ts",
        "max_seq",
        "name",
        "prev_close",
        "sectors",
        "symbol",
        "trades",
        "turnover",
        "volume",
    )

    def __init__(self, symbol: str, name: str, prev_close: int, sectors: tuple[str, ...],
                 in_universe: bool) -> None:
        self.symbol = symbol
        self.name = name
        self.prev_close = prev_close
        self.sectors = sectors
        self.in_universe = in_universe
        self.last = prev_close
        self.last_ts = -1
        self.turnover = 0
        self.volume = 0
        self.trades = 0
        self.max_seq = -1

    def change_pct(self) -> float:
        return (self.last - self.prev_close) * 100 / self.prev_close

    def figures(self) -> dict[str, Any]:
        return {
            "last": self.last / 1000,
            "change_pct": self.change_pct(),
            "turnover_hkd": self.turnover / 100,
            "volume": self.volume,
            "trades": self.trades,
        }


class IndexState:
    __slots__ = ("level", "level_ts", "max_seq", "name", "prev_close", "symbol")

    def __init__(self, symbol: str, name: str, prev_close: int) -> None:
        self.symbol = symbol
        self.name = name
        self.prev_close = prev_close
        self.level = prev_close
        self.level_ts = -1
        self.max_seq = -1

    def change_pct(self) -> float:
        return (self.level - self.prev_close) * 100 / self.prev_close

    def figures(self) -> dict[str, Any]:
        return {"level": self.level / 1000, "change_pct": self.change_pct()}


class PartitionProcessor:
    """The state of one `md.ticks` partition for one trading day at a time."""

    def __init__(self, ref: ReferenceData, rules: RuleSet, frame_ms: int = 1000,
                 source: int = 0, emit_snapshots: bool = True) -> None:
        self.ref = ref
        self.emit_snapshots = emit_snapshots
        self.frame_ms = frame_ms
        self.source = source
        self.engine = RuleEngine(rules, PER_TICK_METRICS)
        self.closed: list[FrameGroup] = []  # closed frame groups not yet handed over
        self._snapshot_bucket = -1  # event-time stretch of the last snapshots made
        self._snapshots: list[Snapshot] = []  # a finished day's, not yet handed over
        self._stock_rules = self.engine.has_rules("stock.change_pct")
        self._index_rules = self.engine.has_rules("index.change_pct")
        # the evidence callbacks, read once (compiled, `self._stock_evidence` at each tick
        # is a generic attribute lookup)
        self._evidence_of_stock: Evidence = self._stock_evidence
        self._evidence_of_index: Evidence = self._index_evidence
        self.day: int | None = None
        self.day_start = 0
        self.day_end = 0
        self.watermark = -1
        self.duplicates = 0
        self._start_day(None)

    # -- day and frame bookkeeping ---------------------------------------------------

    def _start_day(self, day: int | None) -> None:
        self.day = day
        if day is not None:
            self.day_start, self.day_end = day_bounds(day)
            self._date = trading_date(self.day_start)
        self.stocks: dict[str, StockState] = {}
        self.indices: dict[str, IndexState] = {}
        self.market_turnover = 0
        self.frame: int | None = None
        self.frame_ticks = 0
        # universe stocks and indices changed in the open frame, and since the last
        # snapshots (dicts: insertion order, and the state at hand)
        self.changed: dict[str, StockState] = {}
        self.changed_indices: dict[str, IndexState] = {}
        self._due_stocks: dict[str, StockState] = {}
        self._due_indices: dict[str, IndexState] = {}
        self.engine.reset_day()

    def _close_frame(self) -> None:
        """Close the open frame group: a FrameGroup for sectors, snapshots for people."""
        if self.frame_ticks == 0 or self.frame is None or self.day is None:
            return
        changed = self.changed
        self.closed.append(FrameGroup(
            self.day, self.frame, self.frame_ticks,
            {symbol: (state.last, state.turnover) for symbol, state in changed.items()},
            self.market_turnover))
        if self.emit_snapshots:
            self._due_stocks.update(changed)
            if self.changed_indices:
                self._due_indices.update(self.changed_indices)
                self.changed_indices = {}
            bucket = self.frame * self.frame_ms // SNAPSHOT_EVERY_MS
            if bucket != self._snapshot_bucket:  # a new stretch of event time: due ones go
                self._snapshot_bucket = bucket
                self._due_snapshots(self._snapshots)
        elif self.changed_indices:
            self.changed_indices = {}
        self.changed = {}
        self.frame_ticks = 0

    def _due_snapshots(self, snapshots: list[Snapshot]) -> None:
        """One snapshot per stock or index changed in the frames closed since the last
        hand-over: at most one per key per frame (a second of event time), the latest."""
        snapshots += [self.stock_snapshot(state, False) for state in self._due_stocks.values()]
        snapshots += [self.index_snapshot(state, False) for state in self._due_indices.values()]
        self._due_stocks = {}
        self._due_indices = {}

    def emit(self) -> Output:
        """Hand over the closed frame groups as one partial, with the snapshots they make due."""
        out = Output()
        if self.closed:
            out.partials.append(FramePartial(self.source, self.watermark, tuple(self.closed)))
            self.closed = []
        if self._snapshots:
            out.snapshots, self._snapshots = self._snapshots, []
        if self._due_stocks or self._due_indices:
            self._due_snapshots(out.snapshots)
        return out

    def flush(self) -> Output:
        """Close the open frame and emit every closed group (end of input, or idle).

        The frame stays current: a tick that comes later in it (or late, for an earlier
        one) makes a second group of the same frame, so a source's groups never go back
        in frame number (the aggregator drops ones that do as re-deliveries)."""
        self._close_frame()
        return self.emit()

    # -- ticks -----------------------------------------------------------------------

    def advance(self, ts: int) -> None:
        """Move event time to `ts`: close the open frame (or day) if `ts` lies beyond it.

        Raises RecordError for a time before the current trading day."""
        if not self.day_start <= ts < self.day_end or self.day is None:
            day = day_number(ts)
            if self.day is not None and day < self.day:
                raise RecordError(
                    "stale_trading_day",
                    f"{trading_date(ts)} is before the current trading day "
                    f"{trading_date(self.day_start)}",
                )
            self._close_frame()  # the old day's groups stay in `closed` until emit()
            self._due_snapshots(self._snapshots)
            self._start_day(day)
        frame = ts // self.frame_ms
        if self.frame is None:
            self.frame = frame
        elif frame > self.frame:
            self._close_frame()
            self.frame = frame
        if ts > self.watermark:
            self.watermark = ts

    def set_rules(self, rules: RuleSet) -> None:
        self.engine.set_rules(rules)
        self._stock_rules = self.engine.has_rules("stock.change_pct")
        self._index_rules = self.engine.has_rules("index.change_pct")

    def in_open_frame(self, ts: int) -> bool:
        """Is event time `ts` inside the open frame, of the open day (nothing to
        `advance`)? The per-tick test of this class and of `Pipeline.on_tick`."""
        frame = self.frame  # (narrowed: compiled, an int compared with an `int | None` is boxed)
        return (frame is not None and ts // self.frame_ms == frame
                and self.day_start <= ts < self.day_end)

    def on_tick(self, tick: Tick) -> Sequence[Alert]:
        """Apply one tick; returns the alerts it fires. Raises RecordError for a tick that
        cannot be used. Frame groups and snapshots it closes wait for `emit()`."""
        ts = tick.ts
        if not self.in_open_frame(ts):
            self.advance(ts)
        elif ts > self.watermark:
            self.watermark = ts
        if tick.kind == "index":
            return self._on_index(tick)
        return self._on_trade(tick)

    def _on_trade(self, tick: Tick) -> Sequence[Alert]:
        symbol = tick.symbol
        state = self.stocks.get(symbol)
        if state is None:
            stock = self.ref.stocks.get(symbol)
            if stock is None:
                state = StockState(symbol, "", 1, (), False)
            else:
                state = StockState(symbol, stock.name, stock.prev_close, stock.sectors, True)
            self.stocks[symbol] = state
        seq = tick.seq
        if seq is not None:
            if seq <= state.max_seq:
                self.duplicates += 1
                return NO_ALERTS
            state.max_seq = seq
        self.frame_ticks += 1
        state.turnover += tick.turnover
        state.volume += tick.qty
        state.trades += 1
        self.market_turnover += tick.turnover
        if tick.ts >= state.last_ts:
            state.last = tick.price
            state.last_ts = tick.ts
        if not state.in_universe:
            return NO_ALERTS
        self.changed[symbol] = state
        if not self._stock_rules:
            return NO_ALERTS
        return self.engine.evaluate(
            "stock.change_pct", symbol, state.change_pct(), tick.ts, state.last / 1000,
            state.name, self._evidence_of_stock, state,
        )

    def _on_index(self, tick: Tick) -> Sequence[Alert]:
        symbol = tick.symbol
        state = self.indices.get(symbol)
        if state is None:
            index = self.ref.indices.get(symbol)
            if index is None:
                raise RecordError("unknown_index", f"{symbol} is not in the indices file")
            state = self.indices[symbol] = IndexState(symbol, index.name, index.prev_close)
        seq = tick.seq
        if seq is not None:
            if seq <= state.max_seq:
                self.duplicates += 1
                return NO_ALERTS
            state.max_seq = seq
        self.frame_ticks += 1
        if tick.ts >= state.level_ts:
            state.level = tick.price
            state.level_ts = tick.ts
        self.changed_indices[symbol] = state
        if not self._index_rules:
            return NO_ALERTS
        return self.engine.evaluate(
            "index.change_pct", symbol, state.change_pct(), tick.ts, state.level / 1000,
            state.name, self._evidence_of_index, state,
        )

    # -- evidence and snapshots ------------------------------------------------------

    @staticmethod
    def _stock_evidence(state: StockState) -> dict[str, Any]:
        return {
            "name": state.name,
            "last": state.last / 1000,
            "prev_close": state.prev_close / 1000,
            "turnover_hkd": state.turnover / 100,
            "volume": state.volume,
            "trades": state.trades,
            "sectors": list(state.sectors),
        }

    @staticmethod
    def _index_evidence(state: IndexState) -> dict[str, Any]:
        return {
            "name": state.name,
            "level": state.level / 1000,
            "prev_close": state.prev_close / 1000,
            "change_points": (state.level - state.prev_close) / 1000,
        }

    def _base(self, kind: str, subject: str, name: str, ts: int, final: bool) -> dict[str, Any]:
        if self.day_start <= ts < self.day_end:
            date = self._date
            stamp = date + day_clock(ts, self.day_start)
        else:
            date, stamp = trading_date(ts), to_rfc3339(ts)
        return {
            "type": kind,
            "subject": subject,
            "name": name,
            "trading_date": date,
            "ts": stamp,
            "final": final,
        }

    def stock_snapshot(self, state: StockState, final: bool) -> dict[str, Any]:
        ts = state.last_ts if state.last_ts >= 0 else self.day_start
        if self.day_start <= ts < self.day_end:  # the hot path: one dict, no datetime
            prev, last = state.prev_close, state.last
            return {
                "type": "stock", "subject": state.symbol, "name": state.name,
                "trading_date": self._date, "ts": self._date + day_clock(ts, self.day_start),
                "final": final, "prev_close": prev / 1000, "last": last / 1000,
                "change_pct": (last - prev) * 100 / prev, "turnover_hkd": state.turnover / 100,
                "volume": state.volume, "trades": state.trades,
            }
        record = self._base("stock", state.symbol, state.name, ts, final)
        record["prev_close"] = state.prev_close / 1000
        record.update(state.figures())
        return record

    def index_snapshot(self, state: IndexState, final: bool) -> dict[str, Any]:
        ts = state.level_ts if state.level_ts >= 0 else self.day_start
        record = self._base("index", state.symbol, state.name, ts, final)
        record["prev_close"] = state.prev_close / 1000
        record.update(state.figures())
        return record

    def final_snapshots(self) -> list[dict[str, Any]]:
        """Session-end snapshots of every stock and index this partition has seen."""
        out = [self.stock_snapshot(s, True) for _, s in sorted(self.stocks.items())
               if s.in_universe]
        out += [self.index_snapshot(i, True) for _, i in sorted(self.indices.items())]
        return out
