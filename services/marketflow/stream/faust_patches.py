"""The one place marketflow reaches into Faust's private parts, checked against the version
it was written for.

faust-streaming hard-codes `fetch_max_wait_ms=1500` for its worker consumer
(`AIOKafkaConsumerThread._create_worker_consumer`). A broker that holds a fetch for the
full wait when little data is ready (the embedded broker does) then adds up to 1.5 s to
every tick's way to its alert; marketflow asks for `FETCH_MAX_WAIT_MS` instead (not less:
see there).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# Not lower: the embedded broker treats a fetch's max wait as a deadline for *reading* too
# and answers with what it read by then. With 5 ms, once the frame-partials log was a few
# thousand records deep it could not read its first batch in time and every fetch of that
# partition came back empty, for ever (measured on such a log: 5 ms -> 0 records in 5 s,
# 10 ms -> 6, 20 ms -> 3.5k in 4.6 s, 50 ms -> 6k in 0.4 s, 100 ms -> 4.7k in one fetch):
# the aggregator starved. Apache Kafka answers as soon as data is there; there the value
# only bounds an empty poll.
FETCH_MAX_WAIT_MS = 100
WRITTEN_FOR = ("0.11", "0.12", "0.13", "0.14", "0.15")  # faust-streaming minor versions


def shorten_fetch_wait(wait_ms: int = FETCH_MAX_WAIT_MS) -> bool:
    """Patch the worker consumer's fetch wait; True if patched (or already). Logs, and
    leaves Faust alone, when the private method is missing or the version is untested."""
    import faust
    from faust.transport.drivers import aiokafka as driver

    version = getattr(faust, "__version__", "?")
    thread = getattr(driver, "AIOKafkaConsumerThread", None)
    original = getattr(thread, "_create_worker_consumer", None)
    if thread is None or original is None:
        log.warning("faust-streaming %s has no AIOKafkaConsumerThread._create_worker_consumer:"
                    " fetch wait left at Faust's default (up to 1.5 s added latency)", version)
        return False
    if getattr(original, "_marketflow_patched", False):
        return True
    if not str(version).startswith(WRITTEN_FOR):
        log.warning("faust-streaming %s is newer than the fetch-wait patch was checked with "
                    "(%s); applying it anyway", version, ", ".join(WRITTEN_FOR))

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        consumer = original(self, *args, **kwargs)
        consumer._fetch_max_wait_ms = wait_ms
        return consumer

    create._marketflow_patched = True  # type: ignore[attr-defined]
    thread._create_worker_consumer = create
    log.info("faust-streaming %s: worker consumer fetch wait set to %d ms", version, wait_ms)
    return True
