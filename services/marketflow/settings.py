"""Settings: one pydantic-settings class, read once at start and passed down.

Every field can be set from the environment as `MARKETFLOW_<FIELD>` (for example
`MARKETFLOW_KAFKA_BOOTSTRAP`). Secrets are `SecretStr` and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MARKETFLOW_", extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None, description="host:port[,host:port]; unset = the embedded stack's broker"
    )
    redis_url: SecretStr | None = Field(
        default=None, description="redis://...; unset = the embedded stack's redis-server"
    )
    slack_webhook_url: SecretStr | None = None
    rules: Path = PACKAGE_DATA / "rules.yaml"
    universe: Path = PACKAGE_DATA / "universe.csv"
    indices: Path = PACKAGE_DATA / "indices.csv"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
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
    topics: Topics = Field(default_factory=Topics)

    @field_validator("windows", mode="before")
    @classmethod
    def _parse_windows(cls, value: object, info: ValidationInfo) -> tuple[str, ...]:
        """A comma-separated string (the environment) or a sequence of window names, each a
        whole number of frames; an invalid frame_ms is reported on its own."""
        if not isinstance(value, str | list | tuple):
            raise ValueError("a comma-separated list of durations such as 1m,5m,15m,60m")
        return parse_windows(value, info.data.get("frame_ms") or 1)
