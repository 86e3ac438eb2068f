"""From Redis's flat hashes back to the snapshot records of `schemas/` (pure, no I/O).

The worker writes each latest snapshot as a hash (`alerts/redis_sink.py`): numbers as their
shortest round-trip text, `final` as `1`/`0`, rolling gains as `rolling_{window}`,
`top_contributors` as JSON. `snapshot_from_hash` undoes that, so the API serves the same
records as the Kafka topics (validated against `schemas/*-snapshot.schema.json` in tests).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson

log = logging.getLogger("marketflow.web")

# Figures of each snapshot type beyond type, subject, trading_date, ts and final.
FIGURES: dict[str, tuple[str, ...]] = {
    "index": ("name", "prev_close", "level", "change_pct"),
    "stock": ("name", "prev_close", "last", "change_pct", "turnover_hkd", "volume", "trades"),
    "sector": ("level", "gain_pct", "eq_gain_pct", "turnover_hkd", "advancers", "decliners",
               "unchanged", "rolling", "top_contributors"),
    "market": ("turnover_hkd", "advancers", "decliners", "unchanged"),
    "southbound": ("buy_hkd", "sell_hkd", "net_hkd"),
}
_INTEGERS = frozenset({"advancers", "decliners", "unchanged", "volume", "trades"})
_TEXT = frozenset({"name"})
SECTOR_WEIGHTS = ("float", "equal")


def parse_latest_key(prefix: str, key: str) -> tuple[str, str] | None:
    """`{prefix}latest:{type}:{subject}` (`{prefix}latest:market`) -> (type, subject)."""
    if not key.startswith(prefix + "latest:"):
        return None
    rest = key[len(prefix) + len("latest:"):]
    if rest == "market":
        return "market", "market"
    kind, sep, subject = rest.partition(":")
    if not sep or kind not in FIGURES or kind == "market" or not subject:
        return None
    return kind, subject


def snapshot_from_hash(kind: str, subject: str, fields: dict[str, str]) -> dict[str, Any] | None:
    """The snapshot record a latest hash holds, or None if the hash is incomplete (a
    half-written or foreign key: logged and left out rather than served wrong)."""
    try:
        record: dict[str, Any] = {"type": kind, "subject": subject,
                                  "trading_date": fields["trading_date"], "ts": fields["ts"],
                                  "final": fields.get("final") == "1"}
        for name in FIGURES[kind]:
            if name == "rolling":
                record["rolling"] = {field[len("rolling_"):]: float(value)
                                     for field, value in fields.items()
                                     if field.startswith("rolling_")}
            elif name == "top_contributors":
                record[name] = orjson.loads(fields.get(name, "[]"))
            elif name in _TEXT:
                record[name] = fields[name]
            elif name in _INTEGERS:
                record[name] = int(float(fields[name]))
            else:
                record[name] = float(fields[name])
    except (KeyError, ValueError, orjson.JSONDecodeError) as error:
        log.warning("latest %s %r is incomplete (%s); left out", kind, subject, error)
        return None
    return record


def sector_value(sector: dict[str, Any], window: str, weight: str) -> float | None:
    """A sector's gain (percent) for a window and a weighting: `day` free-float
    (`gain_pct`) or equal-weighted (`eq_gain_pct`); rolling windows are free-float only
    (the worker computes no equal-weighted rolling gains)."""
    if window == "day":
        return float(sector["eq_gain_pct" if weight == "equal" else "gain_pct"])
    if weight == "equal":
        return None
    value = sector.get("rolling", {}).get(window)
    return None if value is None else float(value)


def rank_sectors(sectors: Iterable[dict[str, Any]], window: str, weight: str,
                 ) -> list[dict[str, Any]]:
    """`[{subject, value}]`, highest gain first, ties by name; sectors without a value for
    the window (none yet) last."""
    rows = [{"subject": s["subject"], "value": sector_value(s, window, weight)}
            for s in sectors]
    return sorted(rows, key=lambda r: (r["value"] is None, -(r["value"] or 0.0), r["subject"]))


STOCK_ORDERS = {
    "gainers": lambda s: (-s["change_pct"], s["subject"]),
    "losers": lambda s: (s["change_pct"], s["subject"]),
    "movers": lambda s: (-abs(s["change_pct"]), s["subject"]),
    "turnover": lambda s: (-s["turnover_hkd"], s["subject"]),
    "symbol": lambda s: (s["subject"],),
}


def sort_stocks(stocks: Iterable[dict[str, Any]], order: str, limit: int | None = None,
                ) -> list[dict[str, Any]]:
    ranked = sorted(stocks, key=STOCK_ORDERS[order])
    return ranked if limit is None else ranked[:limit]


def alert_matches(alert: dict[str, Any], subjects: Iterable[str] = (),
                  rules: Iterable[str] = (), severities: Iterable[str] = ()) -> bool:
    """Each filter given (non-empty) must contain the alert's value."""
    for wanted, field in ((subjects, "subject"), (rules, "rule_id"),
                          (severities, "severity")):
        wanted = set(wanted)
        if wanted and alert.get(field) not in wanted:
            return False
    return True
