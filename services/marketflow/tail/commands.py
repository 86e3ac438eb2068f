"""`marketflow tail TOPIC`: follow an output topic (or the Redis alert stream) for people
(a table) and for scripts (`--json`: JSON lines, one record each, flushed as they come).

    marketflow tail mf.alerts --json | jq -r .message
    marketflow tail alerts --from today --severity critical
    marketflow tail mf.sectors --subject AI --subject Internet
    marketflow tail redis --from start --rule index-up-2pct

TOPIC is a topic name (`mf.alerts`), one of the configured names (`alerts`, `indices`,
`sectors`, `stocks`, `market`, `deadletter`, `ticks`, `southbound`: MARKETFLOW_TOPIC_*
applies), or `redis` for Redis's alert stream `{MARKETFLOW_REDIS_PREFIX}alerts`.
Exit codes: 0 (stopped by --limit, --idle or Ctrl-C; a closed pipe), 1 (broker or Redis
unreachable or lost), 2 (unknown topic, bad option).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import typer

from marketflow.cli_support import FAILURE, USAGE, exit_on_error, fail, load_settings, prepare
from marketflow.settings import Settings, Topics
from marketflow.tail.render import (
    StartError,
    json_line,
    matches,
    parse_start,
    row,
    wall_clock_now,
)

REDIS_NAMES = ("redis", "redis:alerts")


def resolve_topic(name: str, topics: Topics) -> str:
    """A configured name (`alerts`) to its topic; anything else is taken as a topic name."""
    return str(getattr(topics, name)) if name in Topics.model_fields else name


async def _run(source: AsyncIterator[Any], as_json: bool, subjects: list[str],
               rules: list[str], severities: list[str], limit: int | None,
               idle_s: float | None) -> int:
    loop = asyncio.get_running_loop()
    shown = 0
    last: float | None = None  # idle time counts once following has started
    async for entry in source:
        if entry is None:
            last = loop.time() if last is None else last
            if idle_s is not None and loop.time() - last >= idle_s:
                return 0
            continue
        last = loop.time()
        if not matches(entry.value, subjects, rules, severities):
            continue
        text = json_line(entry.value) if as_json else row(entry.value, entry.key)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        shown += 1
        if limit is not None and shown >= limit:
            return 0
    return 0


def register(app: typer.Typer) -> None:
    @app.command()
    def tail(
        topic: str = typer.Argument(..., help="An output topic (mf.alerts, mf.sectors, ...), "
                                              "a configured name (alerts, sectors, ...), or "
                                              "`redis` for the Redis alert stream."),
        start: str = typer.Option("now", "--from", help="now (new records only), today "
                                                        "(since 00:00 HKT), start, a Kafka "
                                                        "offset, or a Redis stream id."),
        subject: list[str] = typer.Option([], "--subject", "-s",
                                          help="Only these subjects (repeatable)."),
        rule: list[str] = typer.Option([], "--rule", "-r",
                                       help="Only alerts of these rules (repeatable)."),
        severity: list[str] = typer.Option([], "--severity",
                                           help="Only alerts of these severities: info, "
                                                "warning, critical (repeatable)."),
        as_json: bool = typer.Option(False, "--json",
                                     help="JSON lines (the records as written), for piping."),
        limit: int | None = typer.Option(None, min=1, help="Stop after N records."),
        idle: float | None = typer.Option(None, min=0.1, help="Stop after S seconds without "
                                                              "a record (default: follow)."),
        partition: list[int] = typer.Option([], "--partition", "-p",
                                            help="Only these partitions (default: all)."),
        quiet: bool = typer.Option(False, "--quiet", "-q",
                                   help="Do not say on stderr where following starts."),
    ) -> None:
        """Follow an output topic or Redis's alert stream: a table, or --json lines."""
        from marketflow.tail.sources import UnknownTopic, follow_kafka, follow_redis

        settings = load_settings()
        bad = sorted(set(severity) - {"info", "warning", "critical"})
        if bad:
            fail(f"--severity {', '.join(bad)}: use info, warning or critical", USAGE)
        try:
            begin = parse_start(start)
        except StartError as error:
            fail(str(error), USAGE)
        now = wall_clock_now()
        redis = topic in REDIS_NAMES
        if redis:
            source = _redis_source(settings, begin, now, follow_redis, quiet)
        else:
            if begin.kind == "id":
                fail("--from with a stream id applies to `redis` only", USAGE)
            prepared = prepare(topics=False)  # exits 1/2 if the broker is unreachable
            name = resolve_topic(topic, settings.topics)
            source = follow_kafka(prepared.bootstrap, name, begin, now, partition or None,
                                  ready=None if quiet else _tell)
        try:
            code = asyncio.run(_run(source, as_json, subject, rule, severity, limit, idle))
        except KeyboardInterrupt:
            code = 0
        except BrokenPipeError:  # `| head`: the reader has what it wanted
            sys.stderr.close()
            code = 0
        except UnknownTopic as error:
            names = ", ".join(sorted(str(v) for v in settings.topics.model_dump().values()))
            fail(f"no topic {error} on the broker (marketflow's: {names})", USAGE, settings)
        except StartError as error:
            fail(str(error), USAGE, settings)
        except (OSError, TimeoutError) as error:
            fail(f"lost the {'Redis server' if redis else 'broker'}: {error}", FAILURE,
                 settings)
        except Exception as error:
            from marketflow.cli_support import exit_code

            if exit_code(error) is None:
                raise
            with exit_on_error(settings):
                raise
        raise typer.Exit(code)


def _tell(message: str) -> None:
    """Where following starts, on stderr (stdout stays the records alone)."""
    typer.echo(f"{message}; Ctrl-C to stop", err=True)


def _redis_source(settings: Settings, begin: Any, now: Any, follow_redis: Any,
                  quiet: bool) -> Any:
    from marketflow.cli_support import ping_redis
    from marketflow.web.commands import resolve_redis

    with exit_on_error(settings):
        url = resolve_redis(settings)
        ping_redis(url)
    if begin.kind == "offset":
        fail("a Kafka offset does not apply to `redis`: give a stream id such as "
             "1763947800000-0", USAGE)
    return follow_redis(url, f"{settings.redis_prefix}alerts", begin, now,
                        ready=None if quiet else _tell)

