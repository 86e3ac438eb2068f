"""Reading record files: JSON lines or CSV (column names = record fields), gzip or not.

Each line yields `(line_number, raw_text, object)` where object is the decoded dict (or
list, for a JSON-lines tick batch) or a `RecordError` saying why the line is unusable; the
caller decides whether that becomes a dead letter. Empty lines are skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from marketflow.core.records import RecordError

GZIP_MAGIC = b"\x1f\x8b"


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _is_csv(path: Path, first_line: str) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return True
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return False
    return not first_line.lstrip().startswith(("{", "["))


def read_records(path: Path) -> Iterator[tuple[int, str, Any]]:
    with _open_text(path) as handle:
        first = handle.readline()
        if _is_csv(path, first):
            yield from _read_csv(first, handle)
        else:
            yield from _read_jsonl(first, handle)


def _read_jsonl(first: str, handle: IO[str]) -> Iterator[tuple[int, str, Any]]:
    loads = orjson.loads
    number = 0
    for number, line in enumerate(_chain(first, handle), start=1):
        text = line.strip()
        if not text:
            continue
        try:
            yield number, text, loads(text)
        except orjson.JSONDecodeError as error:
            yield number, text, RecordError("invalid_json", f"line {number}: {error}")


def _read_csv(first: str, handle: IO[str]) -> Iterator[tuple[int, str, Any]]:
    header = next(csv.reader([first]), [])
    columns = [c.strip() for c in header]
    if not columns or not any(columns):
        return
    reader = csv.reader(handle)
    for number, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        text = ",".join(row)
        if len(row) != len(columns):
            yield number, text, RecordError(
                "invalid_csv", f"line {number}: {len(row)} field(s), header has {len(columns)}")
            continue
        yield number, text, {c: v for c, v in zip(columns, row, strict=True) if v != ""}


def _chain(first: str, handle: IO[str]) -> Iterator[str]:
    if first:
        yield first
    yield from handle
