"""`marketflow tail`: where to start, which records to keep, how to print them (pure).

Records are printed as JSON lines (`--json`: the value exactly as on the topic or in the
stream, one per line) or as table rows, one per record, chosen by the record's shape:
alerts, the five snapshot types, dead letters, ticks and southbound updates; anything
else as its key and compact JSON.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from marketflow.core.timeutil import HKT, day_bounds, day_number, hkt_clock

_STREAM_ID = re.compile(r"^(\d+)-(\d+)$")
MAX_SEQ = 2**64 - 1


class StartError(ValueError):
    """An unreadable --from (exit 2)."""


@dataclass(frozen=True, slots=True)
class Start:
    kind: str  # "now", "today", "start", "offset", "id"
    offset: int = 0  # for "offset"
    stream_id: str = ""  # for "id": a Redis stream id, inclusive


def parse_start(text: str) -> Start:
    """`now` (default: only what arrives from now on), `today` (since 00:00 Hong Kong time,
    by the time each record was written), `start` (everything kept), a Kafka offset
    (`1234`, from that offset of every partition followed) or a Redis stream id
    (`1763947800000-0`, from that entry on)."""
    value = text.strip().lower()
    if value in ("now", "latest", "end"):
        return Start("now")
    if value in ("today", "day"):
        return Start("today")
    if value in ("start", "beginning", "earliest"):
        return Start("start")
    if value.isdigit():
        return Start("offset", offset=int(value))
    if _STREAM_ID.match(value):
        return Start("id", stream_id=value)
    raise StartError(f"--from {text!r}: use now, today, start, an offset (1234) or a Redis "
                     "stream id (1763947800000-0)")


def day_start_ms(now: dt.datetime) -> int:
    """00:00 Hong Kong time of the date `now` falls on, in epoch ms."""
    ms = int(now.timestamp() * 1000)
    return day_bounds(day_number(ms))[0]


def stream_after(start: Start, now: dt.datetime, last_id: str | None) -> str:
    """The id to XREAD after (exclusive) for a start; `last_id` is the stream's newest."""
    if start.kind == "start":
        return "0-0"
    if start.kind == "now":
        return last_id or "0-0"
    if start.kind == "today":
        return f"{day_start_ms(now) - 1}-{MAX_SEQ}"
    if start.kind == "id":
        ms, seq = (int(part) for part in start.stream_id.split("-"))
        return f"{ms}-{seq - 1}" if seq > 0 else f"{max(ms - 1, 0)}-{MAX_SEQ}"
    raise StartError("a Kafka offset does not apply to the Redis stream: give a stream id "
                     "such as 1763947800000-0")


def matches(value: Any, subjects: Iterable[str] = (), rules: Iterable[str] = (),
            severities: Iterable[str] = ()) -> bool:
    """Every filter given must contain the record's field (`subject`, `rule_id`,
    `severity`); a record without the field (or not an object) does not match it."""
    for wanted, field in ((subjects, "subject"), (rules, "rule_id"),
                          (severities, "severity")):
        wanted = set(wanted)
        if wanted and (not isinstance(value, dict) or value.get(field) not in wanted):
            return False
    return True


def json_line(value: Any) -> str:
    return orjson.dumps(value).decode()


def _pct(value: Any) -> str:
    return f"{float(value):+.2f}%" if isinstance(value, int | float) else "-"


def _money(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    a = abs(value)
    if a >= 1e9:
        return f"HK${value / 1e9:,.2f}bn"
    if a >= 1e6:
        return f"HK${value / 1e6:,.1f}m"
    return f"HK${value:,.0f}"


def _clock(value: Any) -> str:
    text = str(value or "")
    return text[11:19] if len(text) >= 19 else text or "-"


def _snapshot(value: dict[str, Any]) -> str:
    kind, subject = value.get("type"), str(value.get("subject", ""))
    if kind == "index":
        figures = f"{value.get('level', 0):,.2f}  {_pct(value.get('change_pct'))}"
    elif kind == "stock":
        figures = (f"{value.get('last', 0):,.3f}  {_pct(value.get('change_pct'))}  "
                   f"{_money(value.get('turnover_hkd'))}")
    elif kind == "sector":
        rolling = " ".join(f"{w} {_pct(g)}" for w, g in (value.get("rolling") or {}).items())
        figures = (f"{_pct(value.get('gain_pct'))} (eq {_pct(value.get('eq_gain_pct'))})  "
                   f"{rolling}")
    elif kind == "market":
        figures = (f"{_money(value.get('turnover_hkd'))}  {value.get('advancers')} up "
                   f"{value.get('decliners')} down")
    else:  # southbound
        figures = (f"net {_money(value.get('net_hkd'))}  buy {_money(value.get('buy_hkd'))} "
                   f"sell {_money(value.get('sell_hkd'))}")
    final = "  final" if value.get("final") else ""
    return f"{_clock(value.get('ts'))}  {kind:<10} {subject:<24} {figures}{final}"


def _tick(value: dict[str, Any]) -> str:
    ts = value.get("ts")
    clock = hkt_clock(ts) if isinstance(ts, int) else _clock(ts)
    return (f"{clock}  {value.get('kind', 'trade'):<10} {value.get('symbol', '')!s:<24} "
            f"{value.get('price')}  x{value.get('qty', 0)}")


def row(value: Any, key: str | None = None) -> str:
    """One table row for a record."""
    if isinstance(value, dict):
        if "alert_id" in value and "rule_id" in value:
            op = "≥" if value.get("op") == ">=" else "≤"
            metric = str(value.get("metric", ""))
            fmt = _pct if metric.endswith("_pct") else _money
            return (f"{_clock(value.get('ts'))}  {str(value.get('severity', '')).upper():<8} "
                    f"{value.get('rule_id', '')!s:<28} {value.get('subject', '')!s:<16} "
                    f"{fmt(value.get('value'))} {op} {fmt(value.get('threshold'))}  "
                    f"{value.get('message', '')}")
        if value.get("type") in ("index", "stock", "sector", "market", "southbound"):
            return _snapshot(value)
        if "reason" in value and "source_topic" in value:
            where = f"{value.get('source_topic')}[{value.get('partition')}@{value.get('offset')}]"
            return (f"{_clock(value.get('at'))}  {'REJECTED':<10} {value.get('reason', '')!s:<24} "
                    f"{where}  {value.get('detail', '')}")
        if "symbol" in value and "price" in value:
            return _tick(value)
        if "channel" in value and "buy_hkd" in value:
            return (f"{_clock(value.get('ts'))}  {'southbound':<10} {value.get('channel')!s:<24} "
                    f"buy {_money(value.get('buy_hkd'))} sell {_money(value.get('sell_hkd'))}")
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "\n".join(row(v) for v in value)  # a batch of ticks: one row each
    text = json_line(value)
    return f"{key or '-'}  {text[:200]}"


def wall_clock_now() -> dt.datetime:
    return dt.datetime.now(HKT)
