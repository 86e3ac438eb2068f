"""What a core step produces, returned to its caller: alerts, snapshots and frame partials.

Every step of the core (`PartitionProcessor`, `SectorAggregator`, `SouthboundBook`,
`FrameRouter`) returns its outputs as values; the caller decides where they go (the
backtest collects them, the live worker routes them to Kafka, Redis and metrics in one
place). Nothing is left behind in a shared bag for somebody else to drain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from marketflow.core.frames import FramePartial

Alert = dict[str, Any]
NO_ALERTS: Final[tuple[Alert, ...]] = ()  # what a step that fires nothing returns
Snapshot = dict[str, Any]


@dataclass(slots=True, init=False)  # its own __init__: see core/frames.py
class Output:
    alerts: list[Alert]
    snapshots: list[Snapshot]
    partials: list[FramePartial]

    def __init__(self, alerts: list[Alert] | None = None,
                 snapshots: list[Snapshot] | None = None,
                 partials: list[FramePartial] | None = None) -> None:
        self.alerts = [] if alerts is None else alerts
        self.snapshots = [] if snapshots is None else snapshots
        self.partials = [] if partials is None else partials

    def __bool__(self) -> bool:
        return bool(self.alerts or self.snapshots or self.partials)

    def add(self, other: Output) -> Output:
        """Append `other`'s outputs after this one's (order is firing order); returns self."""
        if other.alerts:
            self.alerts += other.alerts
        if other.snapshots:
            self.snapshots += other.snapshots
        if other.partials:
            self.partials += other.partials
        return self
