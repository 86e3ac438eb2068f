"""File readers, the partitioner and pacing: pure, table-driven."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from marketflow.core.records import RecordError
from marketflow.ingest.files import read_records
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
