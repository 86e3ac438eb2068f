"""Southbound Stock Connect flows: net inflow per channel and in total, per update."""

from __future__ import annotations

from typing import Any

from marketflow.core.output import Output, Snapshot
from marketflow.core.records import RecordError, SouthboundUpdate
from marketflow.core.rules import RuleEngine, RuleSet
from marketflow.core.timeutil import day_number, to_rfc3339, trading_date

CHANNELS = ("SH", "SZ")
METRIC = "southbound.net_inflow_hkd"


class SouthboundBook:
    """Latest cumulative buy and sell per channel (cents) for one trading day at a time."""

    def __init__(self, rules: RuleSet) -> None:
        self.engine = RuleEngine(rules, (METRIC,))
        self.day: int | None = None
        self._reset()

    def _reset(self) -> None:
        self.buy = dict.fromkeys(CHANNELS, 0)
        self.sell = dict.fromkeys(CHANNELS, 0)
        self.latest_ts = dict.fromkeys(CHANNELS, -1)
        self.engine.reset_day()

    def on_update(self, update: SouthboundUpdate) -> Output:
        """Apply one update; returns the alerts it fires and the channel's and the total's
        snapshots. Raises RecordError for an update of a finished day."""
        day = day_number(update.ts)
        if self.day is None or day > self.day:
            self.day = day
            self._reset()
        elif day < self.day:
            raise RecordError("stale_trading_day",
                              f"{trading_date(update.ts)} is before the current trading day")
        channel = update.channel
        if update.ts >= self.latest_ts[channel]:
            self.buy[channel] = update.buy
            self.sell[channel] = update.sell
            self.latest_ts[channel] = update.ts
        out = Output()
        for subject in (channel, "total"):
            value = self.net(subject) / 100
            out.alerts += self.engine.evaluate(
                METRIC, subject, value, update.ts, value, subject, self.evidence,
            )
        stamp = {"trading_date": trading_date(update.ts), "ts": to_rfc3339(update.ts),
                 "final": False}
        out.snapshots = [
            {"type": "southbound", "subject": subject, **stamp, **self.figures(subject)}
            for subject in (channel, "total")
        ]
        return out

    def net(self, subject: str) -> int:
        if subject == "total":
            return sum(self.buy.values()) - sum(self.sell.values())
        return self.buy[subject] - self.sell[subject]

    def figures(self, subject: str) -> dict[str, float]:
        if subject == "total":
            buy, sell = sum(self.buy.values()), sum(self.sell.values())
        else:
            buy, sell = self.buy[subject], self.sell[subject]
        return {"buy_hkd": buy / 100, "sell_hkd": sell / 100, "net_hkd": (buy - sell) / 100}

    def evidence(self) -> dict[str, Any]:
        return {"channels": {s: self.figures(s) for s in (*CHANNELS, "total")}}

    def final(self) -> dict[str, dict[str, float]]:
        return {s: self.figures(s) for s in (*CHANNELS, "total")}

    def final_snapshots(self) -> list[Snapshot]:
        ts = max(self.latest_ts.values())
        if ts < 0:
            return []
        stamp = {"trading_date": trading_date(ts), "ts": to_rfc3339(ts), "final": True}
        return [{"type": "southbound", "subject": s, **stamp, **self.figures(s)}
                for s in (*CHANNELS, "total")]
