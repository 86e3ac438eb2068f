"""The simulator: HKEX grid, lots, sessions, determinism, and the report's figures computed
from the stream by plain, independent arithmetic (not the core)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson
import pytest

from marketflow.core.refdata import ReferenceData
from marketflow.core.timeutil import to_datetime
from marketflow.settings import PACKAGE_DATA
from marketflow.sim.generate import Generator
from marketflow.sim.market import on_grid, round_to_grid, tick_size
from marketflow.sim.scenario import ScenarioError, load_scenario

MOVERS = {"01024": "7.11", "09999": "5.87", "09626": "5.67", "03896": "4.96", "09988": "4.67",
          "01530": "6.07", "01276": "5.61", "03692": "5.29", "02359": "5.12", "09888": "4.19"}


@pytest.fixture(scope="module")
def ref() -> ReferenceData:
    return ReferenceData.load(PACKAGE_DATA / "universe.csv", PACKAGE_DATA / "indices.csv")


@pytest.fixture(scope="module", params=[15_000, 60_000])
def day(request: pytest.FixtureRequest, ref: ReferenceData) -> list[tuple[str, dict]]:
    return list(Generator(load_scenario("2025-11-24"), ref, trades=request.param).records())


@pytest.mark.parametrize(
    ("price", "tick"),
    [(100, 1), (250, 1), (255, 5), (500, 5), (510, 10), (20_000, 10), (20_020, 20),
     (50_050, 50), (100_100, 100), (200_200, 200), (500_500, 500), (1_001_000, 1000),
     (2_002_000, 2000), (5_005_000, 5000)],
)
def test_spread_table(price: int, tick: int) -> None:
    assert tick_size(price) == tick
    assert on_grid(price)


@pytest.mark.parametrize(("raw", "grid"), [(612_260, 612_500), (612_240.0, 612_000),
                                           (38_661, 38_660), (199_970, 200_000)])
def test_round_to_grid(raw: float, grid: int) -> None:
    assert round_to_grid(raw) == grid


def test_prices_lots_sequences_sessions(day: list[tuple[str, dict]], ref: ReferenceData) -> None:
    last_ts = 0
    seqs: dict[str, int] = {}
    for kind, record in day:
        assert record["ts"] >= last_ts  # event-time order
        last_ts = record["ts"]
        clock = to_datetime(record["ts"])
        minutes = clock.hour * 60 + clock.minute
        assert 570 <= minutes < 720 or 780 <= minutes <= 970, clock  # nothing at lunch
        if kind != "ticks":
            continue
        symbol = record["symbol"]
        assert record["seq"] > seqs.get(symbol, 0)
        seqs[symbol] = record["seq"]
        if record["kind"] == "trade":
            milli = round(record["price"] * 1000)
            assert on_grid(milli), record
            stock = ref.stocks.get(symbol)
            if stock is not None:
                assert record["qty"] % stock.lot_size == 0, record


def independent_facts(day: list[tuple[str, dict]], ref: ReferenceData) -> dict[str, Any]:
    last: dict[str, tuple[int, Decimal]] = {}
    cents = 0
    index_path: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    flows: dict[str, tuple[int, Decimal, Decimal]] = {}
    net_path: list[tuple[int, Decimal]] = []
    for kind, record in day:
        if kind == "southbound":
            flows[record["channel"]] = (record["ts"], Decimal(repr(record["buy_hkd"])),
                                        Decimal(repr(record["sell_hkd"])))
            net_path.append((record["ts"], sum(b - s for _, b, s in flows.values())))
            continue
        price = Decimal(repr(record["price"]))
        if record["kind"] == "index":
            index_path[record["symbol"]].append((record["ts"], price))
            continue
        if record["symbol"] not in last or record["ts"] >= last[record["symbol"]][0]:
            last[record["symbol"]] = (record["ts"], price)
        turnover = record.get("turnover")
        value = Decimal(repr(turnover)) if turnover is not None else price * record["qty"]
        cents += int((value * 100).quantize(Decimal(1), ROUND_HALF_EVEN))
    return {"last": last, "cents": cents, "index": index_path, "flows": flows,
            "net": net_path}


def hkt_minutes(ts: int) -> int:
    clock = to_datetime(ts)
    return clock.hour * 60 + clock.minute


def test_the_report_figures(day: list[tuple[str, dict]], ref: ReferenceData) -> None:
    facts = independent_facts(day, ref)
    for symbol, pct in MOVERS.items():
        prev = Decimal(ref.stocks[symbol].prev_close) / 1000
        change = ((facts["last"][symbol][1] / prev - 1) * 100).quantize(Decimal("0.01"),
                                                                        ROUND_HALF_EVEN)
        assert change == Decimal(pct), symbol
    assert facts["cents"] == 30_260_000_000_000  # HK$302.6bn to the cent
    assert facts["index"]["HSI"][-1][1] == Decimal("25716.5")
    assert facts["index"]["HSTECH"][-1][1] == Decimal("5545.56")
    hsi_line = Decimal("25220.02") * Decimal("1.02")
    assert max(level for _, level in facts["index"]["HSI"]) < hsi_line
    tech_line = Decimal("5395.56") * Decimal("1.02")
    first = next(ts for ts, level in facts["index"]["HSTECH"] if level >= tech_line)
    assert hkt_minutes(first) >= 13 * 60
    flows = facts["flows"]
    assert (flows["SH"][1], flows["SH"][2]) == (Decimal("30523380000.0"),
                                                Decimal("28445830000.0"))
    assert (flows["SZ"][1], flows["SZ"][2]) == (Decimal("25123720000.0"),
                                                Decimal("18629930000.0"))
    assert facts["net"][-1][1] == Decimal("8571340000.0")
    crossed = next(ts for ts, net in facts["net"] if net >= 8_000_000_000)
    assert hkt_minutes(crossed) >= 14 * 60


def test_ai_leads_the_sectors(day: list[tuple[str, dict]], ref: ReferenceData) -> None:
    facts = independent_facts(day, ref)
    gains = {}
    for sector, members in ref.sector_members.items():
        if sector in ("HSI", "HSTECH"):
            continue  # index membership tags, not sectors
        num = sum(ref.stocks[m].float_shares * facts["last"].get(m, (0, Decimal(
            ref.stocks[m].prev_close) / 1000))[1] for m in members)
        den = sum(ref.stocks[m].float_shares * Decimal(ref.stocks[m].prev_close) / 1000
                  for m in members)
        gains[sector] = num / den - 1
    assert max(gains, key=gains.__getitem__) == "AI"


def test_deterministic(ref: ReferenceData) -> None:
    def digest(seed: int | None) -> str:
        records = Generator(load_scenario("2025-11-24"), ref, trades=3_000, seed=seed).records()
        return hashlib.sha256(b"".join(orjson.dumps(r) for _, r in records)).hexdigest()

    assert digest(None) == digest(None)
    assert digest(7) != digest(None)


def test_unknown_scenario_is_a_clear_error() -> None:
    with pytest.raises(ScenarioError, match="bundled: 2025-11-24"):
        load_scenario("1999-01-01")
