"""Sector and market figures on event-time frames, from every partition's frame groups.

`SectorAggregator` queues each partition's frame groups by frame, applies a closed frame's
groups to the day's `SectorBook` (`sectorbook.py`: the exact sums), keeps the level history
the rolling windows look back into, evaluates the sector and market rules and makes the
snapshots.
"""

from __future__ import annotations

import bisect
import heapq
import operator
from collections.abc import Iterable
from typing import Any, Final

from marketflow.core.frames import SNAPSHOT_EVERY_MS, FrameGroup, FramePartial
from marketflow.core.output import Alert, Output, Snapshot
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RuleEngine, RuleSet, parse_duration
from marketflow.core.sectorbook import SectorBook, gain_inside
from marketflow.core.timeutil import day_number, to_rfc3339, trading_date
from marketflow.core.windows import DEFAULT_WINDOWS

# Functions called per frame, as Final aliases: compiled, a name imported into the module
# is looked up in its dict at every call, a Final one is a C static.
bisect_right: Final = bisect.bisect_right
truediv: Final = operator.truediv

SECTOR_METRICS = (
    "sector.gain_pct", "sector.eq_gain_pct", "sector.turnover_hkd", "market.turnover_hkd",
)
CONTRIBUTORS_EVERY_MS: Final = 10_000


class SectorAggregator:
    """Closes event-time frames once every source partition has passed them.

    Sources (partitions of `md.ticks`) send `FramePartial`s; the adapter decides when a
    frame may close (every source's watermark past its end, or idle) and calls
    `close_through`. `marketflow backtest` has one source and closes on its watermark.
    """

    def __init__(self, ref: ReferenceData, rules: RuleSet, frame_ms: int = 1000,
                 windows: Iterable[str] = DEFAULT_WINDOWS,
                 emit_snapshots: bool = True) -> None:
        self.ref = ref
        self.emit_snapshots = emit_snapshots
        self.frame_ms = frame_ms
        self.windows = tuple(windows)
        self.window_frames: dict[str, int] = {}
        for window in self.windows:
            ms = parse_duration(window)
            if ms % frame_ms:
                raise ValueError(f"window {window} is not a multiple of the frame ({frame_ms} ms)")
            self.window_frames[window] = ms // frame_ms
        self.max_window = max(self.window_frames.values(), default=0)
        self.engine = RuleEngine(rules, SECTOR_METRICS)
        self._rule_windows = self._windows_of(rules)
        self.book = SectorBook(ref)
        self.day: int | None = None
        self.market_parts: dict[int, int] = {}  # source -> its cumulative market turnover
        self.pending: dict[int, list[tuple[int, FrameGroup]]] = {}
        self._pending_frames: list[int] = []  # heap of the keys of `pending`
        self._snapshot_due = False
        self._snapshot_bucket = -1  # event-time stretch of the last snapshots made
        self.closed_through = -1
        self.more_ready = False  # the last close_through stopped at its max_frames
        self.last_frame: int | None = None
        self.history_frames: list[int] = []
        self.history_levels: list[list[int]] = []
        # sectors each history frame changed, as a mask (bit s: sector s; see SectorBook)
        self.history_touched: list[int] = []
        # Sector gain rules are checked only where a value can have changed (see
        # `_gain_candidates`): the history index each rule window looked back to at the
        # last check, and the sectors whose last check was not quiet (or never made)
        self._lookback_at: dict[str, int] = {}
        self._unsettled = self.book.all_sectors  # a mask
        self.watermarks: dict[int, int] = {}
        self.source_frames: dict[int, int] = {}  # source -> latest frame of its groups
        # groups dropped (exported as marketflow_frame_groups_dropped_total{reason})
        self.redelivered_groups = 0  # older than their source's latest: re-deliveries
        self.stale_groups = 0  # of a trading day already closed
        self._emitted_ms: dict[str, int] = {}
        self._contributors: dict[int, list[dict[str, Any]]] = {}
        self._contributors_at = -CONTRIBUTORS_EVERY_MS

    # -- input -----------------------------------------------------------------------

    def on_partial(self, partial: FramePartial) -> None:
        """Queue a source's frame groups for their frames.

        A source's groups come in non-decreasing frame order and hold absolute values, so
        a group older than the latest one seen from its source is a re-delivery (a rebuilt
        partition re-sending its day, or the Kafka copy of a partial already applied
        locally): applying it would put stale prices back for a frame, so it is dropped."""
        latest = self.source_frames
        source = partial.source
        for group in partial.groups:
            frame = group.frame
            if frame < latest.get(source, -1):
                self.redelivered_groups += 1
                continue
            latest[source] = frame
            if frame <= self.closed_through:
                if self.day is not None and group.day < self.day:
                    self.stale_groups += 1
                    continue
                frame = self.closed_through + 1  # late: it applies to the next open frame
                group = FrameGroup(group.day, frame, 0, group.stocks, group.market_turnover)
            if frame not in self.pending:
                self.pending[frame] = []
                heapq.heappush(self._pending_frames, frame)
            self.pending[frame].append((source, group))
        if partial.watermark > self.watermarks.get(partial.source, -1):
            self.watermarks[partial.source] = partial.watermark

    def close_through(self, frame_limit: int, max_frames: int | None = None) -> Output:
        """Evaluate every pending frame <= frame_limit, in order: the alerts they fire,
        then one snapshot per sector touched by them (the latest), and of the market.
        With `max_frames`, at most that many (the live worker closes a long run of frames
        in steps, so that its event loop is not held for seconds): `more_ready` then says
        whether some frame <= frame_limit is still pending, and `closed_through` stops at
        the last frame evaluated (later groups for the others still join them)."""
        out = Output()
        heap = self._pending_frames
        budget = -1 if max_frames is None else max_frames
        self.more_ready = False
        while heap and heap[0] <= frame_limit:
            if budget == 0:
                frame_limit = heap[0] - 1  # the frames from here on stay open
                self.more_ready = True
                break
            budget -= 1
            frame = heapq.heappop(heap)
            self._evaluate(frame, self.pending.pop(frame), out)
            bucket = frame * self.frame_ms // SNAPSHOT_EVERY_MS
            if self._snapshot_due and bucket != self._snapshot_bucket:
                # many frames closed at once (a backlog): one snapshot per stretch of
                # event time on the way, so that intraday history keeps its shape
                self._snapshot_bucket = bucket
                self._emit(frame, False, out.snapshots)
                self._snapshot_due = False
                self.book.touched = 0
        if frame_limit > self.closed_through:
            self.closed_through = frame_limit
        if self._snapshot_due and self.last_frame is not None:
            self._emit(self.last_frame, False, out.snapshots)
            self._snapshot_due = False
            self.book.touched = 0
        return out

    def close_all(self, max_frames: int | None = None) -> Output:
        if not self.pending:
            self.more_ready = False
            return Output()
        return self.close_through(max(self.pending), max_frames)

    # -- evaluation ------------------------------------------------------------------

    def _start_day(self, day: int) -> None:
        self.day = day
        self.book.reset()
        self.market_parts = {}
        self.history_frames = []
        self.history_levels = []
        self.history_touched = []
        self.book.frame_touched = 0
        self._lookback_at = {}
        self._unsettled = self.book.all_sectors
        self.engine.reset_day()

    @property
    def market_turnover(self) -> int:
        return sum(self.market_parts.values())

    def _evaluate(self, frame: int, groups: list[tuple[int, FrameGroup]], out: Output) -> None:
        day = day_number(frame * self.frame_ms)
        if self.day is None or day > self.day:
            if self._snapshot_due and self.last_frame is not None:
                self._emit(self.last_frame, False, out.snapshots)  # the old day's, first
                self._snapshot_due = False
            self._start_day(day)
        book = self.book
        ticks = 0
        for source, group in groups:
            if group.day != self.day:
                self.stale_groups += 1
                continue
            changed = False
            for symbol, (last, turnover) in group.stocks.items():
                changed |= book.apply(symbol, last, turnover)
            if self.market_parts.get(source) != group.market_turnover:
                self.market_parts[source] = group.market_turnover
                changed = True
            ticks += group.ticks or int(changed)
        if ticks == 0:
            return
        self.last_frame = frame
        self._record_history(frame)
        self._evaluate_rules(frame, out.alerts)
        self._prune_history(frame)
        if self.emit_snapshots:
            self._snapshot_due = True

    def _record_history(self, frame: int) -> None:
        book = self.book
        if self.emit_snapshots:
            book.touched |= book.frame_touched
        self.history_frames.append(frame)
        self.history_levels.append(book.levels())
        self.history_touched.append(book.frame_touched)
        book.frame_touched = 0

    def _prune_history(self, frame: int) -> None:
        horizon = frame - self.max_window
        keep_from = bisect_right(self.history_frames, horizon) - 1
        if keep_from > 64:  # prune in chunks: keep the last entry at or before the horizon
            del self.history_frames[:keep_from]
            del self.history_levels[:keep_from]
            del self.history_touched[:keep_from]
            # every window looked back at or after the horizon at this frame
            self._lookback_at = {w: i - keep_from for w, i in self._lookback_at.items()}

    def set_rules(self, rules: RuleSet) -> None:
        self.engine.set_rules(rules)
        self._rule_windows = self._windows_of(rules)
        self._unsettled = self.book.all_sectors

    def _windows_of(self, rules: RuleSet) -> dict[str, int]:
        """The rolling windows some sector.gain_pct rule looks at (only those are computed
        for rule evaluation at every frame; snapshots and evidence have them all)."""
        used = {rule.window for rule in rules.for_metric("sector.gain_pct")}
        return {w: span for w, span in self.window_frames.items() if w in used}

    def _lookback(self, frame: int, windows: dict[str, int] | None = None,
                  ) -> list[tuple[str, list[int] | None]]:
        """Per window, the level vector at the end of frame - W/D (None: the day's start)."""
        frames, levels = self.history_frames, self.history_levels
        out: list[tuple[str, list[int] | None]] = []
        for window, span in (self.window_frames if windows is None else windows).items():
            i = bisect_right(frames, frame - span) - 1
            out.append((window, levels[i] if i >= 0 else None))  # never mutated
        return out

    def rolling(self, frame: int, s: int,
                lookback: list[tuple[str, list[int] | None]] | None = None,
                ) -> dict[str, float]:
        sector = self.book.sectors[s]
        now = sector.cap_num
        start = sector.cap_den
        out = {}
        for window, levels in lookback if lookback is not None else self._lookback(frame):
            before = levels[s] if levels is not None else start
            out[window] = truediv((now - before) * 100, before)
        return out

    def _evaluate_rules(self, frame: int, alerts: list[Alert]) -> None:
        engine = self.engine
        book = self.book
        ts = (frame + 1) * self.frame_ms
        evidence = self._sector_evidence  # a callback: bound once
        sectors = book.sectors
        gain_rules = engine.has_rules("sector.gain_pct")
        eq_rules = engine.has_rules("sector.eq_gain_pct")
        turnover_rules = engine.has_rules("sector.turnover_hkd")
        lookback = self._lookback(frame, self._rule_windows) if gain_rules else []
        before_by_window = dict(lookback)
        names = book.names
        candidates = self._gain_candidates(frame) if gain_rules else 0
        every = eq_rules or turnover_rules
        for s in range(len(names)):
            candidate = (candidates >> s) & 1
            if not candidate and not every:
                continue
            name = names[s]
            sector = sectors[s]
            now = sector.cap_num
            start = sector.cap_den
            if candidate:
                if self._gains_quiet(name, s, now, start, before_by_window):
                    self._unsettled &= ~(1 << s)
                else:
                    self._unsettled |= 1 << s
                    values = {"day": truediv((now - start) * 100, start)}  # = gain_pct(s)
                    for window, levels in lookback:  # as rolling()
                        before = levels[s] if levels is not None else start
                        values[window] = truediv((now - before) * 100, before)
                    fired = engine.evaluate("sector.gain_pct", name, values, ts,
                                            truediv(now, start), name, evidence, frame, s)
                    if fired:
                        alerts += fired
            if eq_rules:
                fired = engine.evaluate("sector.eq_gain_pct", name, book.eq_gain_pct(s), ts,
                                        truediv(now, start), name, evidence, frame, s)
                if fired:
                    alerts += fired
            if turnover_rules:
                value = sector.turnover / 100
                fired = engine.evaluate("sector.turnover_hkd", name, value, ts, value, name,
                                        evidence, frame, s)
                if fired:
                    alerts += fired
        if engine.has_rules("market.turnover_hkd"):
            value = self.market_turnover / 100
            alerts += engine.evaluate("market.turnover_hkd", "market", value, ts, value,
                                      "market", self._market_figures)

    def _gain_candidates(self, frame: int) -> int:
        """The sectors whose sector.gain_pct values may differ from their last check, or
        whose last check was not quiet: the others were inside every quiet band then and
        still are (same level, same look-back levels, same rule state), so they are
        skipped. A sector's level changes only in the frames that touch it (the history
        keeps those per frame), so a window's look-back level moves from one history entry
        to a later one only for the sectors touched in the entries in between. A mask."""
        out = self._unsettled | self.history_touched[-1]
        frames, touched = self.history_frames, self.history_touched
        for window, span in self._rule_windows.items():
            i = bisect_right(frames, frame - span) - 1  # as _lookback()
            last = self._lookback_at.get(window, -1)  # -1: the day's start
            if i != last:
                for k in range(last + 1, i + 1):
                    out |= touched[k]
                self._lookback_at[window] = i
        return out

    def _gains_quiet(self, name: str, s: int, now: int, start: int,
                     before_by_window: dict[str, list[int] | None]) -> bool:
        """True if no sector.gain_pct rule of sector `s` can fire or re-arm at this frame
        (every window's gain inside its quiet band): the usual case, checked without
        building the values."""
        for window, lo, hi in self.engine.quiet_bands("sector.gain_pct", name):
            levels = None if window == "day" else before_by_window[window]
            before = levels[s] if levels is not None else start  # None: the day's start
            if not gain_inside(now, before, lo, hi):
                return False
        return True

    # -- records ---------------------------------------------------------------------

    def _sector_evidence(self, frame: int, s: int) -> dict[str, Any]:
        figures = self.sector_figures(frame, s, self._lookback(frame))
        figures["top_contributors"] = self.book.top_contributors(s)
        figures["level"] = self.book.level(s)
        return figures

    def sector_figures(self, frame: int, s: int,
                       lookback: list[tuple[str, list[int] | None]] | None = None,
                       ) -> dict[str, Any]:
        book = self.book
        sector = book.sectors[s]
        return {
            "gain_pct": book.gain_pct(s),
            "eq_gain_pct": book.eq_gain_pct(s),
            "turnover_hkd": sector.turnover / 100,
            "advancers": sector.advancers,
            "decliners": sector.decliners,
            "unchanged": sector.unchanged,
            "rolling": self.rolling(frame, s, lookback),
        }

    def _market_figures(self) -> dict[str, Any]:
        advancers, decliners, unchanged = self.book.market_breadth
        return {
            "turnover_hkd": self.market_turnover / 100,
            "advancers": advancers,
            "decliners": decliners,
            "unchanged": unchanged,
        }

    def _emit(self, frame: int, final: bool, snapshots: list[Snapshot]) -> None:
        end = (frame + 1) * self.frame_ms
        head = {"trading_date": trading_date(end - 1), "ts": to_rfc3339(end), "final": final}
        book = self.book
        touched = book.touched
        sectors = [s for s in range(len(book.names)) if final or (touched >> s) & 1]
        lookback = self._lookback(frame)
        # contributors cost O(members): fresh every `CONTRIBUTORS_EVERY_MS` of event time
        # and at the session end; alerts always compute them fresh for their evidence
        refresh = final or end - self._contributors_at >= CONTRIBUTORS_EVERY_MS
        if refresh:
            self._contributors_at = end
        for s in sectors:
            name = book.names[s]
            if not final and not self._due(f"sector:{name}", end):
                continue
            record = {"type": "sector", "subject": name, **head,
                      "level": book.level(s)}
            record.update(self.sector_figures(frame, s, lookback))
            if refresh or s not in self._contributors:
                self._contributors[s] = book.top_contributors(s)
            record["top_contributors"] = self._contributors[s]
            snapshots.append(record)
        if final or self._due("market", end):
            snapshots.append({"type": "market", "subject": "market", **head,
                              **self._market_figures()})

    def _due(self, key: str, end: int) -> bool:
        """At most one snapshot per key per second of event time (frames may be shorter)."""
        if self.frame_ms >= 1000:
            return True
        last = self._emitted_ms.get(key)
        if last is not None and end - last < 1000:
            return False
        self._emitted_ms[key] = end
        return True

    def final_snapshots(self) -> list[Snapshot]:
        """Snapshots of every sector and the market after all input (after `close_all`)."""
        snapshots: list[Snapshot] = []
        if self.last_frame is not None:
            self._emit(self.last_frame, True, snapshots)
        return snapshots

    def final_figures(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Sectors and market as `marketflow backtest` prints them."""
        frame = self.last_frame if self.last_frame is not None else 0
        sectors = {name: self.sector_figures(frame, s) for s, name in enumerate(self.book.names)}
        return sectors, self._market_figures()
