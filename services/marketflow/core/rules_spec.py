"""The alert rules file: what a rules file may say, its checks and their messages.

`check_rules_file(document, windows)` checks a loaded rules document and `check_rule(raw,
windows)` one rule (the rolling windows a rule may use default to `DEFAULT_WINDOWS`); both
raise one RulesError naming the rule and the field of every problem found. Each field of a
rule is a row of `RULE_FIELDS`: its name, default, check and JSON Schema; `rules_schema()`
assembles `schemas/rules.schema.json` from them (`make schemas`).

Plain Python, no validation library: every `marketflow backtest` and worker starts here,
and importing pydantic and building models was ~0.2 s of each start (docs/design.md,
"Eighth round").
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from marketflow.core.windows import DEFAULT_WINDOWS, DURATION_PATTERN, parse_duration

METRICS: tuple[str, ...] = (
    "index.change_pct",
    "stock.change_pct",
    "sector.gain_pct",
    "sector.eq_gain_pct",
    "sector.turnover_hkd",
    "market.turnover_hkd",
    "southbound.net_inflow_hkd",
)
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
OPS: tuple[str, ...] = (">=", "<=")
ROLLING_METRIC = "sector.gain_pct"  # the one metric with rolling windows
ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
WINDOW_PATTERN = r"^(day|[0-9]+(ms|s|m|h))$"
_ID = re.compile(ID_PATTERN)
# Fields a message template may use; every one is present for every metric.
MESSAGE_FIELDS = (
    "rule_id", "subject", "name", "metric", "window", "op", "threshold", "value", "level",
    "severity", "time", "ts", "trading_date",
)
DEFAULT_MESSAGE = "{rule_id}: {subject} {metric} = {value:,.4f} ({op} {threshold:,})"
MAX_FORMAT_WIDTH = 100  # of a field in a message template, and its precision
_DIGITS = re.compile(r"[0-9]+")
NOT_A_RULES_FILE = "the rules file must be a mapping with a 'rules' list"


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the rule id and the field."""


class _Invalid(Exception):
    """A field's value cannot be used; the message is the reason."""


class _SafeFormatter(string.Formatter):
    """str.format without attribute or index access, so a template cannot reach objects."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if "." in field_name or "[" in field_name:
            raise KeyError(field_name)
        return super().get_field(field_name, args, kwargs)


_FORMATTER = _SafeFormatter()


def render_message(template: str, context: Mapping[str, Any]) -> str:
    return _FORMATTER.vformat(template, (), dict(context))


def _sample_context() -> dict[str, Any]:
    return {
        "rule_id": "r", "subject": "S", "name": "N", "metric": "m", "window": "day",
        "op": ">=", "threshold": 1.0, "value": 1.0, "level": 1.0, "severity": "info",
        "time": "09:30:00", "ts": "2025-11-24T09:30:00.000+08:00", "trading_date": "2025-11-24",
    }


# ---- the checks of a rule's fields: (value, the fields checked before it, windows) -> value

def _number(raw: object) -> float:
    if isinstance(raw, str):  # YAML 1.1 reads 8.0e9 (no exponent sign) as a string
        try:
            raw = float(raw.replace("_", ""))
        except ValueError:
            raise _Invalid(f"must be a finite number; got {raw!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _Invalid(f"must be a finite number; got {raw!r}")
    return float(raw)


def _choice(value: object, choices: Sequence[str], text: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _Invalid(f"must be {text}; got {value!r}")
    return value


def _check_id(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise _Invalid("required; lowercase letters, digits, '.', '_' or '-'")
    return value


def _check_metric(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> str:
    return _choice(value, METRICS, f"one of {', '.join(METRICS)}")


def _check_subjects(value: object, _: Mapping[str, Any],
                    __: tuple[str, ...]) -> str | tuple[str, ...]:
    if value == "*":
        return "*"
    if (isinstance(value, list) and value
            and all(isinstance(s, str | int) and str(s) for s in value)):
        return tuple(str(s) for s in value)
    raise _Invalid(f'"*" or a non-empty list of subjects; got {value!r}')


def _check_window(value: object, checked: Mapping[str, Any], windows: tuple[str, ...]) -> str:
    window = str(value)
    metric = checked.get("metric")
    if window == "day" or metric is None:  # a bad metric is reported on its own
        return window
    if metric != ROLLING_METRIC:
        raise _Invalid(f"only {ROLLING_METRIC} has rolling windows; use day")
    if window not in windows:
        raise _Invalid(f"must be day or one of {', '.join(windows)}; got {window!r}")
    return window


def _check_op(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> str:
    return _choice(value, OPS, '">=" or "<="')


def _check_threshold(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> float:
    if value is None:
        raise _Invalid("required")
    return _number(value)


def _check_hysteresis(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> float:
    number = _number(value)
    if number < 0:
        raise _Invalid("must be >= 0")
    return number


def _check_cooldown(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> str:
    try:
        parse_duration(value)
    except ValueError as error:
        raise _Invalid(str(error)) from None
    return str(value).strip()


def _check_max_per_day(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid(f"must be an integer >= 1; got {value!r}")
    return value


def _check_severity(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> str:
    return _choice(value, SEVERITIES, f"one of {', '.join(SEVERITIES)}")


def _check_message(value: object, _: Mapping[str, Any], __: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    try:
        for _literal, name, spec, _conversion in _FORMATTER.parse(value):
            # the sample below renders with sample values: a width taken from a field (a
            # threshold of 3e11), or written too wide, would pass it and then make a
            # string of gigabytes at the first alert
            if spec and "{" in spec:
                raise _Invalid(f"bad template: a field inside the format of {{{name}}}")
            if spec and any(int(n) > MAX_FORMAT_WIDTH for n in _DIGITS.findall(spec)):
                raise _Invalid(f"bad template: a width or precision past {MAX_FORMAT_WIDTH} "
                               f"in {{{name}:{spec}}}")
        render_message(value, _sample_context())
    except KeyError as error:
        raise _Invalid(f"unknown field {error.args[0]!r}; use {', '.join(MESSAGE_FIELDS)}",
                       ) from None
    except (ValueError, IndexError, TypeError) as error:
        raise _Invalid(f"bad template: {error}") from None
    return value


def _check_route(value: object, _: Mapping[str, Any],
                 __: tuple[str, ...]) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(r, str | int) for r in value):
        return tuple(str(r) for r in value)
    raise _Invalid(f"a route name or a list of route names; got {value!r}")


class _Required:
    """The default of a field that has none: it must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


@dataclass(frozen=True, slots=True)
class RuleField:
    """One field of a rule: its default (REQUIRED when it has none), its check, and its JSON
    Schema (the default is added to it where there is one)."""

    name: str
    default: Any
    check: Callable[[object, Mapping[str, Any], tuple[str, ...]], Any]
    schema: dict[str, Any]


# YAML 1.1 reads 8.0e9 (no exponent sign) as a string; numbers may be written either way.
_NUMBER_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "description": "a number (a string such as 8.0e9 is read as one)",
}

# In this order: the order of a rule's problems in an error, and of the schema's properties
RULE_FIELDS: tuple[RuleField, ...] = (
    RuleField("id", REQUIRED, _check_id, {"type": "string", "pattern": ID_PATTERN}),
    RuleField("metric", REQUIRED, _check_metric, {"type": "string", "enum": list(METRICS)}),
    RuleField("subjects", "*", _check_subjects, {"anyOf": [
        {"type": "string", "const": "*"},
        {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
         "minItems": 1},
    ]}),
    RuleField("window", "day", _check_window, {"type": "string", "pattern": WINDOW_PATTERN}),
    RuleField("op", REQUIRED, _check_op, {"type": "string", "enum": list(OPS)}),
    RuleField("threshold", REQUIRED, _check_threshold, _NUMBER_SCHEMA),
    RuleField("hysteresis", 0.0, _check_hysteresis, {**_NUMBER_SCHEMA, "minimum": 0}),
    RuleField("cooldown", "0s", _check_cooldown,
              {"type": "string", "pattern": DURATION_PATTERN}),
    RuleField("max_per_day", 1, _check_max_per_day, {"type": "integer", "minimum": 1}),
    RuleField("severity", "info", _check_severity,
              {"type": "string", "enum": list(SEVERITIES)}),
    RuleField("message", DEFAULT_MESSAGE, _check_message, {"type": "string"}),
    RuleField("route", (), _check_route, {"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}},
    ]}),
)
_FIELD_NAMES: Final = frozenset(spec.name for spec in RULE_FIELDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSpec:
    """One rule as written in the rules file, checked (SPEC.md has the semantics); its
    fields are `RULE_FIELDS`, in their order."""

    id: str
    metric: str
    subjects: str | tuple[str, ...] = "*"  # "*" or the subjects as written
    window: str = "day"
    op: str
    threshold: float
    hysteresis: float = 0.0
    cooldown: str = "0s"
    max_per_day: int = 1
    severity: str = "info"
    message: str = DEFAULT_MESSAGE
    route: str | tuple[str, ...] = ()

    @property
    def cooldown_ms(self) -> int:
        return parse_duration(self.cooldown)

    @property
    def routes(self) -> tuple[str, ...]:
        return (self.route,) if isinstance(self.route, str) else self.route


@dataclass(frozen=True, slots=True)
class RulesFile:
    """A rules file: the rules, and the Slack routes of `marketflow notify` (read there,
    alerts/notify.py; here only required to be a mapping)."""

    rules: tuple[RuleSpec, ...]
    routes: dict[str, Any] = field(default_factory=dict)


def _rule(raw: object, windows: tuple[str, ...]) -> tuple[RuleSpec | None, list[str]]:
    """The rule, or None and every problem of it (the field's check raised, a required
    field is missing, a field is unknown), each naming the rule's id and the field."""
    if not isinstance(raw, dict):
        return None, [f"a rule must be a mapping, got {type(raw).__name__}"]
    values: dict[str, Any] = {}
    problems: list[tuple[object, str]] = []
    for spec in RULE_FIELDS:
        if spec.name not in raw:
            if spec.default is REQUIRED:
                problems.append((spec.name, "required"))
            else:
                values[spec.name] = spec.default  # (as given: defaults are not checked)
            continue
        try:
            values[spec.name] = spec.check(raw[spec.name], values, windows)
        except _Invalid as error:
            problems.append((spec.name, str(error)))
    problems.extend((key, "unknown field") for key in raw if key not in _FIELD_NAMES)
    if problems:
        rule_id = raw.get("id")
        return None, [f"rule {rule_id!r}: {name}: {reason}" for name, reason in problems]
    return RuleSpec(**values), []


def check_rule(raw: object, windows: Sequence[str] = DEFAULT_WINDOWS) -> RuleSpec:
    """One rule of a rules file; RulesError names the rule and the field of each problem."""
    spec, problems = _rule(raw, tuple(windows))
    if spec is None:
        raise RulesError("; ".join(problems))
    return spec


def check_rules_file(document: object, windows: Sequence[str] = DEFAULT_WINDOWS) -> RulesFile:
    """A rules document (the YAML, loaded): its rules, and its routes (an empty or absent
    section is none). Unknown top-level keys are ignored (the schema rejects them); rule
    ids must be unique. RulesError names the rule and the field of each problem."""
    if not isinstance(document, dict):
        raise RulesError(NOT_A_RULES_FILE)
    window_names = tuple(windows)
    problems: list[str] = []
    rules: list[RuleSpec] = []
    raws = document.get("rules")
    if isinstance(raws, list):
        for raw in raws:
            spec, rule_problems = _rule(raw, window_names)
            problems.extend(rule_problems)
            if spec is not None:
                rules.append(spec)
    else:
        problems.append(NOT_A_RULES_FILE)
    routes = document.get("routes") or {}
    if not isinstance(routes, dict):
        problems.append("routes: must be a mapping of route name to settings")
    if problems:
        raise RulesError("; ".join(problems))
    seen: set[str] = set()
    for spec in rules:
        if spec.id in seen:
            raise RulesError(f"rule {spec.id!r}: id: duplicate rule id")
        seen.add(spec.id)
    return RulesFile(tuple(rules), routes)


# The `routes` section is read by `marketflow notify` (alerts/notify.py), not here: the
# schema documents it, the loader only requires a mapping.
_ROUTES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "additionalProperties": False,
        "required": ["webhook_env"],
        "properties": {
            "webhook_env": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
            "severities": {"type": "array", "items": {"enum": list(SEVERITIES)}},
            "rules": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def rules_schema() -> dict[str, Any]:
    """The JSON Schema of a rules file (its body: no `$schema`, `$id` or title). Stricter
    than the loader in two places: a duration with blanks around it, and unknown top-level
    keys, both accepted by the loader as they always were."""
    properties: dict[str, Any] = {}
    for spec in RULE_FIELDS:
        schema = dict(spec.schema)
        if spec.default is not REQUIRED:
            schema["default"] = (list(spec.default) if isinstance(spec.default, tuple)
                                 else spec.default)
        properties[spec.name] = schema
    rule = {"type": "object", "additionalProperties": False,
            "required": [spec.name for spec in RULE_FIELDS if spec.default is REQUIRED],
            "properties": properties}
    return {"type": "object", "additionalProperties": False, "required": ["rules"],
            "properties": {"rules": {"type": "array", "items": rule},
                           "routes": _ROUTES_SCHEMA}}
