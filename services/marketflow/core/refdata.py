"""Reference data: the universe of stocks with their sectors, and the indices."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from marketflow.core.records import RecordError, normalise_symbol, to_fixed


class ReferenceDataError(ValueError):
    """A reference file that cannot be used; the message names file, line and field."""


@dataclass(slots=True, frozen=True)
class Stock:
    symbol: str
    name: str
    prev_close: int  # thousandths of a HK dollar
    float_shares: int
    sectors: tuple[str, ...]
    lot_size: int


@dataclass(slots=True, frozen=True)
class Index:
    symbol: str
    name: str
    prev_close: int  # thousandths of an index point


@dataclass(slots=True)
class ReferenceData:
    stocks: dict[str, Stock]
    indices: dict[str, Index]
    sector_members: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        members: dict[str, list[str]] = {}
        for stock in self.stocks.values():
            for sector in stock.sectors:
                members.setdefault(sector, []).append(stock.symbol)
        self.sector_members = {
            name: tuple(symbols) for name, symbols in sorted(members.items())
        }

    @classmethod
    def load(cls, universe: Path, indices: Path) -> ReferenceData:
        return cls(load_universe(universe), load_indices(indices))


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise ReferenceDataError(f"{path}: cannot read: {error.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise ReferenceDataError(f"{path}: missing column(s) {', '.join(missing)}")
        return [(number, row) for number, row in enumerate(reader, start=2)]


def _price(path: Path, line: int, raw: str) -> int:
    try:
        value = to_fixed(raw, 3, "invalid_price", "prev_close")
    except RecordError as error:
        raise ReferenceDataError(f"{path}:{line}: prev_close: {error.detail}") from None
    if value <= 0:
        raise ReferenceDataError(f"{path}:{line}: prev_close must be > 0, got {raw!r}")
    return value


def _positive_int(path: Path, line: int, field: str, raw: str) -> int:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value.is_integer() or value <= 0:
        raise ReferenceDataError(f"{path}:{line}: {field} must be a positive integer, got {raw!r}")
    return int(value)


def load_universe(path: Path) -> dict[str, Stock]:
    fields = ("symbol", "name", "prev_close", "float_shares", "sectors", "lot_size")
    stocks: dict[str, Stock] = {}
    for line, row in _rows(path, fields):
        try:
            symbol = normalise_symbol(row["symbol"])
        except RecordError as error:
            raise ReferenceDataError(f"{path}:{line}: symbol: {error.detail}") from None
        if symbol in stocks:
            raise ReferenceDataError(f"{path}:{line}: duplicate symbol {symbol}")
        sectors = tuple(dict.fromkeys(s.strip() for s in row["sectors"].split(";") if s.strip()))
        stocks[symbol] = Stock(
            symbol=symbol,
            name=row["name"].strip(),
            prev_close=_price(path, line, row["prev_close"]),
            float_shares=_positive_int(path, line, "float_shares", row["float_shares"]),
            sectors=sectors,
            lot_size=_positive_int(path, line, "lot_size", row["lot_size"]),
        )
    if not stocks:
        raise ReferenceDataError(f"{path}: no stocks")
    return stocks


def load_indices(path: Path) -> dict[str, Index]:
    indices: dict[str, Index] = {}
    for line, row in _rows(path, ("symbol", "name", "prev_close")):
        symbol = row["symbol"].strip()
        if not symbol:
            raise ReferenceDataError(f"{path}:{line}: empty symbol")
        indices[symbol] = Index(symbol, row["name"].strip(), _price(path, line, row["prev_close"]))
    return indices
