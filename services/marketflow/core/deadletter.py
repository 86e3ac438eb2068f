"""Dead-letter records: what could not be accepted, with the reason, never dropped silently."""

from __future__ import annotations

import base64
from typing import Any


def dead_letter(
    *,
    source_topic: str,
    reason: str,
    detail: str,
    payload: bytes | str | None,
    partition: int | None = None,
    offset: int | None = None,
    source_file: str | None = None,
    line: int | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    """A `mf.deadletter` value (schemas/deadletter.schema.json).

    The raw payload is kept as text when it is valid UTF-8, otherwise as base64. `at` is
    the wall-clock time of the rejection (RFC 3339), passed in by the adapter.
    """
    record: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": partition,
        "offset": offset,
        "reason": reason,
        "detail": detail,
    }
    if isinstance(payload, bytes):
        try:
            record["payload_text"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            record["payload_base64"] = base64.b64encode(payload).decode("ascii")
    elif payload is not None:
        record["payload_text"] = payload
    if source_file is not None:
        record["source"] = {"file": source_file, "line": line}
    if at is not None:
        record["at"] = at
    return record
