"""The demo day through the whole stack: embedded broker and Redis, the worker, the sinks.

`marketflow demo --speed 0` replays 24 Nov 2025; its summary is read back from Redis (the
latest hashes and the alerts stream the worker wrote). The figures must be the report's, to
the cent, and the alerts of the default rules exactly the expected set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from marketflow.core.refdata import ReferenceData
from marketflow.settings import PACKAGE_DATA
from marketflow.sim.generate import Generator
from marketflow.sim.scenario import load_scenario

pytestmark = pytest.mark.e2e

MOVERS = {"01024": 7.11, "09999": 5.87, "09626": 5.67, "03896": 4.96, "09988": 4.67,
          "01530": 6.07, "01276": 5.61, "03692": 5.29, "02359": 5.12, "09888": 4.19}


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETFLOW_")}
    env.update(MARKETFLOW_STATE_DIR=str(work / "state"), MARKETFLOW_METRICS_PORT="0")
    out = work / "summary.json"
    done = subprocess.run(
        [sys.executable, "-m", "marketflow.cli", "demo", "--speed", "0", "--summary-json",
         str(out)], env=env, capture_output=True, text=True, timeout=600, cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def crossed_five_percent() -> set[str]:
    """Independently, from the same seeded stream: stocks whose change ever reached +5%."""
    ref = ReferenceData.load(PACKAGE_DATA / "universe.csv", PACKAGE_DATA / "indices.csv")
    crossed = set()
    for kind, record in Generator(load_scenario("2025-11-24"), ref).records():
        if kind != "ticks" or record["kind"] != "trade" or record["symbol"] not in ref.stocks:
            continue
        prev = Decimal(ref.stocks[record["symbol"]].prev_close) / 1000
        if Decimal(repr(record["price"])) >= prev * Decimal("1.05"):
            crossed.add(record["symbol"])
    return crossed


def test_figures_of_the_report(summary: dict[str, Any]) -> None:
    indices = summary["indices"]
    assert indices["HSI"]["level"] == 25716.50 and round(indices["HSI"]["change_pct"], 2) == 1.97
    assert indices["HSTECH"]["level"] == 5545.56
    assert round(indices["HSTECH"]["change_pct"], 2) == 2.78
    assert summary["market"]["turnover_hkd"] == 302_600_000_000.00
    flows = summary["southbound"]
    assert flows["total"]["net_hkd"] == 8_571_340_000.00
    assert flows["SH"]["net_hkd"] == 2_077_550_000.00
    assert flows["SZ"]["net_hkd"] == 6_493_790_000.00
    for symbol, pct in MOVERS.items():
        assert round(summary["stocks"][symbol]["change_pct"], 2) == pct, symbol
    themes = {k: v for k, v in summary["sectors"].items() if k not in ("HSI", "HSTECH")}
    assert max(themes, key=lambda k: themes[k]["gain_pct"]) == "AI"


def test_alerts_of_the_default_rules(summary: dict[str, Any]) -> None:
    alerts = summary["alerts"]
    ids = [a["alert_id"] for a in alerts]
    assert len(ids) == len(set(ids))

    def fired(rule: str, subject: str | None = None) -> list[dict[str, Any]]:
        return [a for a in alerts
                if a["rule_id"] == rule and (subject is None or a["subject"] == subject)]

    assert len(fired("index-up-2pct", "HSTECH")) == 1
    assert fired("index-up-2pct", "HSTECH")[0]["ts"][11:16] >= "13:00"
    assert fired("index-up-2pct", "HSI") == []
    southbound = fired("southbound-net-inflow-8bn")
    assert len(southbound) == 1 and southbound[0]["ts"][11:16] >= "14:00"
    assert len(fired("market-turnover-300bn")) == 1
    assert {a["subject"] for a in fired("stock-up-5pct")} == crossed_five_percent()
    assert len(fired("stock-up-5pct")) == len(crossed_five_percent())
    assert fired("index-down-2pct") == [] and fired("stock-down-5pct") == []
