"""File readers, the partitioner and pacing: pure, table-driven."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from marketflow.core.records import RecordError
from marketflow.ingest.files import BOM, read_records, read_values
from marketflow.ingest.partitioner import partition_for
from marketflow.ingest.publisher import pace_delay


def test_json_lines_with_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"symbol": "700"}\n\n{oops\n[{"symbol": "5"}]\n')
    rows = list(read_records(path))
    assert [n for n, _, _ in rows] == [1, 3, 4]
    assert rows[0][2] == {"symbol": "700"}
    assert isinstance(rows[1][2], RecordError) and rows[1][2].reason == "invalid_json"
    assert rows[2][2] == [{"symbol": "5"}]


def test_csv_gzip_and_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("symbol,ts,price,qty\n700,1763947800000,612.5,100\n5,1,2\n\n")
    rows = list(read_records(path))
    assert rows[0] == (2, "700,1763947800000,612.5,100",
                       {"symbol": "700", "ts": "1763947800000", "price": "612.5", "qty": "100"})
    assert isinstance(rows[1][2], RecordError) and rows[1][2].reason == "invalid_csv"


def test_csv_empty_cells_are_absent_fields(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("symbol,ts,price,qty,turnover\n700,1763947800000,612.5,100,\n")
    assert "turnover" not in next(read_records(path))[2]


# murmur2 reference values from Kafka's Java test suite (UtilsTest.testMurmur2), signed
JAVA_MURMUR2 = {"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536,
                "a-little-bit-longer-string": -1486304829}


@pytest.mark.parametrize(("key", "signed"), sorted(JAVA_MURMUR2.items()))
@pytest.mark.parametrize("partitions", [1, 8, 12])
def test_partition_for_matches_the_java_client(key: str, signed: int, partitions: int) -> None:
    assert partition_for(key, partitions) == (signed & 0x7FFFFFFF) % partitions


@pytest.mark.parametrize(
    ("event_ms", "now", "speed", "delay"),
    [
        (0, 0.0, 0.0, 0.0),  # flat out
        (10_000, 0.0, 10.0, 1.0),  # 10 s of event time at 10x = 1 s
        (10_000, 2.0, 10.0, 0.0),  # already late: no wait
        (60_000, 0.5, 60.0, 0.5),
    ],
)
def test_pace_delay(event_ms: int, now: float, speed: float, delay: float) -> None:
    assert pace_delay(0, 0.0, event_ms, now, speed) == pytest.approx(delay)


GOOD = b'{"symbol": "700", "ts": 1763947800000, "price": 612.5, "qty": 100}'


@pytest.mark.parametrize(("content", "want"), [
    # (file bytes, [(line number, reason or None for a good record)])
    (GOOD + b"\n\xff\xfe{bad bytes}\n" + GOOD + b"\n", [(1, None), (2, "invalid_encoding"),
                                                        (3, None)]),
    (b"\xef\xbb\xbf" + GOOD + b"\r\n" + GOOD + b"\r\n", [(1, None), (2, None)]),
    (b"\n\n   \n" + GOOD + b"\n\n", [(4, None)]),
    (b'{"symbol": "70' + b"0" * (2 << 20) + b'"}\n' + GOOD + b"\n",
     [(1, "record_too_large"), (2, None)]),
    (GOOD[:-1] + b"\n\x00\n" + GOOD + b"\n", [(1, "invalid_json"), (2, "invalid_json"),
                                              (3, None)]),
    (b'{"symbol": "\xe4\xb8\xad"}\n', [(1, None)]),  # UTF-8 that is not ASCII is fine
])
def test_nasty_lines_are_reported_and_the_rest_read(tmp_path: Path, content: bytes,
                                                    want: list[tuple[int, str | None]]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    rows = list(read_records(path))
    got = [(n, obj.reason if isinstance(obj, RecordError) else None) for n, _, obj in rows]
    assert got == want
    for _, raw, obj in rows:
        if isinstance(obj, RecordError):
            assert "line " in obj.detail and len(raw) <= (1 << 20)


def test_csv_line_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"symbol,ts,price,qty\r\n700,1763947800000,612.5,100\r\n"
                     b"\xff00,1,2,3\r\n5,1763947800000,40.1,200\r\n")
    rows = list(read_records(path))
    assert [n for n, _, _ in rows] == [2, 3, 4]
    assert isinstance(rows[1][2], RecordError) and rows[1][2].reason == "invalid_encoding"
    assert rows[1][1] == b"\xff00,1,2,3"
    assert rows[2][2]["symbol"] == "5"


@pytest.mark.parametrize("content", [
    b"\x1f\x8b",  # gzip's magic and nothing more
    b"\x1f\x8b not gzip at all\n",
    gzip.compress(b"".join([GOOD + b"\n"] * 2000))[:-40],  # a truncated .gz
])
def test_a_broken_compressed_stream_ends_the_file_with_a_reason(tmp_path: Path,
                                                                content: bytes) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    rows = list(read_records(path))  # no EOFError, BadGzipFile or zlib.error
    number, _, last = rows[-1]
    assert isinstance(last, RecordError) and last.reason == "invalid_encoding"
    assert last.detail.startswith(f"line {number}: the compressed stream is broken")
    assert all(not isinstance(obj, RecordError) for _, _, obj in rows[:-2])


def values_of(rows: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Rows with each RecordError as (reason, detail), so two reads compare equal."""
    return [(n, (obj.reason, obj.detail) if isinstance(obj, RecordError) else obj)
            for n, obj in rows]


@pytest.mark.parametrize("content", [
    b"", b"\n\n", BOM + GOOD + b"\n" + GOOD, b"  " + BOM + GOOD + b"\n",
    GOOD + b"\r\n\r\n" + GOOD + b"\r\n",
    GOOD + b"\n\xff" + GOOD + b"\n{\"a\": \"\\ud800\"}\n[1, 2\n" + GOOD,
    GOOD + b"\n" + b"[" + b",".join([GOOD] * 12_000) + b"]\n" + GOOD,  # over 1 MiB
    b"\x1f\x8b", b"\x1f\x8b not gzip at all\n",
    gzip.compress(b"".join([GOOD + b"\n"] * 2000))[:-40],
    gzip.compress(GOOD + b"\nnot json\n" + GOOD),
    b"symbol,ts,price,qty\n700,1763947800000,612.5,100\n\xff00,1,2,3\n",
])
def test_values_read_as_records_are(tmp_path: Path, content: bytes) -> None:
    """`read_values` (the backtest's one-loop reader) yields what `read_records` does,
    line numbers, values and reasons with their details, on good and bad bytes alike."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(content)
    expected = values_of([(n, obj) for n, _, obj in read_records(path)])
    assert values_of(list(read_values(path))) == expected
