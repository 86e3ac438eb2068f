"""Scenario files: what a simulated day must end with (and a few intraday constraints)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from marketflow.settings import PACKAGE_DATA

SCENARIOS = PACKAGE_DATA / "scenarios"


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the field."""


@dataclass(frozen=True)
class IndexTarget:
    close: Decimal
    stay_below_pct: float | None = None  # never reach this change intraday
    first_cross_pct: float | None = None  # first reach this change ...
    cross_after: str | None = None  # ... only after this HKT time


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


def _decimal(raw: Any, where: str) -> Decimal:
    try:
        return Decimal(str(raw).replace("_", ""))
    except Exception:
        raise ScenarioError(f"{where}: not a number: {raw!r}") from None


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping")
    try:
        indices = {
            symbol: IndexTarget(_decimal(spec["close"], f"indices.{symbol}.close"),
                                spec.get("stay_below_pct"), spec.get("first_cross_pct"),
                                spec.get("cross_after"))
            for symbol, spec in raw["indices"].items()
        }
        southbound = {
            channel: (_decimal(spec["buy_hkd"], f"southbound.{channel}.buy_hkd"),
                      _decimal(spec["sell_hkd"], f"southbound.{channel}.sell_hkd"))
            for channel, spec in raw["southbound"]["channels"].items()
        }
        cross = raw["southbound"].get("net_cross")
        return Scenario(
            name=path.stem,
            date=str(raw["date"]),
            seed=int(raw.get("seed", 1)),
            trades=int(raw.get("trades", 300_000)),
            market_turnover_hkd=_decimal(raw["market_turnover_hkd"], "market_turnover_hkd"),
            indices=indices,
            stocks={str(k).zfill(5): float(v) for k, v in (raw.get("stocks") or {}).items()},
            sectors={str(k): float(v) for k, v in (raw.get("sectors") or {}).items()},
            default_pct=float(raw.get("default_pct", 0.0)),
            southbound=southbound,
            southbound_cross=(_decimal(cross["threshold_hkd"], "southbound.net_cross"),
                              str(cross["after"])) if cross else None,
            volatility=float(raw.get("volatility", 0.012)),
            other_symbols=[str(s).zfill(5) for s in raw.get("other_symbols", [])],
        )
    except KeyError as error:
        raise ScenarioError(f"{path}: missing field {error.args[0]!r}") from None
