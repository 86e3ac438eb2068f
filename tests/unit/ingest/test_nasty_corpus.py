"""The hand-made corpus of `tests/data/nasty/` and hypothesis-generated lines through the
file readers, the batch splitter and `marketflow backtest`: every bad line or element is
named with its reason, nothing else is lost, and invalid records change no figure."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from marketflow.backtest import run_backtest
from marketflow.cli import app
from marketflow.core.records import RecordError
from marketflow.ingest.batches import split_ticks
from marketflow.ingest.files import read_records, read_values
from tests.nasty import NASTY, SMALL, NastyDay, build_nasty_day, canonical, corpus
from tests.unit.ingest.test_files import values_of


def read_split(path: Path) -> tuple[list[tuple[int, str, int | None]], list[dict[str, Any]]]:
    """What the producer makes of a file: (line, reason, element) rejects, valid ticks."""
    rejects: list[tuple[int, str, int | None]] = []
    valid: list[dict[str, Any]] = []
    for number, _, obj in read_records(path):
        if isinstance(obj, RecordError):
            rejects.append((number, obj.reason, None))
            continue
        ticks, bad = split_ticks(obj)
        rejects += [(number, b.error.reason, b.index) for b in bad]
        valid += [tick.to_json() for tick in ticks]
    return rejects, valid


def backtest(ticks: Path) -> dict[str, Any]:
    return run_backtest(SMALL / "universe.csv", SMALL / "indices.csv", SMALL / "rules.yaml",
                        ticks, SMALL / "southbound.jsonl")


@pytest.mark.parametrize(("line", "reason"), corpus("bad-lines"))
def test_each_bad_line_has_its_reason(line: bytes, reason: str, tmp_path: Path) -> None:
    clean = (SMALL / "ticks.jsonl").read_text().splitlines()[0]
    path = tmp_path / "one.jsonl"
    path.write_bytes(clean.encode() + b"\n" + line + b"\n")  # (a BOM is fine on line 1 only)
    assert read_split(path) == ([(2, reason, None)], [canonical(clean)])


@pytest.mark.parametrize(("element", "reason"), corpus("bad-elements"))
def test_each_bad_element_is_named_and_its_neighbours_kept(element: bytes, reason: str,
                                                           tmp_path: Path) -> None:
    clean = (SMALL / "ticks.jsonl").read_text().splitlines()[1:3]
    path = tmp_path / "one.jsonl"
    path.write_bytes(b"[" + b", ".join([clean[0].encode(), element, clean[1].encode()])
                     + b"]\n")
    rejects, valid = read_split(path)
    assert rejects == [(1, reason, 1)]
    assert valid == [canonical(line) for line in clean]


def test_csv_corpus() -> None:
    expected = {}
    for row in (NASTY / "bad-rows.expected").read_text().splitlines():
        if not row.startswith("#"):
            number, reason = row.split()
            expected[int(number)] = reason
    rejects, valid = read_split(NASTY / "bad-rows.csv")
    assert {n: r for n, r, _ in rejects} == {n: r for n, r in expected.items() if r != "ok"}
    assert [t["symbol"] for t in valid] == ["00700", "09988"]


@pytest.fixture(scope="module")
def invalid_only(tmp_path_factory: pytest.TempPathFactory) -> NastyDay:
    return build_nasty_day(tmp_path_factory.mktemp("nasty") / "ticks.jsonl",
                           valid_oddities=False)


@pytest.fixture(scope="module")
def with_oddities(tmp_path_factory: pytest.TempPathFactory) -> NastyDay:
    return build_nasty_day(tmp_path_factory.mktemp("odd") / "ticks.jsonl",
                           valid_oddities=True, huge_line=False)


def test_the_reader_finds_every_nasty_and_keeps_every_good_tick(invalid_only: NastyDay,
                                                                with_oddities: NastyDay) -> None:
    for day in (invalid_only, with_oddities):
        rejects, valid = read_split(day.path)
        assert rejects == day.parse_rejects
        assert valid == day.valid
    reasons = {reason for _, reason, _ in invalid_only.parse_rejects}
    assert {"invalid_encoding", "record_too_large", "invalid_json", "invalid_batch"} <= reasons
    assert any(element is not None for _, _, element in invalid_only.parse_rejects)


def test_invalid_records_change_no_figure(invalid_only: NastyDay) -> None:
    clean = backtest(SMALL / "ticks.jsonl")
    nasty = backtest(invalid_only.path)
    assert nasty["rejected"] == dict(sorted(invalid_only.rejected.items()))
    assert clean["rejected"] == {}
    for key in ("final", "alerts", "duplicates"):
        assert nasty[key] == clean[key], key


def test_valid_oddities_count_as_their_canonical_records(with_oddities: NastyDay,
                                                         tmp_path: Path) -> None:
    canonical = tmp_path / "canonical.jsonl"
    canonical.write_bytes(b"".join(orjson.dumps(t) + b"\n" for t in with_oddities.valid))
    nasty, reference = backtest(with_oddities.path), backtest(canonical)
    assert nasty["rejected"] == dict(sorted(with_oddities.rejected.items()))
    for key in ("final", "alerts", "duplicates"):
        assert nasty[key] == reference[key], key
    assert nasty["duplicates"] > 0  # repeated and out-of-order seqs were there
    clean = backtest(SMALL / "ticks.jsonl")
    assert nasty["final"]["market"]["turnover_hkd"] == (
        clean["final"]["market"]["turnover_hkd"] + 12_500)  # the unknown stock's trade


def test_backtest_command_on_the_nasty_day(invalid_only: NastyDay) -> None:
    result = CliRunner().invoke(app, [
        "backtest", "--universe", str(SMALL / "universe.csv"), "--indices",
        str(SMALL / "indices.csv"), "--rules", str(SMALL / "rules.yaml"), "--ticks",
        str(invalid_only.path), "--southbound", str(SMALL / "southbound.jsonl"), "--json"])
    assert result.exit_code == 0, result.output[-2000:]
    document = json.loads(result.stdout)
    assert document["rejected"] == dict(sorted(invalid_only.rejected.items()))
    assert document["final"] == json.loads(json.dumps(backtest(SMALL / "ticks.jsonl")["final"]))


# -- hypothesis: generated lines -----------------------------------------------------------

TICKS = st.fixed_dictionaries(
    {"symbol": st.sampled_from(["00700", "700", "09988", "HSI", "01024", "123456", ""]),
     "ts": st.integers(1763946000000, 1763971200000) | st.text(max_size=12),
     "price": st.floats(allow_nan=False) | st.integers(-5, 10**14) | st.text(max_size=8)},
    optional={"qty": st.integers(-5, 2**64 - 1) | st.floats(allow_nan=False),
              "seq": st.integers(-3, 50) | st.text(max_size=3),
              "kind": st.sampled_from(["trade", "index", "x"])})
LINE = st.one_of(
    TICKS.map(lambda value: json.dumps(value).encode()),
    st.lists(TICKS | st.integers(), max_size=4).map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    st.text(max_size=40).map(lambda s: s.replace("\n", "").replace("\r", "").encode()),
)


def _reference(lines: list[bytes]) -> tuple[int, Counter[str], int]:
    """Plainly: (non-blank lines, parse rejects by reason, valid ticks)."""
    rejected: Counter[str] = Counter()
    valid = nonblank = 0
    for i, line in enumerate(lines):
        # a byte-order mark opening the file is not content (docs/contracts.md, Records)
        raw = (line.removeprefix(b"\xef\xbb\xbf") if i == 0 else line).strip()
        if not raw:
            continue
        nonblank += 1
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            rejected["invalid_encoding"] += 1
            continue
        except ValueError:
            rejected["invalid_json"] += 1
            continue
        ticks, bad = split_ticks(obj)
        valid += len(ticks)
        rejected.update(b.error.reason for b in bad)
    return nonblank, rejected, valid


def lines_file(directory: Path, lines: list[bytes], crlf: bool) -> Path:
    path = directory / "gen.jsonl"
    path.write_bytes(b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines))
    return path


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, max_size=25), crlf=st.booleans())
def test_generated_lines(lines: list[bytes], crlf: bool, tmp_path: Path) -> None:
    path = lines_file(tmp_path, lines, crlf)
    rows = list(read_records(path))  # never raises
    assert values_of(list(read_values(path))) == values_of([(n, v) for n, _, v in rows])
    if path.read_bytes()[:2] == b"\x1f\x8b":  # gzip's magic: read as a (broken) gzip
        assert rows[-1][2].reason == "invalid_encoding"  # type: ignore[union-attr]
        return
    nonblank, rejected, valid = _reference(lines)
    assert len(rows) == nonblank
    assert all(1 <= n <= len(lines) for n, _, _ in rows)
    parse_rejects, ticks = read_split(path)
    if not any(b"NaN" in line or b"Infinity" in line for line in lines):
        # (Python's json reads NaN and Infinity; orjson, like the JSON spec, does not)
        assert Counter(reason for _, reason, _ in parse_rejects) == rejected
        assert len(ticks) == valid
    result = backtest(path)  # never raises; every line is either applied or counted
    counted = sum(result["rejected"].values())
    assert counted >= len(parse_rejects)
    assert counted - len(parse_rejects) <= len(ticks)
