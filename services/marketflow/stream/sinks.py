"""Where the worker's outputs go: Kafka topics, Redis, Prometheus. One place, one interface.

`publish` takes what a core step returned (alerts, snapshots), `ship_partials` the frame
partials stamped for the partials topic, `reject` a record that failed validation.

Alerts are exactly-once per sink: `mf.alerts` is the source of truth and `AlertLedger`
knows every id already in it; Redis dedupes on the id atomically; the Slack notifier
dedupes on its own. Alerts are awaited (acks=all) before the worker moves on, so a crash
cannot lose one that the committed offsets say was seen; snapshots and frame partials are
sent without waiting and flushed on a timer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from marketflow.core.deadletter import dead_letter
from marketflow.core.output import Alert, Output, Snapshot
from marketflow.core.timeutil import HKT
from marketflow.infra.kafka_security import client_options
from marketflow.settings import Topics
from marketflow.stream.daystart import Checkpoint
from marketflow.stream.partials import Shipped, encode_partials
from marketflow.stream.redis_writer import RedisWriter
from marketflow.stream.replay import AlertLedger

log = logging.getLogger("marketflow.sinks")


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """A snapshot's record value: compact JSON. orjson takes integers within 64 bits; a
    volume summed past that (nasty input can) is encoded exactly by the standard library."""
    try:
        return orjson.dumps(snapshot)
    except orjson.JSONEncodeError:
        return json.dumps(snapshot, separators=(",", ":"), ensure_ascii=False).encode()


_SNAPSHOT_TOPIC = {"index": "indices", "stock": "stocks", "sector": "sectors",
                   "market": "market", "southbound": "market"}


class Sinks:
    def __init__(self, bootstrap: str, topics: Topics, ledger: AlertLedger,
                 redis_alerts: Any = None, redis_latest: Any = None, metrics: Any = None,
                 ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.ledger = ledger
        self.redis = (RedisWriter(redis_alerts, redis_latest)
                      if redis_alerts is not None and redis_latest is not None else None)
        self.metrics = metrics
        self.producer: AIOKafkaProducer | None = None
        self._inflight: list[asyncio.Future[Any]] = []  # deliveries not checked yet
        self._rejects: list[tuple[bytes, str]] = []
        self.alerts_emitted = 0
        self._lock = asyncio.Lock()
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}
        self._snapshot_topics = {kind: getattr(topics, name)
                                 for kind, name in _SNAPSHOT_TOPIC.items()}
        # per (topic, partition), records waiting for the sender: (key, value), a value
        # either encoded or a snapshot that the sender encodes as it batches it
        self._outgoing: dict[tuple[str, int], list[tuple[bytes | None, bytes | Snapshot]]] = {}
        self._partials: list[Shipped] = []
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._sender_task: asyncio.Future[None] | None = None
        self._sending = False

    async def start(self) -> None:
        async with self._lock:
            if self.producer is not None:
                return
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=2,
                max_batch_size=1 << 20, max_request_size=8 << 20, enable_idempotence=False,
                **client_options(),
            )
            await producer.start()
            self.producer = producer
            self._sender_task = asyncio.ensure_future(self._sender())

    async def stop(self) -> None:
        if self.producer is not None:
            await self.flush()
            if self._sender_task is not None:
                self._sender_task.cancel()
            await self.producer.stop()
            self.producer = None

    # -- rejects -------------------------------------------------------------------------

    def reject(self, reason: str, partition: int | None, offset: int | None, detail: str,
               source: str, payload: bytes) -> None:
        topic = getattr(self.topics, source)  # ticks, southbound or partials
        record = dead_letter(source_topic=topic, partition=partition, offset=offset,
                             reason=reason, detail=detail, payload=payload,
                             at=dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"))
        self._rejects.append((orjson.dumps(record), reason))
        if self.metrics is not None:
            self.metrics.records_rejected.labels(reason=reason).inc()

    # -- outputs ---------------------------------------------------------------------

    def ship_partials(self, shipped: list[Shipped]) -> None:
        """Queue partials for the partials topic; the sender coalesces them into as few
        records as it can."""
        if shipped:
            self._partials += shipped
            self._wakeup.set()

    async def publish(self, output: Output, replay: bool = False,
                      produced_ms: int | None = None) -> None:
        """Alerts (awaited: acks=all, then Redis) and snapshots (queued; none while
        replaying a partition: they were published the first time), and queued rejects."""
        if self.producer is None:
            await self.start()
        producer = self.producer
        assert producer is not None
        if output.snapshots and not replay:
            await self._snapshots(output.snapshots)
        if output.alerts:
            await self._alerts(output.alerts, produced_ms)
        if self._rejects:
            for value, _ in self._rejects:
                self._inflight.append(await producer.send(self.topics.deadletter, value))
            self._rejects.clear()
        if len(self._inflight) > 2000:
            await self.flush()

    async def _snapshots(self, snapshots: list[Snapshot]) -> None:
        """Queued for their topics as they are: the sender encodes each as it adds it to a
        record batch (so a snapshot is not changed once published). On a backlog tens of
        thousands wait for the sender; encoded here, their JSON buffers, all kept until
        then, cost the allocator more than the encoding: 2.5 us a stock snapshot and 6.7 a
        sector's, against 0.7 and 2.9 encoded as they are batched (docs/design.md)."""
        topics, latest = self._snapshot_topics, self._latest
        by_topic: dict[str, list[tuple[bytes | None, bytes | Snapshot]]] = {}
        for snapshot in snapshots:
            kind, subject = snapshot["type"], snapshot["subject"]
            key = f"southbound:{subject}" if kind == "southbound" else str(subject)
            topic = topics[kind]
            messages = by_topic.get(topic)
            if messages is None:
                messages = by_topic[topic] = []
            messages.append((key.encode(), snapshot))
            latest[(kind, subject)] = snapshot  # Redis and the gauges: the last, on flush()
        for topic, messages in by_topic.items():
            await self._send_many(topic, messages)
        if self.redis is not None:  # intraday history sees every snapshot (alerts/history.py)
            self.redis.latest_sink.observe_history(snapshots)

    async def _send_many(self, topic: str,
                         messages: list[tuple[bytes | None, bytes | Snapshot]],
                         partition: int = 0) -> None:
        """Queue records for one partition; the sender task ships them as record batches.

        aiokafka's send_batch waits until the partition's previous batch has drained, so
        awaiting it here would serialise the agents on broker round trips; the queue keeps
        the agents going while one batch per partition is in flight."""
        self._outgoing.setdefault((topic, partition), []).extend(messages)
        self._wakeup.set()

    async def _sender(self) -> None:
        producer = self.producer
        assert producer is not None
        encode = encode_snapshot
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            self._sending = True
            while self._outgoing or self._partials:
                if self._partials:
                    # the partials queued since the last send, in order, as few records:
                    # the aggregator's agent pays Faust's per-record cost once per record
                    queued, self._partials = self._partials, []
                    self._outgoing.setdefault((self.topics.partials, 0), []).extend(
                        (None, record) for record in encode_partials(queued))
                (topic, partition), messages = next(iter(self._outgoing.items()))
                del self._outgoing[(topic, partition)]
                batch = producer.create_batch()
                for key, item in messages:
                    try:
                        value = item if isinstance(item, bytes) else encode(item)
                    except (TypeError, ValueError) as error:  # a bug: the sender goes on
                        log.error("a snapshot for %s (key %r) cannot be encoded, not sent: "
                                  "%s", topic, key, error)
                        continue
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        self._inflight.append(await producer.send_batch(
                            batch, topic, partition=partition))
                        batch = producer.create_batch()
                        if batch.append(key=key, value=value, timestamp=None) is None:
                            log.error("a %d-byte record for %s does not fit a batch; "
                                      "not sent", len(value), topic)
                if batch.record_count():
                    self._inflight.append(await producer.send_batch(
                        batch, topic, partition=partition))
            self._sending = False
            self._drained.set()

    async def _alerts(self, alerts: list[Alert], produced_ms: int | None) -> None:
        producer = self.producer
        assert producer is not None
        fresh = [a for a in alerts if self.ledger.first_time(a["alert_id"])]
        if not fresh:
            return
        now = dt.datetime.now(HKT)
        sent = []
        for alert in fresh:  # all in flight at once: one round trip for the lot, not one each
            alert["emitted_at"] = now.isoformat(timespec="milliseconds")
            sent.append(await producer.send(self.topics.alerts, orjson.dumps(alert),
                                            key=alert["alert_id"].encode()))
        await asyncio.gather(*sent)
        if self.redis is not None:  # written now, or kept through a Redis outage
            self.redis.add_alerts(fresh)
            if self.redis.healthy:  # else the flush timer retries: agents never wait on it
                await self.redis.write()
        self.alerts_emitted += len(fresh)
        if self.metrics is not None:
            for alert in fresh:
                self.metrics.observe_alert(alert)
            if produced_ms is not None and produced_ms > 0:
                self.metrics.observe_tick_to_alert(time.time() - produced_ms / 1000)
        for alert in fresh:
            log.info("ALERT %s %s", alert["alert_id"], alert["message"])

    def send_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Where a day begins in a partition (`daystart.DayWatch`): queued, not awaited;
        one lost in a crash costs a successor a longer replay, nothing else."""
        self._outgoing.setdefault((self.topics.checkpoints, 0), []).append(
            (checkpoint.key(), checkpoint.to_json()))
        self._wakeup.set()

    def count_rebuild(self, topic: str, records: int) -> None:
        if self.metrics is not None:
            self.metrics.rebuild_records.labels(topic=topic).inc(records)

    def count_ticks(self, count: int, partition: int | None = None) -> None:
        if self.metrics is not None and count:
            self.metrics.observe_ticks(count, partition)

    def metrics_batch(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_batch(seconds)

    def metrics_dropped_groups(self, redelivered: int, stale_day: int) -> None:
        if self.metrics is not None:
            self.metrics.observe_dropped_groups({"redelivered": redelivered,
                                                 "stale_day": stale_day})

    def metrics_frame_wait(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.frame_wait.set(seconds)

    def metrics_frame(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_frame(seconds)

    async def flush_latest(self) -> None:
        """Write the coalesced latest snapshots to Redis and the gauges (a timer calls this
        every 100 ms: dashboards see each figure within that)."""
        latest, self._latest = list(self._latest.values()), {}
        if self.redis is not None:
            self.redis.add_latest(latest)
            await self.redis.write()
        if latest and self.metrics is not None:
            self.metrics.observe_snapshots(latest)

    def _reap(self) -> None:
        """Deliveries acknowledged since the last look: failures logged, the others kept."""
        pending = []
        for future in self._inflight:
            if not future.done():
                pending.append(future)
            elif not future.cancelled() and future.exception() is not None:
                # delivery failure of a snapshot, partial or dead letter
                log.error("Kafka delivery failed: %s", future.exception())
        self._inflight = pending

    def restore_alerts(self, alerts: list[Alert], within_s: float = 2 * 86_400) -> int:
        """Alerts read back from `mf.alerts` (by a rebuild) go to Redis again: one that
        reached the topic but not Redis before a crash gets there now, and Redis's dedupe
        by id makes the others no-ops. Only recent ones: Redis remembers ids for 3 days."""
        if self.redis is None or not alerts:
            return 0
        horizon = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=within_s)
        recent = []
        for alert in alerts:
            try:
                if dt.datetime.fromisoformat(alert["emitted_at"]) >= horizon:
                    recent.append(alert)
            except (KeyError, TypeError, ValueError):
                continue
        self.redis.add_alerts(recent)
        return len(recent)

    async def flush(self, wait: bool = True) -> None:
        """The latest figures to Redis, and what is queued for Kafka: with `wait` (on the
        way out), sent and acknowledged; without (the 100 ms timer), handed to the sender,
        which ships on its own, and the deliveries already acknowledged checked: waiting
        there held the timer's next turn (idle partitions, frames to close, Redis) behind
        the broker's acknowledgements of a backlog's snapshots."""
        await self.flush_latest()
        if self.producer is None:
            return
        if not wait:
            self._wakeup.set()
            self._reap()
            return
        while self._outgoing or self._partials or self._sending:  # let the sender ship it
            self._drained.clear()
            self._wakeup.set()
            await self._drained.wait()
        if self._inflight:
            await asyncio.wait(self._inflight)
        self._reap()
