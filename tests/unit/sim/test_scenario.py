"""Scenario files: the pydantic model reads the bundled day exactly and names bad fields."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from marketflow.core.yamlfile import MAX_YAML_BYTES
from marketflow.sim.scenario import (
    SCENARIOS,
    IndexTarget,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

BUNDLED = yaml.safe_load((SCENARIOS / "2025-11-24.yaml").read_text())


def changed(path: str, value: Any) -> dict[str, Any]:
    """The bundled document with `path` ("a.b.c") set to `value`, or deleted if it is `...`."""
    document = copy.deepcopy(BUNDLED)
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return document


def test_bundled_scenario_is_read_exactly() -> None:
    scenario = load_scenario("2025-11-24")
    assert scenario.name == "2025-11-24" and scenario.date == "2025-11-24"
    assert scenario.market_turnover_hkd == Decimal("302600000000.0")
    assert scenario.indices["HSTECH"] == IndexTarget(close=Decimal("5545.56"),
                                                     first_cross_pct=2.0, cross_after="13:00")
    assert scenario.southbound["SH"] == (Decimal("30523380000.0"), Decimal("28445830000.0"))
    assert scenario.southbound_cross == (Decimal("8000000000"), "14:00")
    assert scenario.stocks["00700"] == 4.35 and scenario.sectors["AI"] == 3.8
    assert scenario.other_symbols[0] == "02800" and (scenario.seed, scenario.trades) == (
        20251124, 300000)


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("seed", ..., 1),
    ("trades", ..., 300_000),
    ("volatility", ..., 0.012),
    ("default_pct", ..., 0.0),
    ("stocks", None, {}),
    ("other_symbols", [700, "9988"], ["00700", "09988"]),
    ("southbound.net_cross", None, None),
])
def test_defaults_and_normalisation(path: str, value: Any, expected: Any) -> None:
    scenario = parse_scenario(changed(path, value), "x")
    attribute = {"southbound.net_cross": "southbound_cross"}.get(path, path)
    assert getattr(scenario, attribute) == expected


@pytest.mark.parametrize(("path", "value", "message"), [
    ("indices", ..., "missing field 'indices'"),
    ("market_turnover_hkd", ..., "missing field 'market_turnover_hkd'"),
    ("indices.HSI.close", ..., "missing field 'indices.HSI.close'"),
    ("indices.HSI.close", "high", "indices.HSI.close: not a number: 'high'"),
    ("southbound.channels.SZ.sell_hkd", None, "southbound.channels.SZ.sell_hkd: not a number"),
    ("southbound.net_cross.threshold_hkd", "x", "southbound.net_cross.threshold_hkd: not a"),
    ("southbound.channels", ..., "missing field 'southbound.channels'"),
    ("seed", "abc", "seed: "),
    ("stocks", [1], "stocks: "),
    ("indices.HSI.stay_below_pct", "lots", "indices.HSI.stay_below_pct: "),
])
def test_bad_fields_are_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match="^" + message.replace(".", r"\.")):
        parse_scenario(changed(path, value), "x")


def test_scenario_must_be_a_mapping() -> None:
    with pytest.raises(ScenarioError, match="a scenario is a mapping"):
        parse_scenario(["date"], "x")


@pytest.mark.parametrize(("text", "message"), [
    ("date: [", "not valid YAML"),
    ("a: " + "x" * MAX_YAML_BYTES, "too large: more than 1,048,576 bytes"),
    ("!!python/object/apply:os.system ['true']", "not valid YAML"),  # safe_load only
    ("- 1\n", "a scenario is a mapping"),
])
def test_bad_files_name_the_path(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "day.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as error:
        load_scenario(str(path))
    assert str(error.value).startswith(str(path))
