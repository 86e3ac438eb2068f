"""What every command does before its work, once: settings, endpoints, reachability, topics,
and one mapping of failures to `error: ...` on stderr and an exit code.

    prepared = prepare(need_redis=True, topics=False)   # exits 2 or 1 with a message
    run(prepared.settings, prepared.bootstrap, prepared.redis_url)

Exit codes (README): 0 ok, 1 run-time failure (broker or Redis unreachable after
MARKETFLOW_CONNECT_TIMEOUT_S, Redis refusing its password, topic mismatch, stack not
running), 2 usage or configuration error (a setting, the rules file, the reference data, a
scenario, a missing `embedded` extra). No message printed here carries a secret: Redis
passwords, the Kafka SASL password and Slack webhook URLs are masked, and once
`load_settings()` has run the same holds for every log record and uncaught traceback of the
process (`protect_output`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
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
    """`Settings()` from the environment, or exit 2 naming each invalid setting. From here
    on, log records and uncaught tracebacks of this process have every secret masked, and
    every Kafka client made deep inside gets the security settings."""
    from marketflow.infra.kafka_security import configure

    try:
        settings = Settings()
    except ValidationError as error:
        fail(describe_invalid(error), USAGE)
    except ValueError as error:  # a MARKETFLOW_*_FILE secret that cannot be read
        fail(f"invalid settings: {error}", USAGE)
    configure(settings)
    protect_output(settings)
    return settings


def connect(settings: Settings, *, need_redis: bool = False, topics: bool = True,
            endpoints: Endpoints | None = None, check_redis: bool = False) -> Prepared:
    """Resolve the endpoints (or take `endpoints`), wait for the broker (and Redis when
    `need_redis`) to answer, for up to MARKETFLOW_CONNECT_TIMEOUT_S, and create missing
    topics when `topics`; exit 1 or 2 if not. `check_redis` (the worker, for which Redis is
    a sink it can live without for a while): a configured Redis is asked once; a refused
    password stops the command, no answer is only a warning."""
    from marketflow.infra.embedded import check_reachable, resolve_endpoints
    from marketflow.infra.topics import ensure_topics

    with exit_on_error(settings):
        if endpoints is None:
            endpoints = resolve_endpoints(settings)
        check_reachable(endpoints.bootstrap, timeout_s=settings.connect_timeout_s,
                        on_wait=lambda message: say(message, settings))
        if need_redis:
            if endpoints.redis_url is None:
                raise ConfigError("Redis is needed: set MARKETFLOW_REDIS_URL (or unset "
                                  "MARKETFLOW_KAFKA_BOOTSTRAP to use `marketflow stack up`)")
            ping_redis(endpoints.redis_url, timeout_s=settings.connect_timeout_s,
                       on_wait=lambda message: say(message, settings))
        elif check_redis and endpoints.redis_url is not None:
            try:
                ping_redis(endpoints.redis_url)
            except Unreachable as error:
                if isinstance(error, RedisRefused):
                    raise
                say(f"{error}; starting anyway, Redis is written once it answers", settings)
        if topics:
            ensure_topics(endpoints.bootstrap, settings)
    return Prepared(settings, endpoints.bootstrap, endpoints.redis_url, endpoints.embedded)


def prepare(*, need_redis: bool = False, topics: bool = True) -> Prepared:
    """`load_settings()` then `connect(...)`: the set-up of a command that uses the broker.
    A command that needs only settings (`stack down`) calls `load_settings()` alone."""
    return connect(load_settings(), need_redis=need_redis, topics=topics)


def configure_logging(level: str) -> None:
    """Log lines of the long-running commands (worker, notify, web) to stderr."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def say(message: str, settings: Settings | None = None) -> None:
    """A line for people on stderr (`marketflow: ...`), secrets masked."""
    typer.echo(f"marketflow: {scrub(message, settings)}", err=True)


class RedisRefused(Unreachable):
    """Redis answers but refuses the credentials of MARKETFLOW_REDIS_URL (exit 1)."""


def ping_redis(url: str, timeout: float = 2.0, timeout_s: float = 0.0,
               on_wait: Callable[[str], None] | None = None) -> None:
    """PING Redis, waiting up to `timeout_s` for it to answer (each try gives up after
    `timeout`). A refused password or user fails at once with `RedisRefused`."""
    import redis
    from redis.exceptions import AuthenticationError, NoPermissionError

    from marketflow.infra.embedded import NotYet, StackError, wait_until

    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout,
                                      socket_connect_timeout=timeout)
    except ValueError as error:  # not a redis:// URL
        raise ConfigError(f"MARKETFLOW_REDIS_URL {mask_url(url)}: {error}") from None

    def probe() -> None:
        try:
            client.ping()
        except (AuthenticationError, NoPermissionError) as error:
            raise RedisRefused(
                f"Redis at {mask_url(url)} refused the credentials of MARKETFLOW_REDIS_URL "
                f"({error})") from None
        except redis.ResponseError as error:
            if str(error).startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
                raise RedisRefused(f"Redis at {mask_url(url)} refused the credentials of "
                                   f"MARKETFLOW_REDIS_URL ({error})") from None
            raise
        except redis.RedisError as error:
            raise NotYet(f"{type(error).__name__}: {error}") from None

    try:
        wait_until(probe, f"Redis at {mask_url(url)}", timeout_s, on_wait=on_wait)
    except StackError as error:
        raise Unreachable(str(error)) from None
    finally:
        client.close()


def exit_code(error: BaseException) -> int | None:
    """USAGE, FAILURE, or None for an error this module does not know."""
    import redis
    from kafka.errors import KafkaError

    from marketflow.core.refdata import ReferenceDataError
    from marketflow.core.rules import RulesError
    from marketflow.infra.embedded import MissingExtra, StackError
    from marketflow.infra.topics import TopicMismatch, TopicMissing
    from marketflow.ingest.publisher import BrokerUnavailable
    from marketflow.sim.scenario import ScenarioError

    if isinstance(error, ValidationError | ConfigError | RulesError | ReferenceDataError
                  | ScenarioError | MissingExtra):
        return USAGE
    if isinstance(error, Unreachable | StackError | TopicMismatch | TopicMissing
                  | BrokerUnavailable | KafkaError | redis.RedisError):
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
        if not loc:  # a check across settings: its message names them; no input shown
            lines.append(f"  {problem['msg'].removeprefix('Value error, ')}")
            continue
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
    values = {os.environ.get(name, "") for name in SECRET_ENV} | _EXTRA_SECRETS
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


# -- output protection: secrets never reach a log or a traceback ---------------------------

_EXTRA_SECRETS: set[str] = set()
_protected: dict[str, Settings | None] = {}


def add_secrets(values: Iterable[str | None]) -> None:
    """Secrets known only at run time (route webhooks read from variables the rules name),
    masked from here on like those of the settings."""
    _EXTRA_SECRETS.update(value for value in values if value)


def protect_output(settings: Settings | None) -> None:
    """Mask every secret in every log record made from now on (whoever configures the
    handlers later: Faust does) and in uncaught tracebacks, of any thread."""
    _protected["settings"] = settings
    if _protected.get("installed"):
        return
    _protected["installed"] = settings  # any non-missing value: installed once
    make_record = logging.getLogRecordFactory()

    def scrubbed_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return record
        current = _protected.get("settings")
        clean = scrub(message, current)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = scrub(text, current)
            if clean != text:
                record.exc_text = clean
        return record

    logging.setLogRecordFactory(scrubbed_record)

    def excepthook(kind: type[BaseException], error: BaseException,
                   tb: TracebackType | None) -> None:
        text = "".join(traceback.format_exception(kind, error, tb))
        sys.stderr.write(scrub(text, _protected.get("settings")))

    def thread_excepthook(hook_args: threading.ExceptHookArgs) -> None:
        if hook_args.exc_value is not None:
            excepthook(hook_args.exc_type, hook_args.exc_value, hook_args.exc_traceback)

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
