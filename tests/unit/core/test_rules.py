"""Rule semantics: table-driven cases and a property against a declarative scan."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketflow.core.rules import (
    RuleEngine,
    RulesError,
    alert_id,
    parse_duration,
    parse_rule,
    parse_rules,
)
from tests.unit.core.reference import scan_alerts

T0 = 1_763_947_800_000  # 2025-11-24 09:30 HKT


def engine_for(**fields: object) -> RuleEngine:
    rule = {"id": "r", "metric": "index.change_pct", "op": ">=", "threshold": 2.0, **fields}
    return RuleEngine(parse_rules({"rules": [rule]}), ("index.change_pct",))


def fire_points(engine: RuleEngine, series: list[tuple[int, float]]) -> list[int]:
    out = []
    for i, (ts, value) in enumerate(series):
        if engine.evaluate("index.change_pct", "HSTECH", value, ts, 1.0, "n", dict):
            out.append(i)
    return out


@pytest.mark.parametrize(
    ("fields", "values", "expected"),
    [
        ({}, [1.0, 1.9, 2.0, 2.5, 1.0, 2.1], [2]),  # crossing up, max_per_day 1
        ({}, [2.3, 2.4], [0]),  # first evaluation already past the threshold
        ({"max_per_day": 3}, [1.0, 2.0, 1.9, 2.1, 1.5, 2.2], [1, 3, 5]),  # re-arm below
        ({"max_per_day": 3, "hysteresis": 0.5}, [2.0, 1.6, 2.1, 1.4, 2.0], [0, 4]),
        ({"op": "<=", "threshold": -2.0}, [0.0, -1.0, -2.0, -3.0], [2]),  # crossing down
        ({"op": "<=", "threshold": -2.0, "max_per_day": 2, "hysteresis": 0.2},
         [-2.0, -1.9, -2.5, -1.7, -2.1], [0, 4]),
        ({}, [1.0, 1.5, 1.99], []),  # never crosses
    ],
)
def test_crossings(fields: dict, values: list[float], expected: list[int]) -> None:
    series = [(T0 + i * 1000, v) for i, v in enumerate(values)]
    assert fire_points(engine_for(**fields), series) == expected


def test_cooldown_is_event_time() -> None:
    engine = engine_for(max_per_day=5, cooldown="10s")
    series = [(T0, 2.0), (T0 + 1000, 1.0), (T0 + 5000, 2.5), (T0 + 9000, 1.0),
              (T0 + 10_000, 2.5)]
    # the firing at +5 s is blocked (within 10 s of the first); at +10 s it may fire again
    assert fire_points(engine, series) == [0, 4]


def test_day_rollover_rearms_and_resets_counts() -> None:
    engine = engine_for()
    assert fire_points(engine, [(T0, 2.5), (T0 + 1000, 2.6)]) == [0]
    engine.reset_day()
    assert fire_points(engine, [(T0 + 86_400_000, 2.7)]) == [0]


def test_subjects_star_and_list() -> None:
    rules = parse_rules({"rules": [
        {"id": "all", "metric": "stock.change_pct", "op": ">=", "threshold": 5},
        {"id": "tencent", "metric": "stock.change_pct", "subjects": ["700"], "op": ">=",
         "threshold": 5},
    ]})
    engine = RuleEngine(rules, ("stock.change_pct",))
    fired = engine.evaluate("stock.change_pct", "00700", 6.0, T0, 1.0, "n", dict)
    assert [a["rule_id"] for a in fired] == ["all", "tencent"]
    fired = engine.evaluate("stock.change_pct", "09988", 6.0, T0, 1.0, "n", dict)
    assert [a["rule_id"] for a in fired] == ["all"]


def test_rolling_window_rule_reads_its_window() -> None:
    rules = parse_rules({"rules": [{"id": "w", "metric": "sector.gain_pct", "window": "15m",
                                    "op": ">=", "threshold": 1.5}]})
    engine = RuleEngine(rules, ("sector.gain_pct",))
    assert not engine.evaluate("sector.gain_pct", "AI", {"day": 3.0, "15m": 1.0}, T0, 1, "", dict)
    fired = engine.evaluate("sector.gain_pct", "AI", {"day": 0.0, "15m": 1.6}, T0, 1, "", dict)
    assert fired[0]["window"] == "15m" and fired[0]["value"] == 1.6


def test_alert_ids_are_deterministic() -> None:
    expected = hashlib.sha256(b"r|HSTECH|2025-11-24|1").hexdigest()[:16]
    assert alert_id("r", "HSTECH", "2025-11-24", 1) == expected
    first = engine_for().evaluate("index.change_pct", "HSTECH", 2.5, T0, 5545.56, "n", dict)
    again = engine_for().evaluate("index.change_pct", "HSTECH", 2.5, T0, 5545.56, "n", dict)
    assert first[0]["alert_id"] == again[0]["alert_id"] == expected
    assert first[0]["ts"] == "2025-11-24T09:30:00.000+08:00"
    assert first[0]["trading_date"] == "2025-11-24"


def test_message_template_renders() -> None:
    engine = engine_for(message="{subject} {value:+.2f}% at {level:,.2f}")
    fired = engine.evaluate("index.change_pct", "HSTECH", 2.0312, T0, 5503.2, "n", dict)
    assert fired[0]["message"] == "HSTECH +2.03% at 5,503.20"


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"metric": "nope"}, "metric"),
        ({"op": ">"}, "op"),
        ({"threshold": "high"}, "threshold"),
        ({"hysteresis": -1}, "hysteresis"),
        ({"cooldown": "10 minutes"}, "cooldown"),
        ({"max_per_day": 0}, "max_per_day"),
        ({"severity": "fatal"}, "severity"),
        ({"message": "{subject} {price}"}, "message"),
        ({"message": "{subject.__class__}"}, "message"),
        ({"window": "15m"}, "window"),  # rolling windows are for sector.gain_pct only
        ({"subjects": []}, "subjects"),
        ({"thresold": 2}, "thresold"),
    ],
)
def test_bad_rules_name_rule_and_field(rule: dict, field: str) -> None:
    raw = {"id": "bad-rule", "metric": "index.change_pct", "op": ">=", "threshold": 2, **rule}
    with pytest.raises(RulesError) as error:
        parse_rule(raw)
    assert "bad-rule" in str(error.value) and field in str(error.value)


def test_duplicate_ids_rejected() -> None:
    rule = {"id": "a", "metric": "market.turnover_hkd", "op": ">=", "threshold": 1}
    with pytest.raises(RulesError, match="duplicate"):
        parse_rules({"rules": [rule, rule]})


@pytest.mark.parametrize(("text", "ms"), [("90s", 90_000), ("15m", 900_000), ("250ms", 250),
                                          ("2h", 7_200_000), ("0s", 0)])
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.sampled_from([-3.0, -2.0, -1.5, -1.0, 0.0, 1.0, 1.5, 1.9, 2.0, 2.5, 3.0]),
                    min_size=1, max_size=30),
    gaps=st.lists(st.integers(0, 20_000), min_size=30, max_size=30),
    op=st.sampled_from([">=", "<="]),
    hysteresis=st.sampled_from([0.0, 0.5, 1.0]),
    cooldown_s=st.sampled_from([0, 5, 30]),
    max_per_day=st.integers(1, 4),
)
def test_engine_equals_declarative_scan(values: list[float], gaps: list[int], op: str,
                                        hysteresis: float, cooldown_s: int,
                                        max_per_day: int) -> None:
    threshold = 2.0 if op == ">=" else -2.0
    ts, series = T0, []
    for value, gap in zip(values, gaps, strict=False):
        ts += gap
        series.append((ts, value))
    engine = engine_for(op=op, threshold=threshold, hysteresis=hysteresis,
                        cooldown=f"{cooldown_s}s", max_per_day=max_per_day)
    expected = scan_alerts(series, op, threshold, hysteresis, cooldown_s * 1000, max_per_day)
    assert fire_points(engine, series) == expected


def test_reloaded_rules_keep_the_state_of_rules_that_keep_their_id() -> None:
    """A reload mid-day must not fire a kept rule again; a new rule starts armed; a rule
    left out is gone."""
    up = {"id": "up", "metric": "index.change_pct", "op": ">=", "threshold": 2.0}
    engine = RuleEngine(parse_rules({"rules": [up]}), ("index.change_pct",))
    assert fire_points(engine, [(T0, 2.5)]) == [0]
    moved = dict(up, threshold=2.2)  # same id, new threshold: still fired today
    new = {"id": "new", "metric": "index.change_pct", "op": ">=", "threshold": 2.4}
    engine.set_rules(parse_rules({"rules": [moved, new]}))
    fired = engine.evaluate("index.change_pct", "HSTECH", 2.6, T0 + 1000, 1.0, "n", dict)
    assert [a["rule_id"] for a in fired] == ["new"]
    engine.set_rules(parse_rules({"rules": [new]}))
    assert not engine.evaluate("index.change_pct", "HSTECH", 3.0, T0 + 2000, 1.0, "n", dict)


rule_fields = st.fixed_dictionaries({
    "op": st.sampled_from([">=", "<="]),
    "threshold": st.sampled_from([-2.0, -1.0, 0.0, 1.0, 2.0]),
    "hysteresis": st.sampled_from([0.0, 0.5, 1.0]),
    "cooldown_s": st.sampled_from([0, 5, 30]),
    "max_per_day": st.integers(1, 3),
    "window": st.sampled_from(["day", "15m"]),
})


@settings(max_examples=300, deadline=None)
@given(
    rules=st.lists(rule_fields, min_size=1, max_size=4),
    points=st.lists(st.tuples(st.integers(0, 20_000),
                              st.sampled_from([-3.0, -2.0, -1.5, -1.0, 0.0, 0.5, 1.0, 1.5,
                                               2.0, 2.5, 3.0, float("nan")]),
                              st.sampled_from([-2.5, -1.0, 0.0, 1.0, 2.5])),
                    min_size=1, max_size=40),
)
def test_several_rules_on_one_subject_equal_one_scan_each(rules: list[dict],
                                                          points: list[tuple]) -> None:
    """Several windowed rules on one subject (where `evaluate` skips values that lie inside
    every rule's quiet band): each rule fires exactly where a declarative scan of its own
    window's series says, whatever the others do."""
    specs = [{"id": f"r{i}", "metric": "sector.gain_pct", "op": f["op"],
              "threshold": f["threshold"], "hysteresis": f["hysteresis"],
              "cooldown": f"{f['cooldown_s']}s", "max_per_day": f["max_per_day"],
              "window": f["window"]} for i, f in enumerate(rules)]
    engine = RuleEngine(parse_rules({"rules": specs}), ("sector.gain_pct",))
    ts, series, fired = T0, [], {spec["id"]: [] for spec in specs}
    for i, (gap, day, rolling) in enumerate(points):
        ts += gap
        series.append((ts, {"day": day, "15m": rolling}))
        for alert in engine.evaluate("sector.gain_pct", "AI", {"day": day, "15m": rolling},
                                     ts, 1.0, "AI", dict):
            fired[alert["rule_id"]].append(i)
    for spec, f in zip(specs, rules, strict=True):
        own = [(t, values[f["window"]]) for t, values in series]
        expected = scan_alerts(own, f["op"], f["threshold"], f["hysteresis"],
                               f["cooldown_s"] * 1000, f["max_per_day"])
        assert fired[spec["id"]] == expected, spec
