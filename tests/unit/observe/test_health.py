"""Worker liveness and readiness from the events a Faust sensor sees (time passed in)."""

from __future__ import annotations

from marketflow.observe.health import WorkerHealth


def test_not_ready_until_joined() -> None:
    health = WorkerHealth()
    assert not health.ready()
    health.rebalance_started()
    assert not health.ready()
    health.rebalance_ended(frozenset({("md.ticks", 0)}))
    assert health.ready()


def test_a_partition_rebuilding_while_its_first_record_is_in_flight() -> None:
    health = WorkerHealth()
    health.rebalance_ended(frozenset({"t0", "t1"}))
    health.record_in("t0")  # first record: the worker replays t0 before handling it
    assert not health.ready()
    assert health.report(0.0)["rebuilding"] == ["t0"]
    health.record_out("t0")
    assert health.ready()
    health.record_in("t0")  # later records are not rebuilds
    assert health.ready()


def test_a_new_assignment_rebuilds_again_and_a_rebalance_is_not_ready() -> None:
    health = WorkerHealth()
    health.rebalance_ended(frozenset({"t0"}))
    health.record_in("t0")
    health.record_out("t0")
    health.rebalance_started()
    assert not health.ready()
    health.rebalance_ended(frozenset({"t0"}))
    health.record_in("t0")
    assert not health.ready()


def test_standby_without_partitions_is_ready() -> None:
    health = WorkerHealth()
    health.rebalance_ended(frozenset())
    assert health.ready()


def test_live_while_the_sampler_beats() -> None:
    health = WorkerHealth(stall_s=30)
    assert not health.live(0.0)
    health.beat(100.0)
    assert health.live(129.0)
    assert not health.live(131.0)
