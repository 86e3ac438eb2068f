"""The rules file's checks (core/rules_spec.py): table-driven valid and invalid rules, every
error naming the rule and the field, the loader's file checks, and the schema made from
the same field table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from marketflow.core.rules import (
    Rule,
    RulesError,
    RulesFile,
    RuleSpec,
    load_rules,
    parse_rule,
    parse_rules,
)
from marketflow.core.rules_spec import (
    DEFAULT_MESSAGE,
    METRICS,
    OPS,
    REQUIRED,
    RULE_FIELDS,
    SEVERITIES,
    check_rule,
    check_rules_file,
    rules_schema,
)
from tests.schemas import validator

BASE = {"id": "r-1", "metric": "index.change_pct", "op": ">=", "threshold": 2}


def rule(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


def test_defaults() -> None:
    spec = check_rule(BASE)
    assert (spec.subjects, spec.window, spec.hysteresis, spec.cooldown, spec.max_per_day,
            spec.severity, spec.message, spec.routes) == (
        "*", "day", 0.0, "0s", 1, "info", DEFAULT_MESSAGE, ())
    assert parse_rule(BASE) == Rule("r-1", "index.change_pct", None, "day", ">=", 2.0)


@pytest.mark.parametrize(("fields", "attribute", "expected"), [
    ({"threshold": "8.0e9"}, "threshold", 8.0e9),  # YAML 1.1 reads 8.0e9 as a string
    ({"threshold": "1_000"}, "threshold", 1000.0),
    ({"threshold": -3}, "threshold", -3.0),
    ({"hysteresis": "0.5"}, "hysteresis", 0.5),
    ({"cooldown": "90s"}, "cooldown_ms", 90_000),
    ({"cooldown": "250ms"}, "cooldown_ms", 250),
    ({"cooldown": "2h"}, "cooldown_ms", 7_200_000),
    ({"max_per_day": 4}, "max_per_day", 4),
    ({"severity": "critical"}, "severity", "critical"),
    ({"op": "<="}, "op", "<="),
    ({"subjects": ["HSI", "HSTECH"]}, "subjects", frozenset({"HSI", "HSTECH"})),
    ({"metric": "stock.change_pct", "subjects": [700, "9988", "x"]}, "subjects",
     frozenset({"00700", "09988", "x"})),
    ({"metric": "southbound.net_inflow_hkd", "subjects": ["total", "sh"]}, "subjects",
     frozenset({"total", "SH"})),
    ({"subjects": "*"}, "subjects", None),
    ({"metric": "sector.gain_pct", "window": "15m"}, "window", "15m"),
    ({"metric": "sector.gain_pct", "window": "day"}, "window", "day"),
    ({"route": "ops"}, "routes", ("ops",)),
    ({"route": ["ops", "desk"]}, "routes", ("ops", "desk")),
    ({"message": "{subject} {value:+.2f}% at {level:,.2f} {time}"}, "message",
     "{subject} {value:+.2f}% at {level:,.2f} {time}"),
    ({"message": "{subject:>100} {value:08.100f}"}, "message",
     "{subject:>100} {value:08.100f}"),
])
def test_valid_rules(fields: dict[str, Any], attribute: str, expected: Any) -> None:
    assert getattr(parse_rule(rule(**fields)), attribute) == expected
    assert not list(validator("rules").iter_errors({"rules": [rule(**fields)]}))


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"id": "Up"}, "id", "lowercase letters, digits"),
    ({"id": 7}, "id", "lowercase letters, digits"),
    ({"id": "-up"}, "id", "lowercase letters, digits"),
    ({"metric": "index.level"}, "metric", "must be one of index.change_pct, "),
    ({"metric": None}, "metric", "got None"),
    ({"subjects": []}, "subjects", 'non-empty list of subjects; got []'),
    ({"subjects": "HSI"}, "subjects", "got 'HSI'"),
    ({"subjects": [""]}, "subjects", "non-empty list"),
    ({"subjects": [{"a": 1}]}, "subjects", "non-empty list"),
    ({"window": "15m"}, "window", "only sector.gain_pct has rolling windows; use day"),
    ({"metric": "sector.gain_pct", "window": "2m"}, "window",
     "must be day or one of 1m, 5m, 15m, 60m; got '2m'"),
    ({"op": ">"}, "op", 'must be ">=" or "<="; got \'>\''),
    ({"op": None}, "op", "got None"),
    ({"threshold": "high"}, "threshold", "must be a finite number; got 'high'"),
    ({"threshold": None}, "threshold", "required"),
    ({"threshold": True}, "threshold", "must be a finite number; got True"),
    ({"threshold": float("nan")}, "threshold", "must be a finite number"),
    ({"threshold": "inf"}, "threshold", "must be a finite number"),
    ({"threshold": [1]}, "threshold", "must be a finite number"),
    ({"hysteresis": -0.1}, "hysteresis", "must be >= 0"),
    ({"hysteresis": "wide"}, "hysteresis", "must be a finite number"),
    ({"cooldown": "10 minutes"}, "cooldown", "not a duration (number + ms|s|m|h)"),
    ({"cooldown": 90}, "cooldown", "not a duration"),
    ({"cooldown": None}, "cooldown", "not a duration"),
    ({"max_per_day": 0}, "max_per_day", "must be an integer >= 1; got 0"),
    ({"max_per_day": 1.5}, "max_per_day", "must be an integer >= 1"),
    ({"max_per_day": True}, "max_per_day", "must be an integer >= 1"),
    ({"severity": "fatal"}, "severity", "must be one of info, warning, critical; got 'fatal'"),
    ({"message": 3}, "message", "must be a string"),
    ({"message": "{subject} {price}"}, "message", "unknown field 'price'; use rule_id"),
    ({"message": "{subject.__class__}"}, "message", "unknown field 'subject.__class__'"),
    ({"message": "{value:q}"}, "message", "bad template"),
    ({"message": "{0}"}, "message", "bad template"),
    ({"message": "{value:{threshold}}"}, "message", "a field inside the format of {value}"),
    ({"message": "{value:2000000000}"}, "message", "a width or precision past 100"),
    ({"message": "{subject:>101}"}, "message", "a width or precision past 100"),
    ({"message": "{value:.101f}"}, "message", "a width or precision past 100"),
    ({"message": "{value"}, "message", "bad template"),
    ({"route": 5}, "route", "a route name or a list of route names"),
    ({"route": None}, "route", "a route name or a list of route names"),
    ({"thresold": 2}, "thresold", "unknown field"),
])
def test_invalid_rules_name_rule_and_field(fields: dict[str, Any], field: str,
                                           reason: str) -> None:
    raw = rule(**fields)
    with pytest.raises(RulesError) as error:
        parse_rule(raw)
    message = str(error.value)
    assert message.startswith(f"rule {raw['id']!r}: {field}: "), message
    assert reason in message, message


@pytest.mark.parametrize("field", ["id", "metric", "op", "threshold"])
def test_required_fields(field: str) -> None:
    raw = {k: v for k, v in BASE.items() if k != field}
    with pytest.raises(RulesError, match=f": {field}: required"):
        parse_rule(raw)


def test_loader_is_as_lenient_as_before_where_the_schema_is_stricter() -> None:
    """Blanks around a duration and unknown top-level keys: accepted by the loader (as
    before the models), rejected by the schema."""
    assert parse_rule(rule(cooldown=" 90s ")).cooldown_ms == 90_000
    assert list(validator("rules").iter_errors({"rules": [rule(cooldown=" 90s ")]}))
    assert parse_rules({"rules": [BASE], "version": 2}).rules
    assert list(validator("rules").iter_errors({"rules": [BASE], "version": 2}))


def test_windows_come_from_the_caller() -> None:
    windowed = rule(metric="sector.gain_pct", window="2m")
    assert parse_rule(windowed, ("1m", "2m")).window == "2m"
    with pytest.raises(RulesError, match="must be day or one of 1m; got '2m'"):
        parse_rules({"rules": [windowed]}, ("1m",))


@pytest.mark.parametrize(("document", "message"), [
    (None, "the rules file must be a mapping with a 'rules' list"),
    ([BASE], "the rules file must be a mapping with a 'rules' list"),
    ({}, "the rules file must be a mapping with a 'rules' list"),
    ({"rules": {"r-1": BASE}}, "the rules file must be a mapping with a 'rules' list"),
    ({"rules": ["r-1"]}, "a rule must be a mapping, got str"),
    ({"rules": [BASE, BASE]}, "rule 'r-1': id: duplicate rule id"),
    ({"rules": [BASE], "routes": ["ops"]}, "routes: must be a mapping of route name"),
])
def test_invalid_files(document: object, message: str) -> None:
    with pytest.raises(RulesError) as error:
        parse_rules(document)
    assert str(error.value) == message or str(error.value).startswith(message), error.value


def test_every_problem_is_reported() -> None:
    document = {"rules": [rule(op=">"), rule(id="r-2", severity="fatal", extra=1)]}
    with pytest.raises(RulesError) as error:
        parse_rules(document)
    message = str(error.value)
    assert message.startswith("rule 'r-1': op: ")
    assert "; rule 'r-2': severity: must be one of" in message
    assert "; rule 'r-2': extra: unknown field" in message


def test_file_level_extras_and_routes() -> None:
    routes = {"ops": {"webhook_env": "OPS_WEBHOOK", "severities": ["critical"]}}
    ruleset = parse_rules({"rules": [BASE], "routes": routes, "version": 2})
    assert ruleset.routes == routes  # unknown top-level keys are ignored, as before
    assert parse_rules({"rules": [], "routes": None}).routes == {}


def test_checks_return_the_rules_as_written() -> None:
    spec = check_rules_file({"rules": [rule(subjects=[700, "HSI"], route=["ops", 7])]})
    assert isinstance(spec, RulesFile) and spec.routes == {}
    assert (spec.rules[0].subjects, spec.rules[0].route) == (("700", "HSI"), ("ops", "7"))
    with pytest.raises(RulesError, match=r"^rule 'r-1': op:"):
        check_rules_file({"rules": [rule(op="=")]})
    spec = check_rules_file({"rules": [rule(metric="sector.gain_pct", window="5s")]},
                            windows=("5s",))
    assert spec.rules[0].window == "5s"


def test_a_bad_metric_is_reported_once_not_again_under_window() -> None:
    with pytest.raises(RulesError) as error:
        parse_rule(rule(metric="index.level", window="15m"))
    assert ": metric: must be one of" in str(error.value)
    assert "window" not in str(error.value)


def test_field_table_is_the_spec_and_the_schema() -> None:
    """One table: RuleSpec's fields, their defaults, the required ones and the schema's
    properties all come from RULE_FIELDS, in its order."""
    names = [spec.name for spec in RULE_FIELDS]
    assert list(RuleSpec.__dataclass_fields__) == names
    defaults = {spec.name: spec.default for spec in RULE_FIELDS if spec.default is not REQUIRED}
    assert {name: getattr(check_rule(BASE), name) for name in defaults} == defaults
    schema = rules_schema()["properties"]["rules"]["items"]
    assert list(schema["properties"]) == names
    assert schema["required"] == ["id", "metric", "op", "threshold"]
    for name, default in defaults.items():
        written = schema["properties"][name]["default"]
        assert written == (list(default) if isinstance(default, tuple) else default)
    assert schema["properties"]["metric"]["enum"] == list(METRICS)
    assert schema["properties"]["severity"]["enum"] == list(SEVERITIES)
    assert schema["properties"]["op"]["enum"] == list(OPS)


def test_runtime_rule_is_slotted_without_dead_helpers() -> None:
    built = parse_rule(BASE)
    assert not hasattr(built, "__dict__")
    assert not hasattr(Rule, "holds") and not hasattr(Rule, "rearms")


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "rules.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("rules: [", "not valid YAML"),
    ("rules: []\n# " + "x" * (1 << 20), "too large: more than 1,048,576 bytes"),
    ("rules: !!python/object/apply:os.getcwd []", "not valid YAML"),  # safe_load only
    (b"rules: []\n# \xff\n", "not UTF-8 text"),
    ("rules:\n  - id: r\n    metric: nope\n", "rule 'r': metric: must be one of"),
])
def test_load_rules_errors_start_with_the_path(tmp_path: Path, text: str | bytes,
                                               message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RulesError) as error:
        load_rules(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_load_rules_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "none.yaml")


def test_load_rules_reads_yaml_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: sb\n    metric: southbound.net_inflow_hkd\n"
                           "    subjects: [total]\n    op: '>='\n    threshold: 8.0e9\n")
    assert load_rules(path).rules[0].threshold == 8.0e9
