"""Sectors past the 62nd: the aggregator keeps the sectors a frame touched, and those whose
last rule check was not quiet, as bit masks (bit s: sector s), machine integers up to 62
sectors and CPython integers past them. A universe of 70 one-stock sectors: the rules, the
snapshots and the figures of the highest sectors are those of the lowest."""

from __future__ import annotations

import pytest

from marketflow.core.pipeline import Pipeline
from marketflow.core.records import Tick
from marketflow.core.refdata import ReferenceData, Stock
from marketflow.core.rules import parse_rules

BASE = 1_763_947_800_000  # 2025-11-24 09:30 HKT
SECTORS = 70
RULES = {"rules": [
    {"id": "up", "metric": "sector.gain_pct", "op": ">=", "threshold": 0.5,
     "hysteresis": 0.1, "max_per_day": 10},
    {"id": "fast", "metric": "sector.gain_pct", "window": "1m", "op": "<=",
     "threshold": -0.5, "max_per_day": 10},
]}


def universe() -> ReferenceData:
    stocks = {f"{i:05d}": Stock(f"{i:05d}", f"N{i}", 10_000, 1_000, (f"S{i:02d}",), 100)
              for i in range(1, SECTORS + 1)}
    return ReferenceData(stocks, {})


def run(moves: list[tuple[int, int, int]]) -> tuple[list[dict], list[dict], dict]:
    """(stock number, seconds after the open, price in thousandths) per tick."""
    pipeline = Pipeline(universe(), parse_rules(RULES, ("1m",)), 1000, ("1m",),
                        keep_snapshots=True)
    for number, seconds, price in moves:
        pipeline.on_tick(Tick(f"{number:05d}", BASE + seconds * 1000, price, 100,
                              price * 10, None))
    pipeline.finish()
    return pipeline.alerts, pipeline.snapshots, pipeline.result()["final"]["sectors"]


@pytest.mark.parametrize("number", [1, 40, 62, 63, 64, 70])
def test_a_sector_past_the_62nd_alerts_and_snapshots_as_the_first(number: int) -> None:
    moves = [(number, 1, 10_100),  # +1%: "up" fires
             (number, 20, 10_000),  # back to the day's start: re-arms
             (number, 30, 10_080),  # +0.8%: fires again
             (number, 100, 10_020)]  # -0.6% on the minute before: "fast" fires
    alerts, snapshots, sectors = run(moves)
    name = f"S{number:02d}"
    assert [(a["rule_id"], a["subject"]) for a in alerts] == [
        ("up", name), ("up", name), ("fast", name)]
    # one snapshot per frame that moved it (frames 1 s, far apart), and the final ones
    moving = [s["subject"] for s in snapshots if s["type"] == "sector" and not s["final"]]
    assert moving == [name] * 4
    finals = [s["subject"] for s in snapshots if s["type"] == "sector" and s["final"]]
    assert finals == sorted(f"S{i:02d}" for i in range(1, SECTORS + 1))
    assert sectors[name]["gain_pct"] == pytest.approx(0.2)
    assert sectors[name]["advancers"] == 1
    assert all(figures["gain_pct"] == 0.0 for subject, figures in sectors.items()
               if subject != name)


def test_every_sector_at_once() -> None:
    """All 70 move in one frame: each is checked, and each fires once."""
    alerts, snapshots, _ = run([(i, 5, 10_100) for i in range(1, SECTORS + 1)])
    assert sorted(a["subject"] for a in alerts) == sorted(
        f"S{i:02d}" for i in range(1, SECTORS + 1))
    moving = [s["subject"] for s in snapshots if s["type"] == "sector" and not s["final"]]
    assert moving == sorted(f"S{i:02d}" for i in range(1, SECTORS + 1))
