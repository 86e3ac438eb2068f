"""Kafka's default partitioner: murmur2 of the key bytes, as the Java client does.

Written out here (a dozen lines) rather than imported from kafka-python, whose import
costs every `marketflow` command about 0.2 s; a unit test checks the two agree."""

from __future__ import annotations

from functools import lru_cache

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 (seed 0x9747b28c) as Kafka's `Utils.murmur2`, an unsigned 32-bit value."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@lru_cache(maxsize=1 << 14)
def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for this key."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
