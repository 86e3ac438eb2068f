"""Rolling windows: one default, parsed and checked in one place (core/windows.py), and
exposed parsed by Settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from marketflow.core.windows import DEFAULT_WINDOWS, parse_duration, parse_windows
from marketflow.settings import Settings


@pytest.mark.parametrize(("text", "frame_ms", "expected"), [
    ("1m,5m,15m,60m", 1000, DEFAULT_WINDOWS),
    (" 1m , 15m,", 1000, ("1m", "15m")),
    ("", 1000, ()),
    ("90s,2h", 30_000, ("90s", "2h")),
    ("500ms", 250, ("500ms",)),
    (["5m", " 1m "], 1000, ("5m", "1m")),
])
def test_parse_windows(text: str | list[str], frame_ms: int, expected: tuple[str, ...]) -> None:
    assert parse_windows(text, frame_ms) == expected


@pytest.mark.parametrize(("text", "frame_ms", "message"), [
    ("1m,15", 1000, "window '15': not a duration"),
    ("1 minute", 1000, "window '1 minute': not a duration"),
    ("day", 1000, "window 'day': not a duration"),
    ("90s", 60_000, "window 90s is not a multiple of the frame (60000 ms)"),
    ("0s", 1000, "window '0s': must be longer than 0"),
    ("1m,5m,1m", 1000, "window '1m': listed twice"),
])
def test_bad_windows_are_named(text: str, frame_ms: int, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_windows(text, frame_ms)


def test_default_windows_are_whole_frames() -> None:
    assert parse_windows(DEFAULT_WINDOWS) == DEFAULT_WINDOWS
    assert [parse_duration(w) for w in DEFAULT_WINDOWS] == [60_000, 300_000, 900_000, 3_600_000]


def test_settings_expose_parsed_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETFLOW_WINDOWS", raising=False)
    monkeypatch.delenv("MARKETFLOW_FRAME_MS", raising=False)
    assert Settings().windows == DEFAULT_WINDOWS
    monkeypatch.setenv("MARKETFLOW_WINDOWS", "1m, 15m")
    assert Settings().windows == ("1m", "15m")
    assert Settings(windows=["5m"]).windows == ("5m",)
    monkeypatch.setenv("MARKETFLOW_WINDOWS", "")
    assert Settings().windows == ()


@pytest.mark.parametrize(("env", "message"), [
    ({"MARKETFLOW_WINDOWS": "1m,2x"}, "window '2x': not a duration"),
    ({"MARKETFLOW_WINDOWS": "90s", "MARKETFLOW_FRAME_MS": "60000"}, "not a multiple"),
    ({"MARKETFLOW_FRAME_MS": "7000"}, "window 1m is not a multiple of the frame (7000 ms)"),
])
def test_settings_reject_bad_windows(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                     message: str) -> None:
    monkeypatch.delenv("MARKETFLOW_WINDOWS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert "windows" in str(error.value) and message in str(error.value)
