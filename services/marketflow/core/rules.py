"""Alert rules: loading the rules file (its checks in rules_spec.py), and the per-(rule, subject)
crossing state machine.

Semantics (SPEC.md): each (rule, subject) is armed at the start of each trading day. At each
evaluation a disarmed rule re-arms once the value is back past threshold -/+ hysteresis;
an armed rule fires when its condition holds, no firing of it lies within `cooldown`
before this event time and it has fired fewer than `max_per_day` times that day. Firing
disarms it. Alert ids are the first 16 hex digits of sha256(`rule|subject|date|n`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from marketflow.core.output import NO_ALERTS
from marketflow.core.rules_spec import (
    DEFAULT_MESSAGE,
    MESSAGE_FIELDS,
    METRICS,
    SEVERITIES,
    RulesError,
    RulesFile,
    RuleSpec,
    check_rule,
    check_rules_file,
    render_message,
)
from marketflow.core.timeutil import hkt_clock, to_rfc3339, trading_date
from marketflow.core.windows import DEFAULT_WINDOWS, parse_duration
from marketflow.core.yamlfile import YamlFileError, read_yaml

__all__ = [
    "DEFAULT_MESSAGE", "MESSAGE_FIELDS", "METRICS", "SEVERITIES", "Rule", "RuleEngine",
    "RuleSet", "RuleSpec", "RulesError", "RulesFile", "alert_id", "load_rules",
    "parse_duration", "parse_rule", "parse_rules", "render_message",
]


@dataclass(slots=True, frozen=True)
class Rule:
    """A validated rule as the engine reads it on the hot path (built from a RuleSpec)."""

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

    @classmethod
    def from_spec(cls, spec: RuleSpec) -> Rule:
        subjects = (None if spec.subjects == "*"
                    else frozenset(_subject(spec.metric, str(s)) for s in spec.subjects))
        return cls(spec.id, spec.metric, subjects, spec.window, spec.op, spec.threshold,
                   spec.hysteresis, spec.cooldown_ms, spec.max_per_day, spec.severity,
                   spec.message, spec.routes)

    def applies_to(self, subject: str) -> bool:
        return self.subjects is None or subject in self.subjects


def _subject(metric: str, subject: str) -> str:
    if metric in ("index.change_pct", "sector.gain_pct", "sector.eq_gain_pct",
                  "sector.turnover_hkd", "market.turnover_hkd"):
        return subject
    if metric == "southbound.net_inflow_hkd":
        return subject if subject == "total" else subject.upper()
    return subject.zfill(5) if subject.isdigit() else subject


@dataclass(slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    routes: dict[str, Any] = field(default_factory=dict)

    def for_metric(self, metric: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.metric == metric)


def parse_rule(raw: object, windows: Iterable[str] = DEFAULT_WINDOWS) -> Rule:
    """One rule of a rules file; RulesError names the rule and the field."""
    return Rule.from_spec(check_rule(raw, tuple(windows)))


def parse_rules(document: object, windows: Iterable[str] = DEFAULT_WINDOWS) -> RuleSet:
    """A rules document (the YAML, loaded); RulesError names the rule and the field."""
    spec = check_rules_file(document, tuple(windows))
    return RuleSet(tuple(Rule.from_spec(rule) for rule in spec.rules), dict(spec.routes))


def load_rules(path: Path, windows: Iterable[str] = DEFAULT_WINDOWS) -> RuleSet:
    """The rules file at `path` (YAML, at most 1 MiB); RulesError starts with the path."""
    try:
        document = read_yaml(path)
    except YamlFileError as error:
        raise RulesError(str(error)) from None
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


Evidence = Callable[..., dict[str, Any]]
_INF: Final = float("inf")


class _Plan:
    """The rules of one (metric, subject) with their states, and the values for which
    evaluating them would do nothing: per window, `lo < value < hi`.

    A value inside every band can neither fire a rule nor re-arm one, so `evaluate`
    returns at once; the bands change only when some rule's state does (firing, re-arming,
    a new day or new rules), and are worked out again then. Almost every evaluation of a
    day (a stock's change at each trade, each sector's gains at each frame) lies far
    from any threshold."""

    __slots__ = ("bands", "entries")

    def __init__(self, entries: tuple[tuple[Rule, _State], ...]) -> None:
        self.entries = entries
        self.bands: tuple[tuple[str, float, float], ...] = ()
        self.rebuild_bands()

    def rebuild_bands(self) -> None:
        bounds: dict[str, list[float]] = {}
        for rule, state in self.entries:
            band = bounds.setdefault(rule.window, [-_INF, _INF])
            up = rule.op == ">="
            if state.armed:
                if state.fired >= rule.max_per_day:
                    continue  # can neither fire nor change state today
                if up:  # fires at value >= threshold
                    band[1] = min(band[1], rule.threshold)
                else:
                    band[0] = max(band[0], rule.threshold)
            elif up:  # re-arms at value < threshold - hysteresis
                band[0] = max(band[0], rule.threshold - rule.hysteresis)
            else:
                band[1] = min(band[1], rule.threshold + rule.hysteresis)
        self.bands = tuple((window, lo, hi) for window, (lo, hi) in bounds.items())


class RuleEngine:
    """Evaluates the rules of some metrics; state per (rule, subject) for one trading day.

    `evaluate` returns the Alert records (plain dicts without `emitted_at`, which the
    adapter stamps with its wall clock) that fire at this evaluation.
    """

    def __init__(self, ruleset: RuleSet, metrics: Iterable[str]) -> None:
        self._metrics = tuple(metrics)
        self._states: dict[tuple[str, str], _State] = {}
        # metric -> subject -> plan (two lookups by string: cheaper than one by a tuple
        # made for it, at every evaluation)
        self._plans: dict[str, dict[str, _Plan]] = {}
        self.set_rules(ruleset)

    def set_rules(self, ruleset: RuleSet) -> None:
        """Swap in reloaded rules; a rule that keeps its id keeps its state for the day."""
        self._rules = {metric: ruleset.for_metric(metric) for metric in self._metrics}
        ids = {rule.id for rules in self._rules.values() for rule in rules}
        self._states = {key: st for key, st in self._states.items() if key[0] in ids}
        self._plans.clear()

    def has_rules(self, metric: str) -> bool:
        return bool(self._rules.get(metric))

    def quiet_bands(self, metric: str, subject: str) -> tuple[tuple[str, float, float], ...]:
        """Per window, `(window, lo, hi)`: while every value lies strictly inside its band,
        `evaluate` fires nothing and changes nothing (a caller may skip building values
        it would pass). Valid until the next `evaluate` of this metric and subject."""
        plans = self._plans.get(metric)
        plan = plans.get(subject) if plans is not None else None
        if plan is None:
            plan = self._plan(metric, subject)
        return plan.bands

    def reset_day(self) -> None:
        self._states.clear()
        self._plans.clear()

    def _plan(self, metric: str, subject: str) -> _Plan:
        built = []
        for rule in self._rules.get(metric, ()):
            if rule.applies_to(subject):
                state = self._states.setdefault((rule.id, subject), _State())
                built.append((rule, state))
        plan = self._plans.setdefault(metric, {})[subject] = _Plan(tuple(built))
        return plan

    def evaluate(
        self,
        metric: str,
        subject: str,
        values: Mapping[str, float] | float,
        ts: int,
        level: float,
        name: str,
        evidence: Evidence,
        *evidence_args: Any,
    ) -> Sequence[dict[str, Any]]:
        """Evaluate every rule of `metric` on `subject`. `values` is the value, or for
        sector.gain_pct a mapping of window ("day", "15m", ...) to value. `evidence(*args)`
        is called for each alert that fires."""
        plans = self._plans.get(metric)
        plan = plans.get(subject) if plans is not None else None
        if plan is None:
            plan = self._plan(metric, subject)
        windowed = type(values) is dict
        value: float
        for window, lo, hi in plan.bands:
            value = values[window] if windowed else values  # type: ignore[index,assignment]
            if not lo < value < hi:
                break
        else:
            return NO_ALERTS
        fired: list[dict[str, Any]] = []
        changed = False
        for rule, state in plan.entries:
            value = values[rule.window] if windowed else values  # type: ignore[index,assignment]
            threshold = rule.threshold
            if not state.armed:
                if (value < threshold - rule.hysteresis if rule.op == ">="
                        else value > threshold + rule.hysteresis):
                    state.armed = True
                    changed = True
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
            changed = True
            fired.append(self._alert(rule, subject, float(value), ts, level, name,
                                     state.fired, evidence, evidence_args))
        if changed:
            plan.rebuild_bands()
        return fired

    @staticmethod
    def _alert(rule: Rule, subject: str, value: float, ts: int, level: float, name: str,
               n: int, evidence: Evidence, evidence_args: tuple[Any, ...]) -> dict[str, Any]:
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
            "evidence": evidence(*evidence_args),
        }
