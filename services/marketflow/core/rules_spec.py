"""The alert rules file as pydantic models: what a rules file may say, and its errors.

`RulesFile.model_validate(document, context={"windows": ("1m", ...)})` checks a document
(the rolling windows a rule may use default to `DEFAULT_WINDOWS`); `rules_error` turns a
pydantic ValidationError into a RulesError whose message names the rule and the field.
`schemas/rules.schema.json` is generated from these models (`make schemas`).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from marketflow.core.windows import DEFAULT_WINDOWS, DURATION_PATTERN, parse_duration

Metric = Literal[
    "index.change_pct",
    "stock.change_pct",
    "sector.gain_pct",
    "sector.eq_gain_pct",
    "sector.turnover_hkd",
    "market.turnover_hkd",
    "southbound.net_inflow_hkd",
]
Severity = Literal["info", "warning", "critical"]
Op = Literal[">=", "<="]
METRICS: tuple[str, ...] = get_args(Metric)
SEVERITIES: tuple[str, ...] = get_args(Severity)
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
_ERROR = "rules"  # the pydantic error type of the checks below; their message is the reason


class RulesError(ValueError):
    """A rules file that cannot be used; the message names the rule id and the field."""


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


def _fail(reason: str) -> PydanticCustomError:
    return PydanticCustomError(_ERROR, "{reason}", {"reason": reason})


def _number(raw: object) -> float:
    if isinstance(raw, str):  # YAML 1.1 reads 8.0e9 (no exponent sign) as a string
        try:
            raw = float(raw.replace("_", ""))
        except ValueError:
            raise _fail(f"must be a finite number; got {raw!r}") from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _fail(f"must be a finite number; got {raw!r}")
    return float(raw)


def _choice(value: object, choices: Sequence[str], text: str) -> object:
    if not isinstance(value, str) or value not in choices:
        raise _fail(f"must be {text}; got {value!r}")
    return value


# YAML 1.1 reads 8.0e9 (no exponent sign) as a string; numbers may be written either way.
_NUMBER_SCHEMA: dict[str, Any] = {
    "type": ["number", "string"],
    "description": "a number (a string such as 8.0e9 is read as one)",
}


class RuleSpec(BaseModel):
    """One rule as written in the rules file (SPEC.md has the semantics)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(json_schema_extra={"pattern": ID_PATTERN})]
    metric: Metric
    subjects: Literal["*"] | Annotated[list[str | int], Field(min_length=1)] = "*"
    window: Annotated[str, Field(json_schema_extra={"pattern": WINDOW_PATTERN})] = "day"
    op: Op
    threshold: Annotated[float, Field(json_schema_extra=_NUMBER_SCHEMA)]
    hysteresis: Annotated[float, Field(ge=0, json_schema_extra=_NUMBER_SCHEMA)] = 0.0
    cooldown: Annotated[str, Field(json_schema_extra={"pattern": DURATION_PATTERN})] = "0s"
    max_per_day: Annotated[int, Field(ge=1)] = 1
    severity: Severity = "info"
    message: str = DEFAULT_MESSAGE
    route: str | list[str] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _check_id(cls, value: object) -> object:
        if not isinstance(value, str) or not _ID.match(value):
            raise _fail("required; lowercase letters, digits, '.', '_' or '-'")
        return value

    @field_validator("metric", mode="before")
    @classmethod
    def _check_metric(cls, value: object) -> object:
        return _choice(value, METRICS, f"one of {', '.join(METRICS)}")

    @field_validator("subjects", mode="before")
    @classmethod
    def _check_subjects(cls, value: object) -> object:
        if value == "*":
            return value
        if (isinstance(value, list) and value
                and all(isinstance(s, str | int) and str(s) for s in value)):
            return [str(s) for s in value]
        raise _fail(f'"*" or a non-empty list of subjects; got {value!r}')

    @field_validator("window", mode="before")
    @classmethod
    def _check_window(cls, value: object, info: ValidationInfo) -> str:
        window = str(value)
        metric = info.data.get("metric")
        if window == "day" or metric is None:  # a bad metric is reported on its own
            return window
        if metric != ROLLING_METRIC:
            raise _fail(f"only {ROLLING_METRIC} has rolling windows; use day")
        windows = tuple((info.context or {}).get("windows", DEFAULT_WINDOWS))
        if window not in windows:
            raise _fail(f"must be day or one of {', '.join(windows)}; got {window!r}")
        return window

    @field_validator("op", mode="before")
    @classmethod
    def _check_op(cls, value: object) -> object:
        return _choice(value, (">=", "<="), '">=" or "<="')

    @field_validator("threshold", mode="before")
    @classmethod
    def _check_threshold(cls, value: object) -> float:
        if value is None:
            raise _fail("required")
        return _number(value)

    @field_validator("hysteresis", mode="before")
    @classmethod
    def _check_hysteresis(cls, value: object) -> float:
        number = _number(value)
        if number < 0:
            raise _fail("must be >= 0")
        return number

    @field_validator("cooldown", mode="before")
    @classmethod
    def _check_cooldown(cls, value: object) -> str:
        try:
            parse_duration(value)
        except ValueError as error:
            raise _fail(str(error)) from None
        return str(value).strip()

    @field_validator("max_per_day", mode="before")
    @classmethod
    def _check_max_per_day(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(f"must be an integer >= 1; got {value!r}")
        return value

    @field_validator("severity", mode="before")
    @classmethod
    def _check_severity(cls, value: object) -> object:
        return _choice(value, SEVERITIES, f"one of {', '.join(SEVERITIES)}")

    @field_validator("message", mode="before")
    @classmethod
    def _check_message(cls, value: object) -> str:
        if not isinstance(value, str):
            raise _fail("must be a string")
        try:
            render_message(value, _sample_context())
        except KeyError as error:
            raise _fail(f"unknown field {error.args[0]!r}; use {', '.join(MESSAGE_FIELDS)}"
                        ) from None
        except (ValueError, IndexError, TypeError) as error:
            raise _fail(f"bad template: {error}") from None
        return value

    @field_validator("route", mode="before")
    @classmethod
    def _check_route(cls, value: object) -> object:
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple) and all(isinstance(r, str | int) for r in value):
            return [str(r) for r in value]
        raise _fail(f"a route name or a list of route names; got {value!r}")

    @property
    def cooldown_ms(self) -> int:
        return parse_duration(self.cooldown)

    @property
    def routes(self) -> tuple[str, ...]:
        return (self.route,) if isinstance(self.route, str) else tuple(self.route)


# The `routes` section is read by `marketflow notify` (alerts/notify.py), not here: the
# schema documents it, the model only requires a mapping.
_ROUTES_SCHEMA = {
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


class RulesFile(BaseModel):
    """A rules file: the rules, and optionally the Slack routes of `marketflow notify`."""

    # Unknown top-level keys are ignored by the loader, but the schema rejects them.
    model_config = ConfigDict(extra="ignore", frozen=True,
                              json_schema_extra={"additionalProperties": False})

    rules: list[RuleSpec]
    routes: Annotated[dict[str, Any], WithJsonSchema(_ROUTES_SCHEMA)] = Field(
        default_factory=dict)

    @field_validator("rules", mode="before")
    @classmethod
    def _check_rules(cls, value: object) -> object:
        if not isinstance(value, list):
            raise _fail("the rules file must be a mapping with a 'rules' list")
        return value

    @field_validator("routes", mode="before")
    @classmethod
    def _check_routes(cls, value: object) -> object:
        value = value or {}
        if not isinstance(value, dict):
            raise _fail("must be a mapping of route name to settings")
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> RulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise _fail(f"rule {rule.id!r}: id: duplicate rule id")
            seen.add(rule.id)
        return self


def rules_error(error: ValidationError, document: object,
                prefix: tuple[str | int, ...] = ()) -> RulesError:
    """A RulesError naming the rule and field of each problem pydantic found in `document`
    (`prefix` is prepended to pydantic's locations, e.g. ("rules", 0) for one rule)."""
    return RulesError("; ".join(
        _describe(prefix + tuple(detail["loc"]), detail, document)
        for detail in error.errors(include_url=False)
    ))


def _describe(loc: tuple[str | int, ...], detail: Any, document: object) -> str:
    kind = detail["type"]
    if kind == "missing":
        reason = "required"
    elif kind == "extra_forbidden":
        reason = "unknown field"
    elif kind == _ERROR:
        reason = detail["msg"]
    else:
        reason = f"{detail['msg']}; got {detail.get('input')!r}"
    if not loc:
        if kind == _ERROR:
            return str(reason)
        return "the rules file must be a mapping with a 'rules' list"
    if loc[0] == "rules" and len(loc) == 1:
        return "the rules file must be a mapping with a 'rules' list"
    if loc[0] != "rules":
        return f"{'.'.join(map(str, loc))}: {reason}"
    if len(loc) == 2:
        return f"a rule must be a mapping, got {type(detail.get('input')).__name__}"
    raws = document.get("rules") if isinstance(document, dict) else None
    raw = raws[loc[1]] if isinstance(raws, list) and isinstance(loc[1], int) else None
    rule_id = raw.get("id") if isinstance(raw, dict) else None
    return f"rule {rule_id!r}: {loc[2]}: {reason}"
