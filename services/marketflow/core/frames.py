"""Event-time frames: what a partition hands to the sector aggregator, and when frames close.

`FrameGroup` and `FramePartial` carry a partition's state per frame; `FrameClock` decides
which frames may close from the sources' watermarks; `FrameRouter` is the one wiring of
partitions -> aggregator, used by `marketflow backtest` (one source) and by the live worker
(a source per `md.ticks` partition). How partials travel between workers (the partials
topic, its record format, the in-process hand-off) is the live adapter's business:
`marketflow.stream.partials`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from marketflow.core.output import Output

if TYPE_CHECKING:
    from marketflow.core.sectors import SectorAggregator

# However many frames one call closes (a backlog read in large slices), snapshots of what
# changed come out at least once per this much event time: intraday history stays dense.
SNAPSHOT_EVERY_MS: Final = 15_000


# The dataclasses made on the hot path (a FrameGroup per partition per frame, an `Output`
# per step) write their own `__init__` (`init=False`): compiled, the one `dataclass`
# generates is interpreted Python behind a generic call, about 2.5k instructions a
# construction against ~100 for a compiled one (docs/design.md, "Sixth round"). They stay
# dataclasses: orjson writes them natively, and they compare and print as before.


@dataclass(slots=True, init=False)
class FrameGroup:
    """Absolute state, at the end of one event-time frame, of what one partition changed.

    `stocks` maps a universe symbol to (last price in thousandths, turnover in cents);
    `market_turnover` is the partition's cumulative turnover of the day (every trade,
    universe or not). Absolute values make re-delivery harmless: applying a group twice
    changes nothing.

    Never changed once made (treat as frozen): one is made per partition per frame with
    ticks, about one per tick on a sparse partition, and `frozen=True` would triple the
    cost of making it.
    """

    day: int
    frame: int
    ticks: int
    stocks: dict[str, tuple[int, int]]
    market_turnover: int

    def __init__(self, day: int, frame: int, ticks: int, stocks: dict[str, tuple[int, int]],
                 market_turnover: int) -> None:
        self.day = day
        self.frame = frame
        self.ticks = ticks
        self.stocks = stocks
        self.market_turnover = market_turnover


@dataclass(slots=True, init=False)
class FramePartial:
    """One partition's closed frame groups plus its watermark (largest event time seen).
    Never changed once made (treat as frozen, as `FrameGroup`)."""

    source: int
    watermark: int
    groups: tuple[FrameGroup, ...]

    def __init__(self, source: int, watermark: int, groups: tuple[FrameGroup, ...]) -> None:
        self.source = source
        self.watermark = watermark
        self.groups = groups


class FrameClock:
    """Which frames may close, from source watermarks and (live) wall-clock idleness.

    Frame k closes once every source's watermark has passed its end (docs/contracts.md,
    "Evaluation clock"). Live, a source silent for `idle_ms` of wall time is left out, and
    after a quiet spell every source gets `idle_ms` of grace to report in before it can be
    left out, so the first partition to wake up cannot close frames the others still hold.
    Offline (`idle_ms=None`) sources are never idle: input order is the only clock.

    Silence means "nothing to say" only when nothing of the source is waiting: a source
    whose input is still unread (a backlog: the broker serves partitions in turn), whose
    partials wait in the partials topic, or that says it is behind (a keep-alive partial
    without groups) is late, not idle, and is waited for. `busy(source)` (this worker's
    unread input of a source) and `input_pending` (unread partials) are set by the adapter.
    `now` is injected (monotonic seconds), so this is tested with a fake clock.
    """

    def __init__(self, sources: int, frame_ms: int, idle_ms: int | None,
                 now: Callable[[], float], busy: Callable[[int], bool] | None = None,
                 ) -> None:
        self.sources = sources
        self.frame_ms = frame_ms
        self.idle_s = float("inf") if idle_ms is None else idle_ms / 1000
        self.now = now
        start = now()
        self.heard = dict.fromkeys(range(sources), start)
        self.watermarks = dict.fromkeys(range(sources), -1)
        self.resumed_at = start
        self.quiet = True  # until the first partial: then every source gets its grace
        self.busy = busy if busy is not None else _never
        self.input_pending = False

    def heard_from(self, source: int, watermark: int) -> None:
        now = self.now()
        if self.quiet:
            self.quiet = False
            self.resumed_at = now
        self.heard[source] = now
        if watermark > self.watermarks.get(source, -1):
            self.watermarks[source] = watermark

    def idle(self, source: int, now: float | None = None) -> bool:
        """Silent for `idle_ms` of wall time, and nothing of it pending (see above)."""
        now = self.now() if now is None else now
        if now - max(self.heard.get(source, 0.0), self.resumed_at) <= self.idle_s:
            return False
        return not (self.input_pending or self.busy(source))  # asked only when silent

    def all_idle(self) -> bool:
        return all(self.idle(s) for s in range(self.sources))

    def closable_through(self) -> int | None:
        """The last frame every active source has passed, or None if some source holds all."""
        now = self.now()
        active = [self.watermarks[s] for s in range(self.sources) if not self.idle(s, now)]
        if not active:
            return None
        return min(active) // self.frame_ms - 1


def _never(_: int) -> bool:
    return False


class FrameRouter:
    """Partitions' frame partials -> the sector aggregator, frames closed on the clock.

    The one wiring of the two halves of the computation: `marketflow backtest` routes its
    single processor's partials here, the live worker the partials of every partition
    (read from the partials topic or handed over in-process). Each call returns what the
    frames it closed produced.
    """

    def __init__(self, aggregator: SectorAggregator, clock: FrameClock) -> None:
        self.aggregator = aggregator
        self.clock = clock

    def route(self, partials: Iterable[FramePartial], max_frames: int | None = None,
              ) -> Output:
        """Queue partials for their frames, then close every frame the clock allows (at
        most `max_frames`: `more_ready` then says whether more may close now)."""
        aggregator, clock = self.aggregator, self.clock
        for partial in partials:
            aggregator.on_partial(partial)
            clock.heard_from(partial.source, partial.watermark)
        return self.close_ready(max_frames)

    def close_ready(self, max_frames: int | None = None) -> Output:
        through = self.clock.closable_through()
        if through is None:
            self.aggregator.more_ready = False
            return Output()
        return self.aggregator.close_through(through, max_frames)

    @property
    def more_ready(self) -> bool:
        """The last close stopped at its `max_frames` with frames left it may close."""
        return self.aggregator.more_ready

    def finish(self, partials: Iterable[FramePartial] = (),
               max_frames: int | None = None) -> Output:
        """End of input (or every source quiet): queue `partials`, close every pending
        frame and add the final sector and market snapshots. With `max_frames`, at most
        that many close: while `more_ready`, call again for the rest (and the snapshots)."""
        aggregator = self.aggregator
        for partial in partials:
            aggregator.on_partial(partial)
            self.clock.heard_from(partial.source, partial.watermark)
        out = aggregator.close_all(max_frames)
        if aggregator.more_ready:
            return out
        out.snapshots += aggregator.final_snapshots()
        self.clock.quiet = True  # input that comes later starts a new grace period
        return out
