"""Sector gain rules in the aggregator, case by case: a sector whose values do not move is
still evaluated while a rule on it waits (its cooldown), and not otherwise."""

from __future__ import annotations

import pytest

from marketflow.core.pipeline import Pipeline
from marketflow.core.records import Tick
from marketflow.core.rules import parse_rules
from marketflow.core.timeutil import to_rfc3339
from tests.unit.core.test_pipeline_properties import BASE, WINDOWS, universe


def trade(seconds: int, symbol: str, price: int) -> Tick:
    return Tick(symbol, BASE + seconds * 1000, price, 100, price * 100 // 10, None, "trade")


def drugs_alerts(ticks: list[Tick], cooldown: str, window: str = "day") -> list[str]:
    rules = parse_rules({"rules": [{
        "id": "drugs-up", "metric": "sector.gain_pct", "window": window, "subjects": ["Drugs"],
        "op": ">=", "threshold": 5.0, "hysteresis": 1.0, "cooldown": cooldown,
        "max_per_day": 3}]})
    pipeline = Pipeline(universe(), rules, 1000, tuple(WINDOWS))
    for tick in ticks:
        pipeline.on_tick(tick)
    pipeline.finish()
    return [a["ts"] for a in pipeline.result()["alerts"]]


def at(seconds: int) -> str:
    return to_rfc3339(BASE + seconds * 1000)


# 00003 (in AI and Drugs) moves Drugs about +11.9% at 3,852 and back to 0% at 3,210;
# 00001 (Tech and AI) keeps frames coming without touching Drugs
UP_DOWN_UP = [trade(0, "00003", 3_852), trade(10, "00003", 3_210), trade(20, "00003", 3_852)]
OTHERS = [trade(s, "00001", 50_000 + s) for s in range(30, 100, 10)]


@pytest.mark.parametrize(("cooldown", "expected"), [
    # re-armed at 10 s and back above at 20 s, inside the cooldown: it fires at the first
    # frame past the cooldown although Drugs' values have not moved since 20 s
    ("60s", [at(1), at(61)]),
    ("0s", [at(1), at(21)]),  # no cooldown: at once
    ("5m", [at(1)]),  # past the last frame
])
def test_a_rule_waiting_out_its_cooldown_fires_without_a_new_value(cooldown: str,
                                                                   expected: list[str]) -> None:
    assert drugs_alerts(UP_DOWN_UP + OTHERS, cooldown) == expected


def test_a_rolling_window_re_arms_as_old_levels_leave_it() -> None:
    """Drugs' 1m gain falls back to 0 when the look-back passes the 0 s rise (the frame
    ending at 61 s), with no Drugs tick then: that re-arms the rule, which fires again at
    the next rise (71 s). Checked only where the values moved, a skipped re-arm would lose
    the second alert."""
    ticks = [trade(0, "00003", 3_852), trade(70, "00003", 4_300)]
    ticks += [trade(s, "00001", 50_000 + s) for s in range(5, 100, 5)]
    ticks.sort(key=lambda t: t.ts)
    assert drugs_alerts(ticks, "0s", window="1m") == [at(1), at(71)]
