"""Settings: one pydantic-settings class, read once at start and passed down.

Every field can be set from the environment as `MARKETFLOW_<FIELD>` (for example
`MARKETFLOW_KAFKA_BOOTSTRAP`). Secrets are `SecretStr` and never logged; each secret can
also be read from a file named by `MARKETFLOW_<FIELD>_FILE` (a mounted Kubernetes or
Docker secret), which is used when the variable itself is unset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from marketflow.core.windows import DEFAULT_WINDOWS, parse_windows

PACKAGE_DATA = Path(__file__).parent / "data"


class Topics(BaseSettings):
    """Topic names (SPEC.md defaults); `MARKETFLOW_TOPIC_<NAME>` overrides one."""

    model_config = SettingsConfigDict(env_prefix="MARKETFLOW_TOPIC_", extra="ignore")

    ticks: str = "md.ticks"
    southbound: str = "md.southbound"
    indices: str = "mf.indices"
    sectors: str = "mf.sectors"
    stocks: str = "mf.stocks"
    market: str = "mf.market"
    alerts: str = "mf.alerts"
    deadletter: str = "mf.deadletter"
    partials: str = "mf.internal.frame-partials"
    checkpoints: str = "mf.internal.checkpoints"


SECRET_FIELDS = ("redis_url", "redis_password", "slack_webhook_url")
# (the Kafka SASL password has its own MARKETFLOW_KAFKA_SASL_PASSWORD_FILE field)


class SecretFiles(PydanticBaseSettingsSource):
    """`MARKETFLOW_<FIELD>_FILE=/path` for each secret field: the file's content, without
    its trailing newline. A named file that cannot be read is an error naming the
    variable (never the content)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in SECRET_FIELDS:
            variable = f"MARKETFLOW_{name.upper()}_FILE"
            path = os.environ.get(variable)
            if not path:
                continue
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as error:
                raise ValueError(f"{variable}: cannot read {path}: {error.strerror}") from None
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKETFLOW_", extra="ignore")
    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, SecretFiles(settings_cls), dotenv_settings,
                file_secret_settings)

    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset = the embedded stack's broker"
    )
    redis_url: SecretStr | None = Field(
        default=None, description="redis://...; unset = the embedded stack's redis-server"
    )
    redis_password: SecretStr | None = Field(
        default=None, description="Redis AUTH password, put into MARKETFLOW_REDIS_URL "
                                  "(which may then carry none)")
    slack_webhook_url: SecretStr | None = None
    rules: Path = PACKAGE_DATA / "rules.yaml"
    universe: Path = PACKAGE_DATA / "universe.csv"
    indices: Path = PACKAGE_DATA / "indices.csv"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_host: str = Field(default="127.0.0.1", min_length=1,
                              description="address /metrics binds; 0.0.0.0 = every interface")
    connect_timeout_s: float = Field(
        default=60.0, ge=0, description="how long a command waits for the broker (and Redis "
        "when it needs it) to answer at start, retrying with backoff; 0 = try once")
    health_port: int = Field(default=0, ge=0, le=65535,
                             description="worker /healthz and /readyz; 0 = off")
    notify_metrics_port: int = Field(default=0, ge=0, le=65535,
                                     description="notify's /metrics; 0 = off")
    market_calendar: str = Field(
        default="XHKG", description="exchange-calendars code of the session phase metric; "
                                    "empty = no phase")
    state_dir: Path = Path(".marketflow")
    ticks_partitions: int = Field(default=8, ge=1, le=1024)
    frame_ms: int = Field(default=1000, ge=1, le=3_600_000)
    windows: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_WINDOWS, validate_default=True,
        description="rolling windows of sector gains; MARKETFLOW_WINDOWS=1m,5m,15m,60m",
    )
    idle_ms: int = Field(default=2000, ge=1)
    redis_prefix: str = "mf:"
    app_id: str = Field(default="marketflow", description="Faust app id = consumer group")
    web_host: str = Field(default="127.0.0.1", description="`marketflow web` binds here")
    web_port: int = Field(default=8050, ge=1, le=65535, description="`marketflow web` port")
    session_timeout_s: float = Field(default=3.0, gt=0)
    heartbeat_s: float = Field(default=0.5, gt=0)
    notify_give_up_s: float = Field(
        default=600.0, gt=0, description="how long `notify` retries a failing webhook "
        "(5xx, 429, timeouts) before it exits 1 without committing")
    topics: Topics = Field(default_factory=Topics)
    # Kafka security (every client: kafka_clients.client_kwargs); PLAINTEXT by default
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = Field(
        default=None, description="a file holding the SASL password (read once at start)")
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_check_hostname: bool = True

    @field_validator("windows", mode="before")
    @classmethod
    def _parse_windows(cls, value: object, info: ValidationInfo) -> tuple[str, ...]:
        """A comma-separated string (the environment) or a sequence of window names, each a
        whole number of frames; an invalid frame_ms is reported on its own."""
        if not isinstance(value, str | list | tuple):
            raise ValueError("a comma-separated list of durations such as 1m,5m,15m,60m")
        return parse_windows(value, info.data.get("frame_ms") or 1)

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
                     "kafka_sasl_password_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _kafka_security(self) -> Settings:
        """SASL needs a mechanism, a user and one password (given, or read from its file
        here, once); SSL files only with an SSL protocol. Messages name the variables."""
        sasl = self.kafka_security_protocol.startswith("SASL_")
        ssl = self.kafka_security_protocol.endswith("SSL")
        protocol = f"MARKETFLOW_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
        if self.kafka_sasl_password_file is not None:
            if self.kafka_sasl_password is not None:
                raise ValueError("set MARKETFLOW_KAFKA_SASL_PASSWORD or "
                                 "MARKETFLOW_KAFKA_SASL_PASSWORD_FILE, not both")
            text = self.kafka_sasl_password_file.read_text(encoding="utf-8").strip()
            if not text:
                raise ValueError("MARKETFLOW_KAFKA_SASL_PASSWORD_FILE is empty")
            self.kafka_sasl_password = SecretStr(text)
        given = [name for name, value in (
            ("MECHANISM", self.kafka_sasl_mechanism), ("USERNAME", self.kafka_sasl_username),
            ("PASSWORD", self.kafka_sasl_password)) if value is not None]
        if sasl and len(given) < 3:
            missing = sorted({"MECHANISM", "USERNAME", "PASSWORD"} - set(given))
            raise ValueError(f"{protocol} needs " + ", ".join(
                f"MARKETFLOW_KAFKA_SASL_{name}" for name in missing))
        if not sasl and given:
            raise ValueError(f"MARKETFLOW_KAFKA_SASL_{given[0]} is set but {protocol}; use "
                             "SASL_SSL or SASL_PLAINTEXT")
        files = [name for name, value in (
            ("CAFILE", self.kafka_ssl_cafile), ("CERTFILE", self.kafka_ssl_certfile),
            ("KEYFILE", self.kafka_ssl_keyfile)) if value is not None]
        if not ssl and files:
            raise ValueError(f"MARKETFLOW_KAFKA_SSL_{files[0]} is set but {protocol}; use "
                             "SSL or SASL_SSL")
        if (self.kafka_ssl_keyfile is None) != (self.kafka_ssl_certfile is None):
            raise ValueError("MARKETFLOW_KAFKA_SSL_CERTFILE and MARKETFLOW_KAFKA_SSL_KEYFILE "
                             "go together (a client certificate and its key)")
        if self.redis_password is not None and self.redis_url is not None:
            self.redis_url = SecretStr(with_password(self.redis_url.get_secret_value(),
                                                     self.redis_password.get_secret_value()))
        return self


def with_password(url: str, password: str) -> str:
    """`redis://host:6379/0` + password -> `redis://:password@host:6379/0` (a user in the
    URL is kept; a password already there is replaced)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = quote(parts.username or "", safe="")
    return parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}").geturl()
