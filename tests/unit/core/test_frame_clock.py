"""When frames may close: every active source past the frame's end; idle sources left out."""

from __future__ import annotations

from marketflow.core.frames import FrameClock


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_frames_close_at_the_slowest_active_source() -> None:
    clock = Clock()
    frames = FrameClock(sources=3, frame_ms=1000, idle_ms=2000, now=clock)
    frames.heard_from(0, 10_500)
    frames.heard_from(1, 12_100)
    assert frames.closable_through() == -2  # source 2 has not reported: nothing closes
    frames.heard_from(2, 11_000)
    assert frames.closable_through() == 9  # min watermark 10.5 s: frames up to [9 s, 10 s)


def test_a_quiet_source_is_left_out_after_idle_ms() -> None:
    clock = Clock()
    frames = FrameClock(sources=2, frame_ms=1000, idle_ms=2000, now=clock)
    frames.heard_from(0, 5_000)
    frames.heard_from(1, 9_000)
    assert frames.closable_through() == 4
    clock.t += 1.5
    frames.heard_from(1, 10_000)
    assert frames.closable_through() == 4
    clock.t += 1.0  # source 0 quiet for 2.5 s > 2 s
    assert frames.idle(0) and not frames.idle(1)
    assert frames.closable_through() == 9


def test_after_a_quiet_spell_every_source_gets_its_grace() -> None:
    clock = Clock()
    frames = FrameClock(sources=2, frame_ms=1000, idle_ms=2000, now=clock)
    clock.t += 60  # long before any data: everything would count as idle ...
    frames.heard_from(0, 30_000)
    # ... but the first partial starts a grace period: source 1 is not left out yet
    assert not frames.idle(1)
    assert frames.closable_through() == -2
    clock.t += 2.5
    assert frames.idle(0) and frames.idle(1)
    assert frames.closable_through() is None


def test_all_idle() -> None:
    clock = Clock()
    frames = FrameClock(sources=2, frame_ms=1000, idle_ms=2000, now=clock)
    frames.heard_from(0, 1_000)
    frames.heard_from(1, 1_000)
    assert not frames.all_idle()
    clock.t += 2.1
    assert frames.all_idle()


def test_a_silent_source_with_pending_input_is_waited_for() -> None:
    """A backlog: source 0 is silent because its records are not read yet, not because it
    has nothing to say. Frames wait for it however long that takes, then close as usual."""
    clock = Clock()
    pending = {0}
    frames = FrameClock(sources=2, frame_ms=1000, idle_ms=2000, now=clock,
                        busy=lambda source: source in pending)
    frames.heard_from(0, 5_000)
    frames.heard_from(1, 9_000)
    clock.t += 30
    frames.heard_from(1, 60_000)
    assert not frames.idle(0) and frames.closable_through() == 4
    assert not frames.all_idle()
    pending.clear()  # caught up, still silent: now it is idle
    assert frames.idle(0) and frames.closable_through() == 59


def test_unread_aggregator_input_suspends_idleness() -> None:
    clock = Clock()
    frames = FrameClock(sources=2, frame_ms=1000, idle_ms=2000, now=clock)
    frames.heard_from(0, 5_000)
    frames.heard_from(1, 9_000)
    frames.input_pending = True  # the partials partition has unread records
    clock.t += 10
    assert not frames.idle(0) and not frames.idle(1) and not frames.all_idle()
    assert frames.closable_through() == 4
    frames.input_pending = False
    assert frames.all_idle()
