"""Publishing records to Kafka: validate, normalise, key by symbol, batch, pace, dead-letter.

kafka-python with acks=all. Ticks are grouped per partition (Kafka's murmur2 on the
symbol, as for a keyed record) into JSON arrays sent to that partition explicitly, up to
`batch` ticks or `linger_ms` of wall time per array, so per-symbol order is the same as
with one keyed tick per record (`batch=1`). Fewer, larger records are what keep the
worker and the broker fast (docs/design.md, "Throughput"). A record that fails
validation is never dropped: it is counted by reason and written to the dead-letter topic.
A line holding an array keeps its good ticks: each bad element is dead-lettered alone, with
its index (the dead letter's `element`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from marketflow.core.deadletter import dead_letter
from marketflow.core.records import (
    RecordError,
    SouthboundUpdate,
    Tick,
    parse_southbound,
)
from marketflow.ingest.batches import split_ticks
from marketflow.ingest.partitioner import partition_for
from marketflow.settings import Topics

Feed = Literal["ticks", "southbound"]  # which input feed (topic) a record belongs to


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached after retries."""


@dataclass
class PublishSummary:
    lines: int = 0
    sent: int = 0  # records (ticks or updates) published
    messages: int = 0  # Kafka messages (a batch counts once)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # first bad lines, for people
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


def pace_delay(first_event_ms: int, first_wall: float, event_ms: int, now: float,
               speed: float) -> float:
    """Seconds to wait so that event time advances `speed` times faster than wall time."""
    if speed <= 0:
        return 0.0
    due = first_wall + (event_ms - first_event_ms) / 1000 / speed
    return max(0.0, due - now)


DEFAULT_BATCH = 100  # ticks per record
DEFAULT_LINGER_MS = 50  # the longest a tick waits for its record to fill


class Publisher:
    def __init__(self, bootstrap: str, topics: Topics, batch: int = DEFAULT_BATCH,
                 speed: float = 0.0, producer: Any = None,
                 sleep: Callable[[float], None] = time.sleep, max_examples: int = 10,
                 linger_ms: int = DEFAULT_LINGER_MS,
                 clock: Callable[[], float] = time.monotonic,
                 client_config: dict[str, Any] | None = None) -> None:
        self.topics = topics
        self.batch = max(1, batch)
        self.linger_s = max(0, linger_ms) / 1000
        self.clock = clock
        self._oldest: float | None = None  # when the oldest pending tick was queued
        self.speed = speed
        self.sleep = sleep
        self.max_examples = max_examples
        self.producer = (producer if producer is not None
                         else self._connect(bootstrap, client_config or {}))
        self.bootstrap = bootstrap
        self._partitions: int | None = None
        self._pending: dict[int, list[dict[str, Any]]] = {}
        self._pace: tuple[int, float] | None = None
        self._errors: list[Exception] = []
        self.messages = 0

    @staticmethod
    def _connect(bootstrap: str, client_config: dict[str, Any]) -> Any:
        """`client_config`: kafka_clients.client_kwargs(settings, "kafka-python")."""
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            return KafkaProducer(
                bootstrap_servers=bootstrap, acks="all", linger_ms=5, retries=5,
                batch_size=256 * 1024, max_request_size=8 << 20,
                request_timeout_ms=15_000, max_block_ms=15_000, **client_config,
            )
        except KafkaError as error:
            raise BrokerUnavailable(f"cannot reach the Kafka broker at {bootstrap}: "
                                    f"{error}") from None

    def ticks_partitions(self) -> int:
        if self._partitions is None:
            partitions = self.producer.partitions_for(self.topics.ticks)
            if not partitions:
                raise BrokerUnavailable(f"topic {self.topics.ticks} does not exist on "
                                        f"{self.bootstrap} (run `marketflow topics --create`)")
            self._partitions = len(partitions)
        return self._partitions

    # -- records ---------------------------------------------------------------------

    def publish_lines(self, kind: Feed, lines: Iterable[tuple[int, str | bytes, Any]],
                      source_file: str, progress: Callable[[int], None] | None = None,
                      ) -> PublishSummary:
        return self.publish_mixed(((kind, n, raw, obj) for n, raw, obj in lines),
                                  source_file, progress)

    def publish_mixed(self, items: Iterable[tuple[Feed, int, str | bytes, Any]], source: str,
                      progress: Callable[[int], None] | None = None) -> PublishSummary:
        """Ticks and southbound updates interleaved in event-time order (the simulator)."""
        summary = PublishSummary()
        started = time.monotonic()
        self.messages = 0
        for kind, number, raw, obj in items:
            summary.lines += 1
            records: list[Tick] | list[SouthboundUpdate]
            try:
                if isinstance(obj, RecordError):
                    raise obj
                if kind == "ticks":
                    records, bad = split_ticks(obj)  # a batch keeps its good ticks
                    for element in bad:
                        if element.index is None:
                            raise element.error
                        self._reject(kind, summary, element.error,
                                     orjson.dumps(element.value).decode(), source, number,
                                     element.index)
                else:
                    records = [parse_southbound(obj)]
            except RecordError as error:
                self._reject(kind, summary, error, raw or orjson.dumps(obj).decode(),
                             source, number)
                continue
            for record in records:
                self._send(kind, record, summary)
            if progress is not None:
                progress(len(records))
        self.flush()
        summary.messages = self.messages
        summary.elapsed = time.monotonic() - started
        return summary

    def _reject(self, kind: Feed, summary: PublishSummary, error: RecordError, raw: str | bytes,
                source_file: str, number: int, element: int | None = None) -> None:
        """Count and dead-letter a rejected line, or one element (`element`, its index) of
        a line's array: then the payload is that element alone."""
        summary.rejected[error.reason] += 1
        if len(summary.examples) < self.max_examples:
            summary.examples.append(f"{source_file}:{number}: {error.reason}: {error.detail}")
        topic = self.topics.ticks if kind == "ticks" else self.topics.southbound
        record = dead_letter(
            source_topic=topic, reason=error.reason, detail=error.detail, payload=raw,
            source_file=source_file, line=number,
            at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))
        if element is not None:
            record["element"] = element
        self.producer.send(self.topics.deadletter, orjson.dumps(record))

    def _send(self, kind: Feed, record: Tick | SouthboundUpdate, summary: PublishSummary
              ) -> None:
        self._wait_for(record.ts)
        summary.sent += 1
        value = record.to_json()
        if kind == "southbound":
            assert isinstance(record, SouthboundUpdate)
            self._emit(self.topics.southbound, orjson.dumps(value), record.channel.encode())
            return
        assert isinstance(record, Tick)
        if self.batch == 1:
            self._emit(self.topics.ticks, orjson.dumps(value), record.symbol.encode())
            return
        partition = partition_for(record.symbol, self.ticks_partitions())
        pending = self._pending.setdefault(partition, [])
        pending.append(value)
        if len(pending) >= self.batch:
            self._emit(self.topics.ticks, orjson.dumps(pending), None, partition)
            del self._pending[partition]
        now = self.clock()
        if self._oldest is None:
            self._oldest = now
        elif now - self._oldest >= self.linger_s:
            self._flush_pending()  # a slow feed: what waited linger_ms goes out now

    def _emit(self, topic: str, value: bytes, key: bytes | None,
              partition: int | None = None) -> None:
        self.messages += 1
        future = self.producer.send(topic, value, key=key, partition=partition)
        future.add_errback(self._errors.append)

    def _wait_for(self, event_ms: int) -> None:
        if self.speed <= 0:
            return
        now = time.monotonic()
        if self._pace is None:
            self._pace = (event_ms, now)
            return
        delay = pace_delay(self._pace[0], self._pace[1], event_ms, now, self.speed)
        if delay > 0.001:
            self._flush_pending()  # what is due goes out before we wait
            self.sleep(delay)

    def _flush_pending(self) -> None:
        for partition, pending in self._pending.items():
            self._emit(self.topics.ticks, orjson.dumps(pending), None, partition)
        self._pending.clear()
        self._oldest = None

    def flush(self) -> None:
        self._flush_pending()
        self.producer.flush(timeout=60)
        if self._errors:
            raise BrokerUnavailable(f"{len(self._errors)} record(s) not delivered to "
                                    f"{self.bootstrap}: {self._errors[0]}")

    def close(self) -> None:
        self.producer.close(timeout=10)
