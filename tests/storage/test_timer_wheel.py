"""The on-disk timing wheel: fire times, rolling, restarts clean and unclean, segment cleanup."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.timer_wheel import (
    LOG_DIR,
    UNIT_SIZE,
    TimerConfig,
    TimerEntry,
    TimerWheel,
    TimerWheelError,
    ceil_tick,
)

PRECISION = 1000
T0 = 1_700_000_000_000  # a tick boundary


def small_config(units_per_file: int = 8) -> TimerConfig:
    return TimerConfig(
        timerPrecisionMs=PRECISION,
        timerMaxDelaySec=60,
        mappedFileSizeTimerLog=units_per_file * UNIT_SIZE,
    )


def open_wheel(path: Path, now: int = T0, *, slots: int | None = 16, units: int = 8) -> TimerWheel:
    wheel = TimerWheel(path, small_config(units), slots=slots)
    wheel.open(now)
    return wheel


def run_until(wheel: TimerWheel, now: int) -> list[tuple[int, TimerEntry]]:
    """What the timer actor does: process every tick up to ``now``; (tick, entry) fired."""
    fired = []
    while wheel.dequeue_tick <= now:
        tick = wheel.dequeue_tick
        for entry in list(wheel.entries(tick)):
            if entry.due:
                fired.append((tick, entry))
            else:
                wheel.add(entry.deliver_ms, entry.phys_offset, entry.size, entry.queue_offset)
        wheel.finish_tick(tick)
    return fired


def test_ceil_tick_never_fires_early() -> None:
    assert ceil_tick(T0, PRECISION) == T0
    assert ceil_tick(T0 + 1, PRECISION) == T0 + PRECISION
    assert ceil_tick(T0 + 999, PRECISION) == T0 + PRECISION


def test_each_timer_fires_in_its_own_tick(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path)
    delays = [0, 1, 999, 1000, 1001, 5500, 15_000]
    for qo, delay in enumerate(delays):
        wheel.add(T0 + delay, phys_offset=100 * qo, size=50, queue_offset=qo)
    fired = run_until(wheel, T0 + 20_000)
    assert sorted(e.queue_offset for _, e in fired) == list(range(len(delays)))
    for tick, entry in fired:
        assert entry.deliver_ms <= tick < entry.deliver_ms + PRECISION
        assert entry.phys_offset == 100 * entry.queue_offset
        assert entry.size == 50
    wheel.close()


def test_tick_cost_does_not_depend_on_other_pending_timers(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path, slots=64, units=1024)
    for qo in range(2000):
        wheel.add(T0 + 30_000 + qo % 7, 0, 1, qo)  # all far away
    wheel.add(T0 + 1000, 0, 1, 9999)
    assert wheel.pending_in(T0 + 1000) == 1
    assert [e.queue_offset for e in wheel.entries(T0 + 1000)] == [9999]
    assert wheel.pending_in(T0 + 2000) == 0
    wheel.close()


def test_overdue_timer_goes_to_the_next_tick_to_process(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path)
    run_until(wheel, T0 + 3000)
    assert wheel.add(T0 - 50_000, 0, 1, 0) == T0 + 4000
    assert [e.queue_offset for _, e in run_until(wheel, T0 + 4000)] == [0]


def test_timer_beyond_the_span_rolls_and_still_fires_on_time(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path, slots=4)  # span 4 s
    tick = wheel.add(T0 + 10_500, 0, 1, 7)
    assert tick == T0 + 3000  # parked in the last tick the wheel holds
    fired = run_until(wheel, T0 + 20_000)
    assert [(t, e.queue_offset) for t, e in fired] == [(T0 + 11_000, 7)]


def test_clean_restart_keeps_pending_timers_and_progress(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path)
    for qo in range(5):
        wheel.add(T0 + 2000 + qo * 1000, 0, 1, qo)
    wheel.enqueue_offset = 5
    run_until(wheel, T0 + 3000)  # fires qo 0 and 1
    wheel.close()
    again = open_wheel(tmp_path, now=T0 + 9000)
    assert not again.recovered
    assert again.enqueue_offset == 5
    assert again.dequeue_tick == T0 + 4000  # resumes where it stopped, not at "now"
    fired = run_until(again, T0 + 9000)
    assert [e.queue_offset for _, e in fired] == [2, 3, 4]
    again.close()


def crash_copy(src: Path, dst: Path) -> Path:
    """What a kill -9 leaves: the files as they are in the page cache, no clean flag."""
    shutil.copytree(src, dst)
    return dst


def test_unclean_restart_rebuilds_the_wheel_from_the_log(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path / "live", units=4)  # several log files
    for qo in range(10):
        wheel.add(T0 + 1000 + (qo % 3) * 1000, qo, 1, qo)
        wheel.enqueue_offset = qo + 1
    wheel.checkpoint()
    wheel.add(T0 + 5000, 10, 1, 10)  # after the checkpoint: must survive too
    wheel.enqueue_offset = 11
    crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
    wheel.close()

    again = open_wheel(crashed, now=T0 + 100_000, units=4)
    assert again.recovered
    assert again.enqueue_offset == 11
    fired = run_until(again, T0 + 10_000)
    assert sorted(e.queue_offset for _, e in fired) == list(range(11))
    again.close()


def test_torn_tail_is_cut_and_its_timer_reenqueued(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path / "live")
    for qo in range(3):
        wheel.add(T0 + 2000, 0, 1, qo)
        wheel.enqueue_offset = qo + 1
    crashed = crash_copy(tmp_path / "live", tmp_path / "crashed")
    wheel.close()
    seg = next((crashed / LOG_DIR).iterdir())
    data = bytearray(seg.read_bytes())
    data[2 * UNIT_SIZE : 2 * UNIT_SIZE + 4] = bytes(4)  # the last unit never reached the disk
    seg.write_bytes(bytes(data))

    again = open_wheel(crashed)
    assert again.enqueue_offset == 2  # the caller reads queue offset 2 from the topic again
    assert again.add(T0 + 2000, 0, 1, 2) == T0 + 2000
    assert sorted(e.queue_offset for _, e in run_until(again, T0 + 3000)) == [0, 1, 2]


def test_delivered_log_files_are_deleted(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path, units=2)
    for qo in range(6):
        wheel.add(T0 + 1000 + qo * 1000, 0, 1, qo)
    assert wheel.log_files == 3
    run_until(wheel, T0 + 2000)  # first file's timers (ticks +1 s, +2 s) fired
    assert wheel.delete_delivered_segments() == 1
    assert wheel.log_files == 2
    wheel.close()
    again = open_wheel(tmp_path, units=2)
    assert sorted(e.queue_offset for _, e in run_until(again, T0 + 10_000)) == [2, 3, 4, 5]


def test_log_written_with_another_file_size_is_refused(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path, units=4)
    wheel.add(T0 + 1000, 0, 1, 0)
    wheel.close()
    with pytest.raises(TimerWheelError, match="mappedFileSizeTimerLog"):
        open_wheel(tmp_path, units=8)


def test_finishing_a_tick_out_of_order_is_an_error(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path)
    with pytest.raises(TimerWheelError):
        wheel.finish_tick(T0 + 5000)


def test_wheel_resize_rebuilds(tmp_path: Path) -> None:
    wheel = open_wheel(tmp_path, slots=16)
    wheel.add(T0 + 3000, 0, 1, 0)
    wheel.close()
    again = open_wheel(tmp_path, slots=32)
    assert again.recovered
    assert [e.queue_offset for _, e in run_until(again, T0 + 3000)] == [0]


@settings(max_examples=40, deadline=None)
@given(
    delays=st.lists(st.integers(min_value=-3000, max_value=40_000), min_size=1, max_size=40),
    crash_at=st.integers(min_value=0, max_value=45_000),
    slots=st.sampled_from([3, 8, 64]),
)
def test_every_timer_fires_once_never_early_even_across_a_crash(
    tmp_path_factory: pytest.TempPathFactory, delays: list[int], crash_at: int, slots: int
) -> None:
    base = tmp_path_factory.mktemp("wheel")
    wheel = open_wheel(base / "live", slots=slots, units=5)
    for qo, delay in enumerate(delays):
        wheel.add(T0 + delay, 0, 1, qo)
        wheel.enqueue_offset = qo + 1
    fired = run_until(wheel, T0 + crash_at)
    wheel.checkpoint()
    crashed = crash_copy(base / "live", base / "crashed")
    wheel.close()

    again = open_wheel(crashed, now=T0 + crash_at, slots=slots, units=5)
    fired += run_until(again, T0 + 50_000)
    again.close()
    assert sorted({e.queue_offset for _, e in fired}) == list(range(len(delays)))
    # exactly once: the checkpoint came after the last finished tick
    assert len(fired) == len(delays)
    for tick, entry in fired:
        assert tick >= entry.deliver_ms
        assert tick < max(entry.deliver_ms, T0) + PRECISION
