"""Kafka's default partitioner: murmur2 of the key bytes, as Java and kafka-python do."""

from __future__ import annotations

from kafka.partitioner.default import murmur2


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for this key."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
