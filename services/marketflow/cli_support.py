"""What every command does before its work, once: settings, endpoints, reachability, topics,
and one mapping of failures to `error: ...` on stderr and an exit code.

    prepared = prepare(need_redis=True, topics=False)   # exits 2 or 1 with a message
    run(prepared.settings, prepared.bootstrap, prepared.redis_url)

Exit codes (README): 0 ok, 1 run-time failure (broker or Redis unreachable, topic
mismatch, stack not running), 2 usage or configuration error (a setting, the rules file,
the reference data, a scenario, a missing `embedded` extra). No message printed here
carries a secret: Redis passwords and the Slack webhook URL are masked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError

from marketflow.settings import Settings

if TYPE_CHECKING:
    from marketflow.infra.embedded import Endpoints

FAILURE = 1  # run-time failure
USAGE = 2  # usage or configuration error

SECRET_ENV = ("MARKETFLOW_REDIS_URL", "MARKETFLOW_REDIS_PASSWORD", "MARKETFLOW_SLACK_WEBHOOK_URL",
              "MARKETFLOW_KAFKA_SASL_PASSWORD")


class ConfigError(ValueError):
    """A configuration problem the helper finds itself (exit 2)."""


class Unreachable(RuntimeError):
    """A configured service does not answer (exit 1)."""


@dataclass(frozen=True, slots=True)
class Prepared:
    settings: Settings
    bootstrap: str  # reachable, topics ensured if asked
    redis_url: str | None  # reachable if need_redis; a secret: print mask_url(redis_url)
    embedded: bool  # the addresses come from the embedded stack


def fail(message: str, code: int, settings: Settings | None = None) -> NoReturn:
    """Print `error: message` (secrets masked) to stderr and exit with `code`."""
    typer.echo(f"error: {scrub(message, settings)}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def exit_on_error(settings: Settings | None = None) -> Iterator[None]:
    """Turn the errors a command can expect into `fail(...)`; anything else propagates."""
    try:
        yield
    except ValidationError as error:
        fail(describe_invalid(error), USAGE, settings)
    except Exception as error:
        code = exit_code(error)
        if code is None:
            raise
        fail(_message(error), code, settings)


def load_settings() -> Settings:
    """`Settings()` from the environment, or exit 2 naming each invalid setting."""
    from marketflow.infra.kafka_security import configure

    try:
        settings = Settings()
    except ValidationError as error:
        fail(describe_invalid(error), USAGE)
    except ValueError as error:  # a MARKETFLOW_*_FILE secret that cannot be read
        fail(f"invalid settings: {error}", USAGE)
    configure(settings)
    return settings


def connect(settings: Settings, *, need_redis: bool = False, topics: bool = True,
            endpoints: Endpoints | None = None) -> Prepared:
    """Resolve the endpoints (or take `endpoints`), check that the broker (and Redis when
    `need_redis`) answers, and create missing topics when `topics`; exit 1 or 2 if not."""
    from marketflow.infra.embedded import check_reachable, resolve_endpoints
    from marketflow.infra.topics import ensure_topics

    with exit_on_error(settings):
        if endpoints is None:
            endpoints = resolve_endpoints(settings)
        check_reachable(endpoints.bootstrap)
        if need_redis:
            if endpoints.redis_url is None:
                raise ConfigError("Redis is needed: set MARKETFLOW_REDIS_URL (or unset "
                                  "MARKETFLOW_KAFKA_BOOTSTRAP to use `marketflow stack up`)")
            ping_redis(endpoints.redis_url)
        if topics:
            ensure_topics(endpoints.bootstrap, settings)
    return Prepared(settings, endpoints.bootstrap, endpoints.redis_url, endpoints.embedded)


def prepare(*, need_redis: bool = False, topics: bool = True) -> Prepared:
    """`load_settings()` then `connect(...)`: the set-up of a command that uses the broker.
    A command that needs only settings (`stack down`) calls `load_settings()` alone."""
    return connect(load_settings(), need_redis=need_redis, topics=topics)


def ping_redis(url: str, timeout: float = 2.0) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
    except ValueError as error:  # not a redis:// URL
        raise ConfigError(f"MARKETFLOW_REDIS_URL {mask_url(url)}: {error}") from None
    try:
        client.ping()
    except redis.RedisError as error:
        raise Unreachable(f"cannot reach Redis at {mask_url(url)}: {error}") from None
    finally:
        client.close()


def exit_code(error: BaseException) -> int | None:
    """USAGE, FAILURE, or None for an error this module does not know."""
    import redis
    from kafka.errors import KafkaError

    from marketflow.core.refdata import ReferenceDataError
    from marketflow.core.rules import RulesError
    from marketflow.infra.embedded import MissingExtra, StackError
    from marketflow.infra.topics import TopicMismatch
    from marketflow.ingest.publisher import BrokerUnavailable
    from marketflow.sim.scenario import ScenarioError

    if isinstance(error, ValidationError | ConfigError | RulesError | ReferenceDataError
                  | ScenarioError | MissingExtra):
        return USAGE
    if isinstance(error, Unreachable | StackError | TopicMismatch | BrokerUnavailable
                  | KafkaError | redis.RedisError):
        return FAILURE
    return None


def _message(error: BaseException) -> str:
    import redis
    from kafka.errors import KafkaError

    if isinstance(error, KafkaError):
        return f"Kafka: {error}"
    if isinstance(error, redis.RedisError):
        return f"Redis: {error}"
    return str(error)


def describe_invalid(error: ValidationError) -> str:
    """One line per invalid setting, named as the environment variable that sets it; the
    offending value is shown unless the setting is a secret."""
    lines = [f"invalid {'settings' if error.title in ('Settings', 'Topics') else error.title}:"]
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"]]
        if error.title == "Topics" or loc[:1] == ["topics"]:
            name = "MARKETFLOW_TOPIC_" + "_".join(p for p in loc if p != "topics").upper()
        elif not loc:  # a check across settings: its message names them
            name = "settings"
        else:
            name = "MARKETFLOW_" + "_".join(loc).upper()
        line = f"  {name}: {problem['msg']}"
        if name not in SECRET_ENV and "input" in problem:
            line += f" (got {str(problem['input'])[:80]!r})"
        lines.append(line)
    return "\n".join(lines)


def mask_url(url: str) -> str:
    """`redis://user:secret@host:6379/0` -> `redis://user:***@host:6379/0`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}:***@{hostport}"
    return parts._replace(netloc=netloc).geturl()


def scrub(message: str, settings: Settings | None = None) -> str:
    """The message with every known secret (from `settings` and the environment) masked."""
    values = {os.environ.get(name, "") for name in SECRET_ENV}
    if settings is not None:
        values |= {secret.get_secret_value() for secret in
                   (settings.redis_url, settings.redis_password, settings.slack_webhook_url,
                    settings.kafka_sasl_password) if secret is not None}
    for value in sorted(filter(None, values), key=len, reverse=True):
        message = message.replace(value, _redacted(value))
        password = _password(value)
        if password and len(password) >= 4:
            message = message.replace(password, "***")
    return message


def _redacted(value: str) -> str:
    masked = mask_url(value)
    if masked != value:
        return masked
    with contextlib.suppress(ValueError):
        parts = urlsplit(value)
        if parts.scheme and parts.netloc:  # a webhook: the path is the secret
            return f"{parts.scheme}://{parts.netloc}/***"
    return "***"


def _password(value: str) -> str | None:
    try:
        return urlsplit(value).password
    except ValueError:
        return None
