"""The baselines' view of the universe: plain dicts, no marketflow code on their hot path."""

from __future__ import annotations

import csv


def load(path: str) -> tuple[dict[str, list[str]], dict[str, float], dict[str, float]]:
    """(sectors by symbol, float shares, prev close) from a universe.csv."""
    members: dict[str, list[str]] = {}
    floats: dict[str, float] = {}
    prev: dict[str, float] = {}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            floats[row["symbol"]] = float(row["float_shares"])
            prev[row["symbol"]] = float(row["prev_close"])
            members[row["symbol"]] = row["sectors"].split(";")
    return members, floats, prev
