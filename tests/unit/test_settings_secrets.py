"""Secrets from the environment or mounted files; the Redis password put into the URL;
SASL without credentials refused; `marketflow` commands name the problem (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from marketflow.settings import Settings, with_password


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MARKETFLOW_"):
            monkeypatch.delenv(name)


def test_secret_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hook").write_text("https://hooks.slack.invalid/T/B/x\n")
    monkeypatch.setenv("MARKETFLOW_SLACK_WEBHOOK_URL_FILE", str(tmp_path / "hook"))
    settings = Settings()
    assert settings.slack_webhook_url is not None
    assert settings.slack_webhook_url.get_secret_value() == "https://hooks.slack.invalid/T/B/x"


def test_the_variable_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-file")
    monkeypatch.setenv("MARKETFLOW_REDIS_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("MARKETFLOW_REDIS_PASSWORD", "from-env")
    assert Settings().redis_password.get_secret_value() == "from-env"  # type: ignore[union-attr]


def test_unreadable_secret_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFLOW_REDIS_PASSWORD_FILE", "/nonexistent/redis-password")
    with pytest.raises(ValueError, match="MARKETFLOW_REDIS_PASSWORD_FILE: cannot read"):
        Settings()


@pytest.mark.parametrize(("url", "password", "expected"), [
    ("redis://redis:6379/0", "s3cret", "redis://:s3cret@redis:6379/0"),
    ("rediss://redis:6380/0?ssl_ca_certs=/ca.crt", "p@ss/w:rd",
     "rediss://:p%40ss%2Fw%3Ard@redis:6380/0?ssl_ca_certs=/ca.crt"),
    ("redis://app:old@redis:6379/1", "new", "redis://app:new@redis:6379/1"),
])
def test_redis_password_into_the_url(url: str, password: str, expected: str) -> None:
    assert with_password(url, password) == expected
    settings = Settings(redis_url=url, redis_password=password)
    assert settings.redis_url is not None and settings.redis_url.get_secret_value() == expected


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ValidationError, match="MARKETFLOW_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_SSL")
    Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
             kafka_sasl_username="mf", kafka_sasl_password="pw")


def test_command_names_the_problem_and_hides_the_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETFLOW_")}
    env.update(MARKETFLOW_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
               MARKETFLOW_KAFKA_SASL_PASSWORD="hunter2-secret")
    done = subprocess.run([sys.executable, "-m", "marketflow.cli", "topics"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "MARKETFLOW_KAFKA_SASL_USERNAME" in done.stderr
    assert "hunter2-secret" not in done.stderr + done.stdout
    env.pop("MARKETFLOW_KAFKA_SECURITY_PROTOCOL")
    env.pop("MARKETFLOW_KAFKA_SASL_PASSWORD")
    env["MARKETFLOW_SLACK_WEBHOOK_URL_FILE"] = str(tmp_path / "missing")
    done = subprocess.run([sys.executable, "-m", "marketflow.cli", "topics"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "MARKETFLOW_SLACK_WEBHOOK_URL_FILE: cannot read" in done.stderr
