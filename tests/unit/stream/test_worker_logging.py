"""The worker's logging as Faust sets it up (no I/O: Faust's worker is built, not started):
the root logger keeps the level asked for, so that a library's debug calls (aiokafka logs
every request and response) make no records at `--loglevel warning`."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import faust
import pytest

from marketflow.stream.worker import faust_worker


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Faust's set-up replaces the root logger's handlers and level: put them back."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    factory = logging.getLogRecordFactory()
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.mark.parametrize(("loglevel", "level"), [
    ("warning", logging.WARNING),
    ("error", logging.ERROR),
    ("info", logging.INFO),
    ("debug", logging.DEBUG),
])
def test_root_logger_keeps_the_level_asked_for(root_logging: None, loglevel: str,
                                               level: int) -> None:
    app = faust.App("mf-logging-test", broker="kafka://127.0.0.1:1", web_enabled=False)
    worker = faust_worker(app, loglevel)
    worker._setup_logging()  # what the worker does first when it starts
    root = logging.getLogger()
    assert root.level == level
    assert all(handler.level >= level for handler in root.handlers)
    made: list[str] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.getMessage())
        return record

    logging.setLogRecordFactory(counting)
    logging.getLogger("aiokafka.conn").debug("request %d", 1)
    logging.getLogger("aiokafka.conn").warning("broker %s gone", "b1")
    sent = [(logging.DEBUG, "request 1"), (logging.WARNING, "broker b1 gone")]
    assert made == [message for at, message in sent if at >= level]
