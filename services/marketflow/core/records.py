"""Input records: parsing, validation and normalisation of ticks and southbound updates.

Prices are kept as integer thousandths of a HK dollar (HKEX's finest tick is 0.001) and
money as integer cents, so that sums do not depend on the order they are added in. Every
rejection raises `RecordError` with a stable machine-readable `reason` (used as the
dead-letter reason and the `marketflow_records_rejected_total{reason}` label) and a
human-readable detail.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final, Literal

from marketflow.core.timeutil import from_datetime

Kind = Literal["trade", "index"]
Channel = Literal["SH", "SZ"]

REASONS = (
    "invalid_encoding",
    "record_too_large",
    "invalid_json",
    "invalid_csv",
    "not_an_object",
    "missing_field",
    "invalid_symbol",
    "invalid_ts",
    "invalid_price",
    "invalid_qty",
    "invalid_turnover",
    "invalid_seq",
    "invalid_kind",
    "invalid_channel",
    "invalid_amount",
    "invalid_batch",
    "stale_trading_day",
    "unknown_index",
)


class RecordError(ValueError):
    """A record that cannot be accepted; `reason` is one of `REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True, init=False, order=True, unsafe_hash=True)
class Tick:
    """One validated tick. Made once per tick on the hot path: compiled, its own
    `__init__` is a direct C call (a NamedTuple's went through `tuple.__new__`, ~0.9k
    instructions; a generated dataclass `__init__`, ~2.5k: see core/frames.py). Never
    changed once made; compared, ordered and hashed by value, field by field, as the
    NamedTuple it was."""

    symbol: str
    ts: int  # event time, epoch ms
    price: int  # thousandths of a HK dollar (index points for index ticks)
    qty: int  # shares
    turnover: int  # HK$ cents
    seq: int | None
    kind: Kind

    def __init__(self, symbol: str, ts: int, price: int, qty: int, turnover: int,
                 seq: int | None = None, kind: Kind = "trade") -> None:
        self.symbol = symbol
        self.ts = ts
        self.price = price
        self.qty = qty
        self.turnover = turnover
        self.seq = seq
        self.kind = kind

    def to_json(self) -> dict[str, Any]:
        """The canonical wire form (schemas/tick.schema.json)."""
        out: dict[str, Any] = {
            "symbol": self.symbol,
            "ts": self.ts,
            "price": milli_to_float(self.price),
            "qty": self.qty,
            "turnover": cents_to_float(self.turnover),
            "kind": self.kind,
        }
        if self.seq is not None:
            out["seq"] = self.seq
        return out


@dataclass(slots=True, frozen=True)
class SouthboundUpdate:
    channel: Channel
    ts: int  # event time, epoch ms
    buy: int  # cumulative southbound buy turnover of the day, HK$ cents
    sell: int  # cumulative southbound sell turnover of the day, HK$ cents
    quota_balance_rmb: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channel": self.channel,
            "ts": self.ts,
            "buy_hkd": cents_to_float(self.buy),
            "sell_hkd": cents_to_float(self.sell),
        }
        if self.quota_balance_rmb is not None:
            out["quota_balance_rmb"] = self.quota_balance_rmb
        return out


def milli_to_float(value: int) -> float:
    """Thousandths to a float whose shortest repr is the exact 3-decimal value."""
    return value / 1000


def cents_to_float(value: int) -> float:
    return value / 100


# --- symbols -------------------------------------------------------------------------

_NAMED_SYMBOL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,31}$")


def normalise_symbol(raw: object) -> str:
    """`"0700.HK"`, `"700"`, `"HK.00700"`, `700` -> `"00700"`; index names as given."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise RecordError("invalid_symbol", f"symbol must be a string, got {type(raw).__name__}")
    text = str(raw).strip()
    upper = text.upper()
    if upper.startswith("HK."):
        code = upper[3:]
    elif upper.endswith(".HK"):
        code = upper[:-3]
    else:
        code = upper
    if code.isdigit() and code.isascii():
        if len(code) > 5 or int(code) == 0:
            raise RecordError("invalid_symbol", f"not an HKEX stock code: {text!r}")
        return code.zfill(5)
    if code is not upper or not _NAMED_SYMBOL.match(text):
        raise RecordError("invalid_symbol", f"not a stock code or index name: {text!r}")
    return text


# --- event time ----------------------------------------------------------------------

_MIN_TS: Final = 946_684_800_000  # 2000-01-01
# Bounds that keep every number a 64-bit integer on the wire (orjson writes no larger):
MAX_AMOUNT: Final = 10**13  # a price, turnover or amount in HK$ (or index points)
MAX_INT: Final = 2**63  # qty, seq: |x| < 2**63
MAX_QTY: Final = 10**12  # shares in one trade, so that price * qty stays within 64 bits
_MAX_TS: Final = 4_102_444_800_000  # 2100-01-01


def parse_ts(raw: object) -> int:
    """RFC 3339 (offset optional: none means Asia/Hong_Kong) or integer epoch ms."""
    if isinstance(raw, bool):
        raise RecordError("invalid_ts", "ts must be RFC 3339 or epoch milliseconds, got a bool")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, float):
        if not raw.is_integer():
            raise RecordError("invalid_ts", f"epoch milliseconds must be an integer: {raw!r}")
        value = int(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        if text.isdigit() and text.isascii():
            value = int(text) if len(text) <= 16 else _MAX_TS  # longer: out of range
        else:
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise RecordError("invalid_ts", f"not an RFC 3339 timestamp: {raw!r}") from None
            value = from_datetime(parsed)
    else:
        raise RecordError("invalid_ts",
                          f"ts must be RFC 3339 or epoch ms, got {type(raw).__name__}")
    if not _MIN_TS <= value < _MAX_TS:
        raise RecordError("invalid_ts", f"event time out of range (2000..2100): {raw!r}")
    return value


# --- decimal quantities --------------------------------------------------------------


def to_fixed(raw: object, places: int, reason: str, name: str) -> int:
    """A finite decimal number to an integer count of 10**-places, rounded half-even.

    Floats take a fast path when they are clearly not on a rounding tie; everything else
    (ties, strings) goes through `Decimal` of the number's shortest repr, so `2.0005`
    rounds as the decimal it was written as, not as its binary approximation.
    """
    if isinstance(raw, bool):
        raise RecordError(reason, f"{name} must be a number, got a bool")
    if isinstance(raw, int):
        if abs(raw) >= MAX_AMOUNT:
            raise RecordError(reason, f"{name} out of range (at most 1e13): {raw!r}")
        return raw * 10**places
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise RecordError(reason, f"{name} must be finite, got {raw!r}")
        if abs(raw) >= MAX_AMOUNT:
            raise RecordError(reason, f"{name} out of range (at most 1e13): {raw!r}")
        scaled = raw * 10**places
        nearest = round(scaled)
        if abs(scaled - nearest) < 0.25 and abs(scaled) < 1e14:
            return int(nearest)
        text = repr(raw)
    elif isinstance(raw, str):
        text = raw.strip()
    else:
        raise RecordError(reason, f"{name} must be a number, got {type(raw).__name__}")
    try:
        number = Decimal(text[:64])
    except InvalidOperation:
        raise RecordError(reason, f"{name} is not a number: {raw!r:.80}") from None
    if not number.is_finite():
        raise RecordError(reason, f"{name} must be finite, got {raw!r}")
    if len(text) > 64 or number.adjusted() >= 13:  # |x| >= MAX_AMOUNT, without arithmetic
        raise RecordError(reason, f"{name} out of range (at most 1e13): {raw!r:.80}")
    return int(number.scaleb(places).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _half_even_div(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def parse_int(raw: object, reason: str, name: str) -> int:
    if isinstance(raw, bool):
        raise RecordError(reason, f"{name} must be an integer, got a bool")
    value = raw
    if isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str) and raw.strip().lstrip("-").isdigit() and raw.isascii():
        value = int(raw.strip()) if len(raw.strip()) <= 20 else MAX_INT
    if isinstance(value, int):
        if not -MAX_INT < value < MAX_INT:
            raise RecordError(reason, f"{name} out of range (64-bit): {raw!r:.80}")
        return value
    raise RecordError(reason, f"{name} must be an integer, got {raw!r:.80}")


# --- records -------------------------------------------------------------------------


def _require(obj: dict[str, Any], key: str) -> Any:
    value = obj.get(key)
    if value is None or value == "":
        raise RecordError("missing_field", f"{key} is required")
    return value


def parse_tick(obj: object) -> Tick:
    """Validate and normalise one decoded Tick object (unknown fields are ignored)."""
    if type(obj) is dict:
        tick = parse_tick_fast(obj)
        if tick is not None:
            return tick
    return _parse_tick(obj)


# Loose forms on the fast path: a feed repeats the same few thousand symbol spellings and
# one or two date-and-offset prefixes all day, so both are normalised once and cached.
_SYMBOLS: Final[dict[str, str]] = {}
_SYMBOLS_MAX: Final = 1 << 16
_DAY_STARTS: Final[dict[str, int | None]] = {}  # "YYYY-MM-DD|offset" -> epoch ms of 00:00 there
_MINUTES: Final[dict[str, int | None]] = {}  # "YYYY-MM-DDTHH:MM" + zone -> epoch ms of that minute
_MINUTES_MAX: Final = 1 << 16  # a trading day has ~330 minutes (times the zone spellings in use)
# per length of the text (24: `...Z`, 29: `...±HH:MM`): the date, hour and minute, the
# zone, and the epoch ms of that minute last read (NUL text matches no time)
_LAST_MINUTE: Final[list[tuple[str, str, int]]] = [("\0", "\0", 0)] * 30
_RFC3339: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{3}|\d{6}))?(Z|[+-]\d{2}:\d{2})?")


def _fast_symbol(raw: str) -> str | None:
    """The canonical symbol of a spelling seen before (or valid now), else None."""
    symbol = _SYMBOLS.get(raw)
    if symbol is None:
        try:
            symbol = normalise_symbol(raw)
        except RecordError:
            return None
        if len(_SYMBOLS) >= _SYMBOLS_MAX:
            _SYMBOLS.clear()
        _SYMBOLS[raw] = symbol
    return symbol


def _fast_ts(text: str) -> int | None:
    """Epoch ms of `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff][Z|±HH:MM]` (no offset: Hong Kong),
    exactly as `parse_ts` reads it; None for anything else (the general path decides).

    The usual forms carry milliseconds (`...:SS.fffZ`, `...:SS.fff+08:00`): the text
    without its seconds and milliseconds is the same for every tick of a minute, so its
    value is worked out once per minute and cached (per second, a sparse day of a few
    ticks a second missed the cache at one tick in four); seconds and milliseconds are
    read from their fixed places."""
    size = len(text)
    if (size == 24 or size == 29) and text[16] == ":" and text[19] == ".":
        zone = text[23]
        if (zone == "Z" and size == 24) or ((zone == "+" or zone == "-") and size == 29):
            # the five digits, each read as a code point (no slice, no int() of a string)
            s1, s2 = ord(text[17]) - 48, ord(text[18]) - 48
            m1, m2, m3 = ord(text[20]) - 48, ord(text[21]) - 48, ord(text[22]) - 48
            if (0 <= s1 <= 5 and 0 <= s2 <= 9 and 0 <= m1 <= 9 and 0 <= m2 <= 9
                    and 0 <= m3 <= 9):
                # the last minute read in this form first: ticks come in time order, so
                # most share it, and a match needs no slice, no new string, no hash
                last = _LAST_MINUTE[size]
                if text.startswith(last[0]) and text.endswith(last[1]):
                    minute = last[2]
                else:
                    key = text[:16] + text[23:]
                    cached = _MINUTES.get(key, -1)
                    if cached == -1:
                        cached = _rfc3339_ms(text[:16] + ":00" + text[23:])
                        if len(_MINUTES) >= _MINUTES_MAX:
                            _MINUTES.clear()
                        _MINUTES[key] = cached
                    if cached is None:
                        return None
                    minute = cached
                    # one tuple, replaced whole: another thread reads a whole entry
                    _LAST_MINUTE[size] = (text[:16], text[23:], minute)
                value = minute + (s1 * 10 + s2) * 1000 + m1 * 100 + m2 * 10 + m3
                return value if _MIN_TS <= value < _MAX_TS else None
    return _rfc3339_ms(text)


def rfc3339_ms(text: str) -> int | None:
    """Epoch ms of an RFC 3339 time with a `Z` or `±HH:MM` offset (none: Hong Kong), or
    None if it is not one; cached per minute for the usual millisecond forms."""
    return _fast_ts(text)


def _rfc3339_ms(text: str) -> int | None:
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    date, hh, mm, ss, fraction, offset = match.groups()
    key = f"{date}|{offset}"
    start = _DAY_STARTS.get(key, -1)
    if start == -1:
        try:
            start = from_datetime(dt.datetime.fromisoformat(f"{date}T00:00:00{offset or ''}"))
        except ValueError:
            start = None
        if len(_DAY_STARTS) >= 4096:
            _DAY_STARTS.clear()
        _DAY_STARTS[key] = start
    hours, minutes, seconds = int(hh), int(mm), int(ss)
    if start is None or hours > 23 or minutes > 59 or seconds > 59:
        return None
    value = start + ((hours * 60 + minutes) * 60 + seconds) * 1000
    if fraction:
        value += int(fraction[:3])
    return value if _MIN_TS <= value < _MAX_TS else None


def parse_tick_fast(obj: dict[str, Any]) -> Tick | None:
    """`parse_tick`'s fast path alone, for loops over many records (they call it first,
    then `parse_tick` when it returns None). It takes the common forms: the canonical wire
    form (what our producers write: a 5-digit symbol, integer epoch ms, a float or int
    price already on the 0.001 grid, integer qty) and the usual loose ones (other symbol
    spellings, RFC 3339 times). Anything else returns None and takes the general path,
    which gives the same result for these inputs (tests check the two agree)."""
    symbol = obj.get("symbol")
    ts = obj.get("ts")
    price = obj.get("price")
    qty = obj.get("qty")
    if len(obj) == (3 if qty is None else 4):  # nothing else: a trade, turnover = p * q
        return tick_of(symbol, ts, price, qty, "trade", None, None)
    return tick_of(symbol, ts, price, qty, obj.get("kind", "trade"), obj.get("turnover"),
                   obj.get("seq"))


def tick_of(symbol: Any, ts: Any, price: Any, qty: Any, kind: Any, turnover: Any,
            seq: Any) -> Tick | None:
    """`parse_tick_fast` on a tick's fields as decoded (None for an absent one, "trade"
    for an absent kind), from a dict or from a decoder that fills fields in place
    (`marketflow.ingest.wire`). Typed Any: mypyc would check a declared type on entry."""
    if qty is None:
        qty = 0
    if type(symbol) is not str or type(qty) is not int or not 0 <= qty <= MAX_QTY:
        return None
    canonical = _SYMBOLS.get(symbol)
    if canonical is None:
        canonical = _fast_symbol(symbol)
        if canonical is None:
            return None
    if type(ts) is not int:
        if type(ts) is not str:
            return None
        ts = _fast_ts(ts)
        if ts is None:
            return None
    elif not _MIN_TS <= ts < _MAX_TS:
        return None
    if type(price) is float:
        if not 0 < price < 1e7:  # also false for NaN
            return None
        scaled = price * 1000
        milli = int(scaled + 0.5)  # round(): the same where the check below passes
        if not (abs(scaled - milli) < 1e-6 and 0 < milli < 10**10):
            return None
    elif type(price) is int and 0 < price < 10**11:
        milli = price * 1000
    else:
        return None
    if type(kind) is not str:  # (then compared as strings, not as two objects)
        return None
    kind_text: str = kind
    if kind_text == "trade":
        tick_kind: Kind = "trade"
    elif kind_text == "index":
        tick_kind = "index"
    else:
        return None
    if turnover is None:
        tenths = milli * qty  # HK$ cents, half to even
        cents, remainder = tenths // 10, tenths % 10
        if remainder > 5 or (remainder == 5 and cents % 2 == 1):
            cents += 1
    elif type(turnover) is float and 0 <= turnover < 1e11:
        scaled = turnover * 100
        cents = int(scaled + 0.5)
        if not abs(scaled - cents) < 1e-4:
            return None
    elif type(turnover) is int and turnover >= 0:
        cents = turnover * 100
    else:
        return None
    if seq is not None and (type(seq) is not int or not (
            -_SHORT < seq < _SHORT or -MAX_INT < seq < MAX_INT)):
        return None
    if cents >= _MAX_CENTS:
        return None
    return Tick(canonical, ts, milli, qty, cents, seq, tick_kind)


_MAX_CENTS: Final = MAX_AMOUNT * 100
# Compiled, comparing two ints is a few instructions when both are below 2**62 and a call
# when one is not (MAX_INT): the usual seq is checked against this first.
_SHORT: Final = 2**61


def _parse_tick(obj: object) -> Tick:
    if not isinstance(obj, dict):
        raise RecordError("not_an_object",
                          f"a tick must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind") or "trade"
    if kind not in ("trade", "index"):
        raise RecordError("invalid_kind", f"kind must be 'trade' or 'index', got {kind!r}")
    symbol = normalise_symbol(_require(obj, "symbol"))
    ts = parse_ts(_require(obj, "ts"))
    price = to_fixed(_require(obj, "price"), 3, "invalid_price", "price")
    if price <= 0:
        raise RecordError("invalid_price", f"price must be > 0, got {obj['price']!r}")
    raw_qty = obj.get("qty")
    qty = 0 if raw_qty is None or raw_qty == "" else parse_int(raw_qty, "invalid_qty", "qty")
    if not 0 <= qty <= MAX_QTY:
        raise RecordError("invalid_qty", f"qty must be >= 0 and at most 1e12, got {qty}")
    raw_turnover = obj.get("turnover")
    if raw_turnover is None or raw_turnover == "":
        turnover = _half_even_div(price * qty, 10)
        if turnover >= MAX_AMOUNT * 100:
            raise RecordError("invalid_turnover", "price * qty out of range (at most 1e13)")
    else:
        turnover = to_fixed(raw_turnover, 2, "invalid_turnover", "turnover")
        if turnover < 0:
            raise RecordError("invalid_turnover", f"turnover must be >= 0, got {raw_turnover!r}")
    raw_seq = obj.get("seq")
    seq = None if raw_seq is None or raw_seq == "" else parse_int(raw_seq, "invalid_seq", "seq")
    return Tick(symbol, ts, price, qty, turnover, seq, kind)  # type: ignore[arg-type]


def parse_ticks(obj: object) -> list[Tick]:
    """A record value of `md.ticks`: one Tick object or a JSON array of them.

    A batch is all-or-nothing: its first bad element rejects the record, so that the
    dead-letter topic holds the record exactly as it was received.
    """
    if isinstance(obj, list):
        if not obj:
            raise RecordError("invalid_batch", "a tick batch must not be empty")
        ticks = []
        for index, item in enumerate(obj):
            try:
                ticks.append(parse_tick(item))
            except RecordError as error:
                raise RecordError(error.reason, f"batch element {index}: {error.detail}") from None
        return ticks
    return [parse_tick(obj)]


def parse_southbound(obj: object) -> SouthboundUpdate:
    if not isinstance(obj, dict):
        raise RecordError(
            "not_an_object", f"a southbound update must be a JSON object, got {type(obj).__name__}"
        )
    channel = str(_require(obj, "channel")).strip().upper()
    if channel not in ("SH", "SZ"):
        raise RecordError("invalid_channel",
                          f"channel must be 'SH' or 'SZ', got {obj['channel']!r}")
    ts = parse_ts(_require(obj, "ts"))
    buy = to_fixed(_require(obj, "buy_hkd"), 2, "invalid_amount", "buy_hkd")
    sell = to_fixed(_require(obj, "sell_hkd"), 2, "invalid_amount", "sell_hkd")
    if buy < 0 or sell < 0:
        raise RecordError("invalid_amount", "buy_hkd and sell_hkd must be >= 0")
    raw_quota = obj.get("quota_balance_rmb")
    quota: float | None = None
    if raw_quota is not None and raw_quota != "":
        quota = to_fixed(raw_quota, 2, "invalid_amount", "quota_balance_rmb") / 100
    return SouthboundUpdate(channel, ts, buy, sell, quota)  # type: ignore[arg-type]
