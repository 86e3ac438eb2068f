"""Build the real-data fixture from Futu 1-minute bars of 2020-03-24 (a broad rally).

Source: ../shared/data/real/futu_1m/2020-03-24/ (see its README: forward-adjusted prices,
unadjusted volume and turnover). Each bar becomes one trade tick at the bar's end time with
the bar's close, volume and turnover (explicit, so the day's turnover is the real one).
prev_close is the first bar's `last_close` (the previous day's close, on the same adjusted
basis). float_shares are NOT real: a fixed, documented stand-in (the day's volume x 20),
enough for cap weighting to be exercised. Run: python make_fixture.py SRC_DIR
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from decimal import Decimal
from pathlib import Path

FINANCIALS = {"00005", "00011", "00388", "00939", "01299", "01398", "02318", "02388",
              "02628", "03328", "03988", "00023", "02888", "01288"}
TECH = {"00700", "01810", "03690", "00981", "00268", "00992", "09988", "01024", "00241"}


def main(src: Path) -> None:
    here = Path(__file__).parent
    constituents = set(json.loads((src.parent / "HSI_constituents_2020-12-22.json").read_text()))
    ticks, universe = [], []
    for path in sorted(src.glob("HK.*.csv")):
        rows = list(csv.DictReader(path.open()))
        if not rows:
            continue
        symbol = path.stem.split(".")[1]
        prev_close = Decimal(rows[0]["last_close"]).quantize(Decimal("0.001"))
        volume = sum(int(float(r["volume"])) for r in rows)
        sectors = ["HSI"] if path.stem in constituents else ["Other"]
        if symbol in FINANCIALS:
            sectors.append("Financials")
        if symbol in TECH:
            sectors.append("Tech")
        universe.append([symbol, path.stem, str(prev_close), max(volume, 1) * 20,
                         ";".join(sectors), 100])
        for r in rows:
            ticks.append([symbol, r["time_key"].replace(" ", "T"), r["close"],
                          int(float(r["volume"])), r["turnover"]])
    ticks.sort(key=lambda t: (t[1], t[0]))
    with gzip.open(here / "futu-2020-03-24-ticks.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["symbol", "ts", "price", "qty", "turnover"])
        writer.writerows(ticks)
    with (here / "futu-2020-03-24-universe.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["symbol", "name", "prev_close", "float_shares", "sectors", "lot_size"])
        writer.writerows(universe)
    (here / "futu-indices.csv").write_text("symbol,name,prev_close\nHSI,Hang Seng Index,22663.49\n")
    print(len(ticks), "ticks,", len(universe), "stocks")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
