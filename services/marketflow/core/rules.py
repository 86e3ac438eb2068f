"""Alert rules: the rules file, and the per-(rule, subject) crossing state machine.

Semantics (SPEC.md): each (rule, subject) is armed at the start of each trading day. At each
evaluation a disarmed rule re-arms once the value is back past threshold -/+ hysteresis;
an armed rule fires when its condition holds, no firing of it lies within `cooldown`
before this event time and it has fired fewer than `max_per_day` times that day. Firing
disarms it. Alert ids are the first 16 hex digits of sha256(`rule|subject|date|n`).
"""

from __future__ import annotations

import hashlib
import math
import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from marketflow.core.timeutil import hkt_clock, to_rfc3339, trading_date

METRICS = (
    "index.change_pct",
    "stock.change_pct",
    "sector.gain_pct",
    "sector.eq_gain_pct",
    "sector.turnover_hkd",
    "market.turnover_hkd",
    "southbound.net_inflow_hkd",
)
SEVERITIES = ("info", "warning", "critical")
_RULE_FIELDS = {
    "id", "metric", "subjects", "window", "op", "threshold", "hysteresis", "cooldown",
    "max_per_day", "severity", "message", "route",
}
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_DURATION = re.compile(r"^([0-9]+)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
# Fields a message template may use; every one is present for every metric.
MESSAGE_FIELDS = (
    "rule_id", "subject", "name", "metric", "window", "op", "threshold", "value", "level",
    "severity", "time", "ts", "trading_date",
)
DEFAULT_MESSAGE = "{rule_id}: {subject} {metric} = {value:,.4f} ({op} {threshold:,})"


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the rule id and the field."""


def parse_duration(text: object) -> int:
    """`"90s"` -> 90000 ms; units ms, s, m, h."""
    match = _DURATION.match(str(text).strip()) if text is not None else None
    if match is None:
        raise ValueError(f"not a duration (number + ms|s|m|h): {text!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


class _SafeFormatter(string.Formatter):
    """str.format without attribute or index access, so a template cannot reach objects."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if "." in field_name or "[" in field_name:
            raise KeyError(field_name)
        return super().get_field(field_name, args, kwargs)


_FORMATTER = _SafeFormatter()


def render_message(template: str, context: Mapping[str, Any]) -> str:
    return _FORMATTER.vformat(template, (), dict(context))


@dataclass(slots=True, frozen=True)
class Rule:
    id: str
    metric: str
    subjects: frozenset[str] | None  # None = "*"
    window: str  # "day" or a rolling window name such as "15m"
    op: str
    threshold: float
    hysteresis: float = 0.0
    cooldown_ms: int = 0
    max_per_day: int = 1
    severity: str = "info"
    message: str = DEFAULT_MESSAGE
    routes: tuple[str, ...] = ()

    def applies_to(self, subject: str) -> bool:
        return self.subjects is None or subject in self.subjects

    def holds(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    def rearms(self, value: float) -> bool:
        if self.op == ">=":
            return value < self.threshold - self.hysteresis
        return value > self.threshold + self.hysteresis


def _sample_context() -> dict[str, Any]:
    return {
        "rule_id": "r", "subject": "S", "name": "N", "metric": "m", "window": "day",
        "op": ">=", "threshold": 1.0, "value": 1.0, "level": 1.0, "severity": "info",
        "time": "09:30:00", "ts": "2025-11-24T09:30:00.000+08:00", "trading_date": "2025-11-24",
    }


def parse_rule(raw: object, windows: Iterable[str] = ("1m", "5m", "15m", "60m")) -> Rule:
    if not isinstance(raw, dict):
        raise RulesError(f"a rule must be a mapping, got {type(raw).__name__}")
    rule_id = raw.get("id")
    where = f"rule {rule_id!r}"

    def fail(field_name: str, reason: str) -> RulesError:
        return RulesError(f"{where}: {field_name}: {reason}")

    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise fail("id", "required; lowercase letters, digits, '.', '_' or '-'")
    unknown = sorted(set(raw) - _RULE_FIELDS)
    if unknown:
        raise fail(unknown[0], "unknown field")
    metric = raw.get("metric")
    if metric not in METRICS:
        raise fail("metric", f"must be one of {', '.join(METRICS)}; got {metric!r}")
    subjects_raw = raw.get("subjects", "*")
    subjects: frozenset[str] | None
    if subjects_raw == "*":
        subjects = None
    elif (
        isinstance(subjects_raw, list)
        and subjects_raw
        and all(isinstance(s, str | int) and str(s) for s in subjects_raw)
    ):
        subjects = frozenset(_subject(metric, str(s)) for s in subjects_raw)
    else:
        raise fail("subjects", f'"*" or a non-empty list of subjects; got {subjects_raw!r}')
    window = str(raw.get("window", "day"))
    if window != "day":
        if metric != "sector.gain_pct":
            raise fail("window", "only sector.gain_pct has rolling windows; use day")
        if window not in set(windows):
            raise fail("window", f"must be day or one of {', '.join(windows)}; got {window!r}")
    op = raw.get("op")
    if op not in (">=", "<="):
        raise fail("op", f'must be ">=" or "<="; got {op!r}')
    threshold = _number(raw.get("threshold"), fail, "threshold", required=True)
    hysteresis = _number(raw.get("hysteresis", 0.0), fail, "hysteresis")
    if hysteresis < 0:
        raise fail("hysteresis", "must be >= 0")
    try:
        cooldown_ms = parse_duration(raw.get("cooldown", "0s"))
    except ValueError as error:
        raise fail("cooldown", str(error)) from None
    max_per_day = raw.get("max_per_day", 1)
    if isinstance(max_per_day, bool) or not isinstance(max_per_day, int) or max_per_day < 1:
        raise fail("max_per_day", f"must be an integer >= 1; got {max_per_day!r}")
    severity = raw.get("severity", "info")
    if severity not in SEVERITIES:
        raise fail("severity", f"must be one of {', '.join(SEVERITIES)}; got {severity!r}")
    message = raw.get("message", DEFAULT_MESSAGE)
    if not isinstance(message, str):
        raise fail("message", "must be a string")
    try:
        render_message(message, _sample_context())
    except KeyError as error:
        raise fail("message",
                   f"unknown field {error.args[0]!r}; use {', '.join(MESSAGE_FIELDS)}") from None
    except (ValueError, IndexError, TypeError) as error:
        raise fail("message", f"bad template: {error}") from None
    route = raw.get("route", ())
    routes = (route,) if isinstance(route, str) else tuple(str(r) for r in route)
    return Rule(
        rule_id, metric, subjects, window, op, threshold, hysteresis, cooldown_ms,
        max_per_day, severity, message, routes,
    )


def _subject(metric: str, subject: str) -> str:
    if metric in ("index.change_pct", "sector.gain_pct", "sector.eq_gain_pct",
                  "sector.turnover_hkd", "market.turnover_hkd"):
        return subject
    if metric == "southbound.net_inflow_hkd":
        return subject if subject == "total" else subject.upper()
    return subject.zfill(5) if subject.isdigit() else subject


def _number(raw: object, fail: Callable[[str, str], RulesError], name: str,
            required: bool = False) -> float:
    if raw is None and required:
        raise fail(name, "required")
    if isinstance(raw, str):  # YAML 1.1 reads 8.0e9 (no exponent sign) as a string
        try:
            raw = float(raw.replace("_", ""))
        except ValueError:
            raise fail(name, f"must be a finite number; got {raw!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise fail(name, f"must be a finite number; got {raw!r}")
    return float(raw)


@dataclass(slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    routes: dict[str, Any] = field(default_factory=dict)

    def for_metric(self, metric: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.metric == metric)


def parse_rules(document: object, windows: Iterable[str] = ("1m", "5m", "15m", "60m")) -> RuleSet:
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RulesError("the rules file must be a mapping with a 'rules' list")
    windows = tuple(windows)
    rules = [parse_rule(raw, windows) for raw in document["rules"]]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise RulesError(f"rule {rule.id!r}: id: duplicate rule id")
        seen.add(rule.id)
    routes = document.get("routes") or {}
    if not isinstance(routes, dict):
        raise RulesError("routes: must be a mapping of route name to settings")
    return RuleSet(tuple(rules), routes)


def load_rules(path: Path, windows: Iterable[str] = ("1m", "5m", "15m", "60m")) -> RuleSet:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RulesError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise RulesError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse_rules(document, windows)
    except RulesError as error:
        raise RulesError(f"{path}: {error}") from None


def alert_id(rule_id: str, subject: str, date: str, n: int) -> str:
    return hashlib.sha256(f"{rule_id}|{subject}|{date}|{n}".encode()).hexdigest()[:16]


class _State:
    __slots__ = ("armed", "fired", "last_fire")

    def __init__(self) -> None:
        self.armed = True
        self.fired = 0
        self.last_fire: int | None = None


Evidence = Callable[[], dict[str, Any]]


class RuleEngine:
    """Evaluates the rules of some metrics; state per (rule, subject) for one trading day.

    `evaluate` returns the Alert records (plain dicts without `emitted_at`, which the
    adapter stamps with its wall clock) that fire at this evaluation.
    """

    def __init__(self, ruleset: RuleSet, metrics: Iterable[str]) -> None:
        self._metrics = tuple(metrics)
        self._states: dict[tuple[str, str], _State] = {}
        self._by_subject: dict[tuple[str, str], tuple[tuple[Rule, _State], ...]] = {}
        self.set_rules(ruleset)

    def set_rules(self, ruleset: RuleSet) -> None:
        """Swap in reloaded rules; a rule that keeps its id keeps its state for the day."""
        self._rules = {metric: ruleset.for_metric(metric) for metric in self._metrics}
        ids = {rule.id for rules in self._rules.values() for rule in rules}
        self._states = {key: st for key, st in self._states.items() if key[0] in ids}
        self._by_subject.clear()

    def has_rules(self, metric: str) -> bool:
        return bool(self._rules.get(metric))

    def reset_day(self) -> None:
        self._states.clear()
        self._by_subject.clear()

    def _entries(self, metric: str, subject: str) -> tuple[tuple[Rule, _State], ...]:
        key = (metric, subject)
        entries = self._by_subject.get(key)
        if entries is None:
            built = []
            for rule in self._rules.get(metric, ()):
                if rule.applies_to(subject):
                    state = self._states.setdefault((rule.id, subject), _State())
                    built.append((rule, state))
            entries = self._by_subject[key] = tuple(built)
        return entries

    def evaluate(
        self,
        metric: str,
        subject: str,
        values: Mapping[str, float] | float,
        ts: int,
        level: float,
        name: str,
        evidence: Evidence,
    ) -> list[dict[str, Any]]:
        """Evaluate every rule of `metric` on `subject`. `values` is the value, or for
        sector.gain_pct a mapping of window ("day", "15m", ...) to value."""
        fired: list[dict[str, Any]] = []
        windowed = type(values) is dict
        for rule, state in self._entries(metric, subject):
            value: float = values[rule.window] if windowed else values  # type: ignore[index,assignment]
            threshold = rule.threshold
            if not state.armed:
                if (value < threshold - rule.hysteresis if rule.op == ">="
                        else value > threshold + rule.hysteresis):
                    state.armed = True
                continue
            if not (value >= threshold if rule.op == ">=" else value <= threshold):
                continue
            if state.fired >= rule.max_per_day:
                continue
            last = state.last_fire
            if last is not None and 0 <= ts - last < rule.cooldown_ms:
                continue
            state.armed = False
            state.fired += 1
            state.last_fire = ts
            fired.append(self._alert(rule, subject, float(value), ts, level, name,  # type: ignore[arg-type]
                                     state.fired, evidence))
        return fired

    @staticmethod
    def _alert(rule: Rule, subject: str, value: float, ts: int, level: float, name: str,
               n: int, evidence: Evidence) -> dict[str, Any]:
        date = trading_date(ts)
        stamp = to_rfc3339(ts)
        context = {
            "rule_id": rule.id, "subject": subject, "name": name, "metric": rule.metric,
            "window": rule.window, "op": rule.op, "threshold": rule.threshold,
            "value": value, "level": level, "severity": rule.severity,
            "time": hkt_clock(ts), "ts": stamp, "trading_date": date,
        }
        return {
            "alert_id": alert_id(rule.id, subject, date, n),
            "rule_id": rule.id,
            "subject": subject,
            "metric": rule.metric,
            "window": rule.window,
            "op": rule.op,
            "threshold": rule.threshold,
            "value": value,
            "ts": stamp,
            "trading_date": date,
            "severity": rule.severity,
            "message": render_message(rule.message, context),
            "evidence": evidence(),
        }
