"""Scenario files: what a simulated day must end with (and a few intraday constraints).

`ScenarioFile` (pydantic) is the YAML document; `load_scenario` checks it and returns the
`Scenario` the generator reads. Errors are ScenarioError naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from marketflow.core.yamlfile import YamlFileError, read_yaml
from marketflow.settings import PACKAGE_DATA

SCENARIOS = PACKAGE_DATA / "scenarios"
_NOT_A_NUMBER = "not_a_number"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the field."""


def _decimal(raw: Any) -> Decimal:
    """Amounts are exact: `302_600_000_000.00` (YAML reads it as a float) -> Decimal of its
    text, never of the binary float."""
    if isinstance(raw, Decimal):
        return raw
    try:
        return Decimal(str(raw).replace("_", ""))
    except (InvalidOperation, ValueError):
        raise PydanticCustomError(_NOT_A_NUMBER, "not a number: {raw}",
                                  {"raw": repr(raw)}) from None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class IndexTarget(_Model):
    close: Decimal
    stay_below_pct: float | None = None  # never reach this change intraday
    first_cross_pct: float | None = None  # first reach this change ...
    cross_after: str | None = None  # ... only after this HKT time

    _close = field_validator("close", mode="before")(_decimal)


class SouthboundChannel(_Model):
    buy_hkd: Decimal
    sell_hkd: Decimal

    _amounts = field_validator("buy_hkd", "sell_hkd", mode="before")(_decimal)


class NetCross(_Model):
    threshold_hkd: Decimal
    after: str  # HKT time, "14:00"

    _threshold = field_validator("threshold_hkd", mode="before")(_decimal)

    @field_validator("after", mode="before")
    @classmethod
    def _text(cls, value: object) -> str:
        return str(value)


class SouthboundTargets(_Model):
    channels: dict[str, SouthboundChannel]
    net_cross: NetCross | None = None

    @field_validator("net_cross", mode="before")
    @classmethod
    def _no_cross(cls, value: object) -> object:
        return value or None


class ScenarioFile(_Model):
    """A scenario YAML file (data/scenarios/2025-11-24.yaml is the example)."""

    date: str
    seed: int = 1
    trades: int = 300_000
    market_turnover_hkd: Decimal
    indices: dict[str, IndexTarget]
    stocks: dict[str, float] = Field(default_factory=dict)  # symbol -> close change %
    sectors: dict[str, float] = Field(default_factory=dict)  # sector -> default change %
    default_pct: float = 0.0
    southbound: SouthboundTargets
    volatility: float = 0.012
    other_symbols: list[str] = Field(default_factory=list)

    _turnover = field_validator("market_turnover_hkd", mode="before")(_decimal)

    @field_validator("date", mode="before")
    @classmethod
    def _date_text(cls, value: object) -> str:
        return str(value)  # YAML reads an unquoted 2025-11-24 as a date

    @field_validator("stocks", mode="before")
    @classmethod
    def _symbols(cls, value: object) -> object:
        value = value or {}
        return {str(k).zfill(5): v for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("sectors", mode="before")
    @classmethod
    def _sectors(cls, value: object) -> object:
        value = value or {}
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @field_validator("other_symbols", mode="before")
    @classmethod
    def _other_symbols(cls, value: object) -> object:
        return [str(s).zfill(5) for s in value] if isinstance(value, list) else value

    def to_scenario(self, name: str) -> Scenario:
        cross = self.southbound.net_cross
        return Scenario(
            name=name, date=self.date, seed=self.seed, trades=self.trades,
            market_turnover_hkd=self.market_turnover_hkd, indices=dict(self.indices),
            stocks=dict(self.stocks), sectors=dict(self.sectors), default_pct=self.default_pct,
            southbound={channel: (spec.buy_hkd, spec.sell_hkd)
                        for channel, spec in self.southbound.channels.items()},
            southbound_cross=(cross.threshold_hkd, cross.after) if cross else None,
            volatility=self.volatility, other_symbols=list(self.other_symbols),
        )


@dataclass(frozen=True)
class Scenario:
    name: str
    date: str
    seed: int
    trades: int
    market_turnover_hkd: Decimal
    indices: dict[str, IndexTarget]
    stocks: dict[str, float]  # symbol -> close change %
    sectors: dict[str, float]  # sector -> default close change % for its members
    default_pct: float
    southbound: dict[str, tuple[Decimal, Decimal]]  # channel -> (buy, sell) at close
    southbound_cross: tuple[Decimal, str] | None  # (net threshold, not before HKT time)
    volatility: float = 0.012
    other_symbols: list[str] = field(default_factory=list)


def resolve(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = SCENARIOS / f"{name_or_path}.yaml"
    if bundled.is_file():
        return bundled
    raise ScenarioError(f"no scenario file {name_or_path!r} (bundled: "
                        f"{', '.join(p.stem for p in sorted(SCENARIOS.glob('*.yaml')))})")


def parse_scenario(document: object, name: str) -> Scenario:
    """A scenario document (the YAML, loaded); ScenarioError names the field."""
    try:
        return ScenarioFile.model_validate(document).to_scenario(name)
    except ValidationError as error:
        raise ScenarioError("; ".join(_describe(detail) for detail in error.errors())) from None


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario file (YAML, at most 1 MiB), or a bundled one by name."""
    path = resolve(name_or_path)
    try:
        document = read_yaml(path)
    except YamlFileError as error:
        raise ScenarioError(str(error)) from None
    try:
        return parse_scenario(document, path.stem)
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None


def _describe(detail: Any) -> str:
    where = ".".join(str(part) for part in detail["loc"])
    if not where:
        return "a scenario is a mapping"
    if detail["type"] == "missing":
        return f"missing field {where!r}"
    return f"{where}: {detail['msg']}"
