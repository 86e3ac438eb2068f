"""Every schema is valid draft 2020-12; every example agrees with its schema; every record
type the code writes validates against its schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import tests.schemas
from marketflow.core.deadletter import dead_letter
from marketflow.core.pipeline import Pipeline
from marketflow.core.records import RecordError, Tick, parse_southbound, parse_tick, parse_ticks
from marketflow.core.refdata import ReferenceData
from marketflow.core.rules import RulesError, load_rules, parse_rules
from tests.schemas import (
    REGENERATE,
    SNAPSHOT_SCHEMAS,
    generated_schemas,
    main,
    render_schema,
    schemas_dir,
    validator,
)

SCHEMAS = sorted(p.name.removesuffix(".schema.json") for p in schemas_dir().glob("*.schema.json"))
EXAMPLES = sorted((schemas_dir() / "examples").glob("*/*/*.json"))
SMALL = Path(__file__).parents[1] / "data" / "small"
PARSERS = {"tick": parse_tick, "tick-batch": parse_ticks, "southbound": parse_southbound,
           "rules": parse_rules}


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid(name: str) -> None:
    Draft202012Validator.check_schema(json.loads((schemas_dir() / f"{name}.schema.json")
                                                 .read_text()))


@pytest.mark.parametrize("name", sorted(generated_schemas()))
def test_generated_schema_is_committed(name: str) -> None:
    """Drift: the committed file is what the code generates today."""
    committed = (schemas_dir() / name).read_text(encoding="utf-8")
    assert committed == render_schema(generated_schemas()[name]), (
        f"schemas/{name} differs from the schema generated from the code; "
        f"run {REGENERATE} and commit the result")


def test_schema_generator_writes_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tests.schemas, "schemas_dir", lambda: tmp_path)
    assert main(["--check"]) == 1
    assert "out of date; run make schemas" in capsys.readouterr().err
    assert main([]) == 0
    assert main(["--check"]) == 0
    for name in generated_schemas():
        Draft202012Validator.check_schema(json.loads((tmp_path / name).read_text()))
    assert main(["--bogus"]) == 2


def test_every_schema_has_valid_and_invalid_examples() -> None:
    for name in SCHEMAS:
        for kind in ("valid", "invalid"):
            assert len(list((schemas_dir() / "examples" / name / kind).glob("*.json"))) >= 2, (
                name, kind)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: "/".join(p.parts[-3:]))
def test_examples(path: Path) -> None:
    name, kind = path.parts[-3], path.parts[-2]
    document = json.loads(path.read_text())
    errors = list(validator(name).iter_errors(document))
    assert (not errors) if kind == "valid" else errors, errors
    parser = PARSERS.get(name)
    if parser is None:
        return
    if kind == "valid":
        parser(document)  # the Python parser accepts what the schema accepts
    else:
        with pytest.raises((RecordError, RulesError)):
            parser(document)


@settings(max_examples=200, deadline=None)
@given(st.builds(
    Tick,
    symbol=st.from_regex(r"^[0-9]{5}$", fullmatch=True).filter(lambda s: s != "00000"),
    ts=st.integers(946_684_800_000, 4_102_444_799_999),
    price=st.integers(1, 10**9), qty=st.integers(0, 10**9), turnover=st.integers(0, 10**14),
    seq=st.one_of(st.none(), st.integers(0, 10**12)), kind=st.sampled_from(["trade", "index"]),
))
def test_tick_records_validate_and_round_trip(tick: Tick) -> None:
    wire = tick.to_json()
    assert not list(validator("tick").iter_errors(wire))
    assert parse_tick(json.loads(json.dumps(wire))) == tick


def test_southbound_and_dead_letters_validate() -> None:
    update = parse_southbound({"channel": "SZ", "ts": 1763971200000, "buy_hkd": 2.5e10,
                               "sell_hkd": 1.9e10, "quota_balance_rmb": 3.7e10})
    assert not list(validator("southbound").iter_errors(update.to_json()))
    for payload in ("text", b"\xff\xfe", b"{}"):
        record = dead_letter(source_topic="md.ticks", reason="invalid_json", detail="d",
                             payload=payload, partition=1, offset=2, at="2026-01-01T00:00:00Z")
        assert not list(validator("deadletter").iter_errors(record))


def test_every_snapshot_and_alert_of_a_day_validates() -> None:
    ref = ReferenceData.load(SMALL / "universe.csv", SMALL / "indices.csv")
    pipeline = Pipeline(ref, load_rules(SMALL / "rules.yaml"), keep_snapshots=True)
    for line in (SMALL / "ticks.jsonl").open():
        pipeline.on_tick(parse_tick(json.loads(line)))
    for line in (SMALL / "southbound.jsonl").open():
        pipeline.on_southbound(parse_southbound(json.loads(line)))
    pipeline.finish()
    kinds = set()
    for snapshot in pipeline.snapshots:
        kinds.add(snapshot["type"])
        errors = list(validator(SNAPSHOT_SCHEMAS[snapshot["type"]]).iter_errors(snapshot))
        assert not errors, (snapshot, errors)
        assert not list(validator("snapshot").iter_errors(snapshot))
    assert kinds == set(SNAPSHOT_SCHEMAS)
    assert pipeline.alerts
    for alert in pipeline.alerts:
        stamped = dict(alert, emitted_at="2026-11-24T10:00:00.000+08:00")
        assert not list(validator("alert").iter_errors(stamped)), alert


def test_default_rules_file_validates() -> None:
    import yaml

    from marketflow.settings import PACKAGE_DATA

    document = yaml.safe_load((PACKAGE_DATA / "rules.yaml").read_text())
    assert not list(validator("rules").iter_errors(document))
    assert len(parse_rules(document).rules) == 8
