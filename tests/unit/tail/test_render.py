"""`marketflow tail`: --from, the Redis position it means, filters and table rows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from marketflow.core.timeutil import HKT
from marketflow.tail.render import (
    MAX_SEQ,
    Start,
    StartError,
    day_start_ms,
    matches,
    parse_start,
    row,
    stream_after,
)
from tests.schemas import schemas_dir


@pytest.mark.parametrize(("text", "start"), [
    ("now", Start("now")), ("LATEST", Start("now")), ("today", Start("today")),
    ("start", Start("start")), ("earliest", Start("start")), ("0", Start("offset", offset=0)),
    ("1234", Start("offset", offset=1234)),
    ("1763947800000-0", Start("id", stream_id="1763947800000-0")),
])
def test_parse_start(text: str, start: Start) -> None:
    assert parse_start(text) == start


@pytest.mark.parametrize("text", ["yesterday", "-5", "12-", "1.5", ""])
def test_parse_start_refuses(text: str) -> None:
    with pytest.raises(StartError):
        parse_start(text)


NOW = dt.datetime(2025, 11, 24, 14, 5, tzinfo=HKT)
MIDNIGHT_MS = 1763913600000  # 2025-11-24T00:00+08:00


def test_day_start_is_hong_kong_midnight() -> None:
    assert day_start_ms(NOW) == MIDNIGHT_MS
    # 23:30 UTC on the 23rd is already the 24th in Hong Kong
    assert day_start_ms(dt.datetime(2025, 11, 23, 23, 30, tzinfo=dt.UTC)) == MIDNIGHT_MS


@pytest.mark.parametrize(("start", "last", "after"), [
    (Start("start"), "5-0", "0-0"),
    (Start("now"), "1763947800000-3", "1763947800000-3"),
    (Start("now"), None, "0-0"),
    (Start("today"), "5-0", f"{MIDNIGHT_MS - 1}-{MAX_SEQ}"),
    (Start("id", stream_id="1763947800000-2"), None, "1763947800000-1"),
    (Start("id", stream_id="1763947800000-0"), None, f"1763947799999-{MAX_SEQ}"),
])
def test_stream_after(start: Start, last: str | None, after: str) -> None:
    assert stream_after(start, NOW, last) == after


def test_stream_after_refuses_an_offset() -> None:
    with pytest.raises(StartError):
        stream_after(Start("offset", offset=3), NOW, None)


ALERT = json.loads((schemas_dir() / "examples" / "alert" / "valid" / "sector.json").read_text())


@pytest.mark.parametrize(("filters", "value", "keep"), [
    ({}, ALERT, True),
    ({}, [1, 2], True),
    ({"subjects": [ALERT["subject"]]}, ALERT, True),
    ({"subjects": ["HSI"]}, ALERT, False),
    ({"rules": [ALERT["rule_id"]], "severities": [ALERT["severity"]]}, ALERT, True),
    ({"severities": ["critical"]}, {**ALERT, "severity": "info"}, False),
    ({"rules": ["x"]}, {"type": "index", "subject": "HSI"}, False),  # snapshots have no rule
    ({"subjects": ["HSI"]}, {"type": "index", "subject": "HSI"}, True),
    ({"subjects": ["HSI"]}, [{"subject": "HSI"}], False),
])
def test_matches(filters: dict[str, list[str]], value: Any, keep: bool) -> None:
    assert matches(value, **filters) is keep


EXAMPLES = sorted(path for kind in ("index", "stock", "sector", "market", "southbound",
                                    "alert", "deadletter")
                  for path in (schemas_dir() / "examples" / (kind if kind in ("alert", "deadletter")
                                                             else f"{kind}-snapshot")
                               / "valid").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_record_has_a_row(path: Path) -> None:
    record = json.loads(path.read_text())
    text = row(record)
    assert "\n" not in text and len(text) < 400
    subject = record.get("subject") or record.get("reason")
    assert str(subject) in text


def test_rows_of_alerts_ticks_and_others() -> None:
    text = row({**ALERT, "metric": "southbound.net_inflow_hkd", "value": 8.57e9,
                "threshold": 8e9, "op": ">=", "severity": "critical"})
    assert "CRITICAL" in text and "HK$8.57bn ≥ HK$8.00bn" in text
    ticks = row([{"symbol": "00700", "ts": 1763947800000, "price": 614.5, "qty": 100},
                 {"symbol": "HSI", "ts": 1763947801000, "price": 25220.0, "kind": "index"}])
    assert ticks.splitlines()[0].startswith("09:30:00  trade")
    assert "HSI" in ticks.splitlines()[1]
    assert row({"raw": "not json"}, key="k").startswith("k  ")
