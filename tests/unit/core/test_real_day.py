"""A real day: Futu 1-minute bars of 2020-03-24 turned into ticks (tests/data/real/), checked
against a plain, independent computation with decimals straight from the CSV."""

from __future__ import annotations

import csv
import gzip
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from marketflow.core.pipeline import Pipeline
from marketflow.core.records import parse_tick
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RuleSet
from marketflow.core.windows import DEFAULT_WINDOWS

DATA = Path(__file__).parents[2] / "data" / "real"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with gzip.open(DATA / "futu-2020-03-24-ticks.csv.gz", "rt", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def universe() -> list[dict[str, str]]:
    with (DATA / "futu-2020-03-24-universe.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def result(rows: list[dict[str, str]]) -> dict:
    ref = ReferenceData.load(DATA / "futu-2020-03-24-universe.csv", DATA / "futu-indices.csv")
    pipeline = Pipeline(ref, RuleSet(()), 1000, DEFAULT_WINDOWS)
    for row in rows:
        pipeline.on_tick(parse_tick(row))
    pipeline.finish()
    return pipeline.result()


def independent(rows: list[dict[str, str]], universe: list[dict[str, str]]) -> dict:
    close: dict[str, tuple[str, Decimal]] = {}
    turnover: dict[str, Decimal] = {}
    for row in rows:
        symbol = row["symbol"]
        if symbol not in close or row["ts"] >= close[symbol][0]:
            # docs/contracts.md#tick: a price with more than 3 decimals is rounded half-even to 3
            price = Decimal(row["price"]).quantize(Decimal("0.001"), ROUND_HALF_EVEN)
            close[symbol] = (row["ts"], price)
        turnover[symbol] = turnover.get(symbol, Decimal(0)) + Decimal(row["turnover"])
    prev = {u["symbol"]: Decimal(u["prev_close"]) for u in universe}
    change = {s: (close[s][1] / prev[s] - 1) * 100 for s in prev}
    sectors: dict[str, list[str]] = {}
    for u in universe:
        for name in u["sectors"].split(";"):
            sectors.setdefault(name, []).append(u["symbol"])
    floats = {u["symbol"]: Decimal(u["float_shares"]) for u in universe}
    gains = {
        name: (sum(floats[m] * close[m][1] for m in members)
               / sum(floats[m] * prev[m] for m in members) - 1) * 100
        for name, members in sectors.items()
    }
    return {"change": change, "turnover": turnover, "gains": gains,
            "market": sum(turnover.values()), "sectors": sectors}


def test_real_day_matches_independent_computation(rows: list, universe: list,
                                                   result: dict) -> None:
    expected = independent(rows, universe)
    final = result["final"]
    assert result["rejected"] == {} and len(rows) == 20_191
    for symbol, change in expected["change"].items():
        assert final["stocks"][symbol]["change_pct"] == pytest.approx(float(change), rel=1e-9)
        assert Decimal(str(final["stocks"][symbol]["turnover_hkd"])) == expected["turnover"][
            symbol].quantize(Decimal("0.01"))
    for name, gain in expected["gains"].items():
        assert final["sectors"][name]["gain_pct"] == pytest.approx(float(gain), rel=1e-9)
        assert final["sectors"][name]["advancers"] == sum(
            1 for m in expected["sectors"][name] if expected["change"][m] > 0)
    assert Decimal(str(final["market"]["turnover_hkd"])) == expected["market"].quantize(
        Decimal("0.01"))


def test_real_day_known_facts(result: dict) -> None:
    # The Tracker Fund (02800, an HSI ETF) closed 22.30 from 21.25: +4.94% (data README).
    assert result["final"]["stocks"]["02800"]["last"] == 22.30
    assert round(result["final"]["stocks"]["02800"]["change_pct"], 2) == 4.94
    # a broad rally: most stocks up
    market = result["final"]["market"]
    assert market["advancers"] > 3 * market["decliners"]
