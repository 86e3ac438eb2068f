"""The nasty day: the small clean day (`tests/data/small/ticks.jsonl`) with the hand-made
corpus of `tests/data/nasty/` mixed in, and what every reader of it must make of it.

    day = build_nasty_day(tmp_path / "ticks.jsonl", valid_oddities=True)
    day.parse_rejects   # [(line, reason, element index or None)]: what produce dead-letters
    day.valid           # canonical ticks, in order: what produce publishes, backtest applies
    day.rejected        # Counter by reason: what backtest reports

Mixed in, at fixed places: every line of `bad-lines.jsonl` (reasons in `bad-lines.reasons`),
arrays of consecutive clean ticks with the elements of `bad-elements.jsonl` between them
(the good ticks must survive), an all-bad array, a 10 MB line, empty and blank lines, a BOM
at the start, CRLF on every seventh line, a tick of the previous trading day and an unknown
index (valid records the core rejects when applying them). With `valid_oddities`, also
records that are valid but odd: clean ticks in loose forms (other symbol spellings,
offset-less and `Z` times, numbers as strings), repeated seqs, out-of-order events and an
unknown stock symbol.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from marketflow.core.records import parse_tick
from marketflow.core.timeutil import HKT

DATA = Path(__file__).parent / "data"
NASTY = DATA / "nasty"
SMALL = DATA / "small"
HUGE_LINE_BYTES = 10 << 20
DAY_MS = 86_400_000


def corpus(name: str) -> list[tuple[bytes, str]]:
    """(line, reason) pairs of a hand-made corpus file and its `.reasons` sidecar."""
    lines = (NASTY / f"{name}.jsonl").read_bytes().split(b"\n")[:-1]
    reasons = (NASTY / f"{name}.reasons").read_text().split()
    assert len(lines) == len(reasons), name
    return list(zip(lines, reasons, strict=True))


def canonical(line: str | bytes) -> dict[str, Any]:
    return parse_tick(json.loads(line)).to_json()


@dataclass
class NastyDay:
    path: Path
    parse_rejects: list[tuple[int, str, int | None]] = field(default_factory=list)
    apply_rejects: Counter[str] = field(default_factory=Counter)
    valid: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0

    @property
    def rejected(self) -> Counter[str]:
        """What `marketflow backtest` counts: every rejected line or element, by reason."""
        return Counter(reason for _, reason, _ in self.parse_rejects) + self.apply_rejects


class _Writer:
    def __init__(self, day: NastyDay) -> None:
        self.day = day
        self.out = day.path.open("wb")
        self.out.write(b"\xef\xbb\xbf")

    def line(self, data: bytes) -> int:
        self.day.lines += 1
        self.out.write(data + (b"\r\n" if self.day.lines % 7 == 0 else b"\n"))
        return self.day.lines

    def reject(self, data: bytes, reason: str) -> None:
        self.day.parse_rejects.append((self.line(data), reason, None))

    def valid(self, data: bytes | str, as_json: dict[str, Any] | None = None) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.line(raw)
        self.day.valid.append(as_json or canonical(raw))


def _loose(tick: dict[str, Any], variant: int) -> dict[str, Any]:
    """The same tick written another accepted way."""
    import datetime as dt

    out = dict(tick)
    when = dt.datetime.fromtimestamp(tick["ts"] / 1000, HKT)
    if variant % 3 == 0:
        out["ts"] = when.replace(tzinfo=None).isoformat(timespec="milliseconds")  # HKT
    elif variant % 3 == 1:
        out["ts"] = when.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
    if tick.get("kind", "trade") == "trade":
        out["symbol"] = [f"{int(tick['symbol'])}.HK", f"HK.{tick['symbol']}",
                         str(int(tick["symbol"]))][variant % 3]
        out["price"] = f"{tick['price']:.3f}"
        out["qty"] = str(tick.get("qty", 0))
    return out


def build_nasty_day(path: Path, *, valid_oddities: bool, huge_line: bool = True) -> NastyDay:
    clean = (SMALL / "ticks.jsonl").read_text().splitlines()
    bad_lines, bad_elements = corpus("bad-lines"), corpus("bad-elements")
    day = NastyDay(path)
    w = _Writer(day)
    # where things go: spread over the day, none before the first clean tick
    every = len(clean) // (len(bad_lines) + 1)
    batch_at = {i: n for n, i in enumerate(range(150, len(clean) - 100, 300))}
    elements = list(bad_elements)
    i = 0
    seen: dict[str, dict[str, Any]] = {}
    try:
        while i < len(clean):
            if i in batch_at and elements:
                # an array of consecutive clean ticks with one or two bad elements between
                take = 3 + batch_at[i] % 4
                good = [json.loads(line) for line in clean[i:i + take]]
                items: list[bytes] = [json.dumps(t).encode() for t in good]
                bad_here = [elements.pop(0) for _ in range(min(len(elements),
                                                               1 + batch_at[i] % 2))]
                for k, (element, _) in enumerate(bad_here):
                    items.insert(1 + 2 * k, element)
                number = w.line(b"[" + b", ".join(items) + b"]")
                for index, item in enumerate(items):
                    match = [reason for element, reason in bad_here if element is item]
                    if match:
                        day.parse_rejects.append((number, match[0], index))
                day.valid += [canonical(json.dumps(t)) for t in good]
                for t in good:
                    seen[t["symbol"]] = t
                i += take
                continue
            line = clean[i]
            tick = json.loads(line)
            if valid_oddities and i % 97 == 5:
                w.valid(json.dumps(_loose(tick, i)), canonical(line))  # same tick, loose
            else:
                w.valid(line)
            seen[tick["symbol"]] = tick
            if i and i % every == 0 and bad_lines:
                w.reject(*bad_lines.pop(0))
            if i % 500 == 250:
                w.line(b"")
                w.line(b"   \t ")
            if i == 1000:  # a valid record of the previous trading day: stale when applied
                w.valid(json.dumps({**tick, "ts": tick["ts"] - DAY_MS}))
                day.apply_rejects["stale_trading_day"] += 1
            if i == 1500:  # a valid index tick of an index not in indices.csv
                w.valid(json.dumps({"symbol": "NOPE", "ts": tick["ts"], "price": 100.0,
                                    "kind": "index"}))
                day.apply_rejects["unknown_index"] += 1
            if i == 2000 and huge_line:
                pad = b"x" * HUGE_LINE_BYTES
                w.reject(b'{"symbol": "00700", "ts": 1763947801304, "price": 598.5, "pad": "'
                         + pad + b'"}', "record_too_large")
            if i == 2500:  # an array of bad elements only
                number = w.line(b'[42, {"symbol": "00700"}]')
                day.parse_rejects += [(number, "not_an_object", 0), (number, "missing_field", 1)]
            if valid_oddities:
                if i % 301 == 17 and "seq" in tick:
                    w.valid(line)  # the same seq again: a duplicate
                if i % 401 == 33:  # out of order: an earlier tick of another symbol again
                    earlier = next((t for s, t in seen.items() if s != tick["symbol"]), None)
                    if earlier is not None:
                        w.valid(json.dumps(earlier))
                if i == 3000:
                    w.valid(json.dumps({"symbol": "09999", "ts": tick["ts"], "price": 12.5,
                                        "qty": 1000, "seq": 1}))
            i += 1
        assert not bad_lines and not elements, "corpus not all used: spread it wider"
    finally:
        w.out.close()
    return day
