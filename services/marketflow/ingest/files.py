"""Reading record files: JSON lines or CSV (column names = record fields), gzip or not.

Each line yields `(line_number, raw, object)` where object is the decoded dict (or list,
for a JSON-lines tick batch) or a `RecordError` saying why the line is unusable; the
caller decides whether that becomes a dead letter. `raw` is the line's text, or its bytes
when they are not UTF-8 (a dead letter then keeps them as base64). Empty lines are
skipped; a byte-order mark and CRLF line ends are accepted. One bad line never stops the
file: every other line is still read. A compressed stream that breaks (a truncated .gz, or
a plain file that starts with the gzip magic bytes) ends the file with one
`invalid_encoding` record naming the line where reading stopped.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final, cast

import orjson

from marketflow.core.records import RecordError, Tick, parse_tick_fast
from marketflow.ingest.batches import decode_ticks, split_ticks

# Final: compiled, a module-level name that is not is a lookup in the module's dict at
# every use (here, every line)
GZIP_MAGIC: Final = b"\x1f\x8b"
BOM: Final = b"\xef\xbb\xbf"
MAX_LINE_BYTES: Final = 1 << 20  # a tick is ~100 bytes; a batch of 1,000 is ~100 KB


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _is_csv(path: Path, first_line: bytes) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return True
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return False
    return not first_line.lstrip().startswith((b"{", b"["))


def read_records(path: Path) -> Iterator[tuple[int, str | bytes, Any]]:
    with _open(path) as handle:
        raw_lines = _lines(handle)
        first = next(raw_lines, b"")
        if isinstance(first, bytes) and first.startswith(BOM):
            first = first[len(BOM):]
        lines = _decoded(_chain(first, raw_lines))
        if _is_csv(path, first if isinstance(first, bytes) else b""):
            yield from _read_csv(lines)
        else:
            yield from _read_jsonl(lines)


def read_ticks(path: Path, reject: Callable[[str], None]) -> Iterator[Tick]:
    """The good ticks of a ticks file in order (an array keeps its good ticks), a tick in
    a common form straight from the fast parser; the reason of every rejected line or
    array element goes to `reject`.

    A JSON line is first decoded straight into a tick's fields (`batches.decode_ticks`:
    no dict made); one that is too long, or that this does not take, is read as
    `read_values` reads it."""
    if _is_csv_file(path):
        yield from _good_ticks(read_values(path), reject)
        return
    number = 0
    with _open(path) as handle:
        try:
            for line in handle:
                number += 1
                if len(line) <= MAX_LINE_BYTES:
                    decoded = decode_ticks(line)
                    if isinstance(decoded, list):
                        yield from decoded
                        continue
                    if decoded is not None:
                        yield decoded
                        continue
                yield from _good_ticks(_line_values((line,), number - 1), reject)
        except (OSError, EOFError, zlib.error):
            reject("invalid_encoding")  # (where: `read_values` says)


def _good_ticks(values: Iterable[tuple[int, Any]], reject: Callable[[str], None],
                ) -> Iterator[Tick]:
    for _, obj in values:
        if type(obj) is dict:
            tick = parse_tick_fast(obj)
            if tick is not None:
                yield tick
                continue
        if isinstance(obj, RecordError):
            reject(obj.reason)
            continue
        batch, bad = split_ticks(obj)
        for element in bad:
            reject(element.error.reason)
        yield from batch


def _is_csv_file(path: Path) -> bool:
    with _open(path) as probe:
        try:
            first = probe.readline()
        except (OSError, EOFError, zlib.error):
            first = b""
    return _is_csv(path, first.removeprefix(BOM))


def read_values(path: Path) -> Iterator[tuple[int, Any]]:
    """`read_records` without the raw text: (line number, decoded object or RecordError),
    for readers that want only the values (`backtest`). JSON lines are read in one loop:
    a line orjson decodes is yielded at once, any other is classified as `read_records`
    does (same reasons, same details); CSV goes through `read_records`."""
    if _is_csv_file(path):
        for number, _, obj in read_records(path):
            yield number, obj
        return
    with _open(path) as handle:
        yield from _line_values(handle, 0)


def _line_values(lines: Iterable[bytes], number: int) -> Iterator[tuple[int, Any]]:
    """`read_values` of `lines` (with their ends or not), the first numbered `number + 1`.
    A line orjson decodes is yielded at once, any other is classified as `read_records`
    does; reading that breaks (a compressed stream) ends them with a RecordError."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    try:
        for line in lines:
            number += 1
            if number == 1 and line.startswith(BOM):
                line = line[len(BOM):]
            raw = line.strip()
            if not raw:
                continue
            if len(raw) <= MAX_LINE_BYTES:
                try:
                    yield number, loads(raw)
                    continue
                except decode_error:
                    pass
            # not decoded: classified (and numbered) as read_records does
            for item in _read_jsonl(_decoded(iter([raw]), number)):
                yield item[0], item[2]
    except (OSError, EOFError, zlib.error) as error:
        yield number + 1, RecordError(
            "invalid_encoding", f"line {number + 1}: the compressed stream is broken here, "
                                f"nothing after it can be read ({error})")


def _lines(handle: IO[bytes]) -> Iterator[bytes | RecordError]:
    """The file's lines; a compressed stream that breaks ends them with a RecordError."""
    try:
        yield from handle
    except (OSError, EOFError, zlib.error) as error:
        yield RecordError("invalid_encoding", f"the compressed stream is broken here, nothing "
                                              f"after it can be read ({error})")


def _decoded(lines: Iterator[bytes | RecordError], start: int = 1,
             ) -> Iterator[tuple[int, bytes, str | RecordError]]:
    """(line number, stripped bytes, text or why it is unusable); empty lines skipped."""
    for number, line in enumerate(lines, start=start):
        if isinstance(line, RecordError):
            yield number, b"", RecordError(line.reason, f"line {number}: {line.detail}")
            continue
        raw = line.strip()
        if not raw:
            continue
        if len(raw) > MAX_LINE_BYTES:
            yield number, raw[:256], RecordError(
                "record_too_large", f"line {number}: {len(raw):,} bytes (at most "
                                    f"{MAX_LINE_BYTES:,}); the first 256 are kept")
            continue
        try:
            yield number, raw, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield number, raw, RecordError(
                "invalid_encoding", f"line {number}: not UTF-8 (byte 0x{raw[error.start]:02x} "
                                    f"at column {error.start + 1})")


def _read_jsonl(lines: Iterator[tuple[int, bytes, str | RecordError]],
                ) -> Iterator[tuple[int, str | bytes, Any]]:
    loads = orjson.loads
    for number, raw, text in lines:
        if isinstance(text, RecordError):
            yield number, raw, text
            continue
        try:
            yield number, text, loads(raw)
        except orjson.JSONDecodeError as error:
            yield number, text, RecordError("invalid_json", f"line {number}: {error}")


def _read_csv(lines: Iterator[tuple[int, bytes, str | RecordError]],
              ) -> Iterator[tuple[int, str | bytes, Any]]:
    header: list[str] | None = None
    for number, raw, text in lines:
        if isinstance(text, RecordError):
            yield number, raw, text
            continue
        row = next(csv.reader([text]), [])
        if header is None:
            header = [c.strip() for c in row]
            if not any(header):
                return
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield number, text, RecordError(
                "invalid_csv", f"line {number}: {len(row)} field(s), header has {len(header)}")
            continue
        yield number, text, {c: v for c, v in zip(header, row, strict=True) if v != ""}


def _chain(first: bytes | RecordError, rest: Iterator[bytes | RecordError],
           ) -> Iterator[bytes | RecordError]:
    if first:
        yield first
    yield from rest
