"""Our murmur2 partitioner agrees with kafka-python's (the Java client's) on any key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from marketflow.ingest.partitioner import murmur2, partition_for


@given(st.binary(max_size=64))
def test_murmur2_matches_kafka_python(data: bytes) -> None:
    assert murmur2(data) == kafka_murmur2(data) & 0xFFFFFFFF


@given(st.text(max_size=12), st.integers(1, 64))
def test_partition_for_is_kafkas_default_partitioner(key: str, partitions: int) -> None:
    expected = (kafka_murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == expected


@pytest.mark.parametrize(("data", "signed"), [
    # the Java client's Utils.murmur2 on these keys (signed 32-bit, as Java prints them)
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"", 275646681),
])
def test_java_values(data: bytes, signed: int) -> None:
    assert murmur2(data) == signed & 0xFFFFFFFF
