"""ProcessQueue: commit offset = lowest unconsumed, flow control, orderly take/commit/rollback."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.client.process_queue import FlowLimits, ProcessQueue, Throttle
from protocol.message import MessageExt


def msg(offset: int, size: int = 10) -> MessageExt:
    return MessageExt(topic="T", body=b"x" * size, queue_offset=offset)


def test_remove_returns_lowest_unconsumed_offset() -> None:
    pq = ProcessQueue()
    ms = [msg(o) for o in range(10, 15)]
    pq.put(ms)
    assert pq.remove([ms[1], ms[3]], now_ms=1) == 10
    assert pq.remove([ms[0]], now_ms=2) == 12
    assert pq.remove([ms[2], ms[4]], now_ms=3) == 15  # empty: one past the highest seen
    assert pq.msg_count == 0
    assert pq.msg_size == 0


def test_remove_on_empty_queue_is_minus_one() -> None:
    assert ProcessQueue().remove([msg(1)], now_ms=0) == -1


def test_duplicates_are_cached_once() -> None:
    pq = ProcessQueue()
    pq.put([msg(1), msg(2)])
    pq.put([msg(2), msg(3)])
    assert [m.queue_offset for m in pq.messages()] == [1, 2, 3]
    assert pq.msg_size == 30


def test_flow_control_thresholds() -> None:
    limits = FlowLimits(max_count=3, max_size_bytes=100, max_span=5)
    pq = ProcessQueue()
    pq.put([msg(0), msg(1), msg(2)])
    assert pq.throttle(limits, orderly=False) is None
    pq.put([msg(3)])
    assert pq.throttle(limits, orderly=False) is Throttle.COUNT
    pq = ProcessQueue()
    pq.put([msg(0, size=101)])
    assert pq.throttle(limits, orderly=False) is Throttle.SIZE
    pq = ProcessQueue()
    pq.put([msg(0), msg(6)])
    assert pq.throttle(limits, orderly=False) is Throttle.SPAN
    assert pq.throttle(limits, orderly=True) is None  # span is a concurrent-only limit


def test_orderly_take_commit_and_consume_again() -> None:
    pq = ProcessQueue()
    assert pq.put([msg(o) for o in range(5)]) is True  # wakes a worker
    assert pq.put([msg(5)]) is False  # already being consumed
    batch = pq.take(2, now_ms=0)
    assert [m.queue_offset for m in batch] == [0, 1]
    assert pq.msg_count == 6  # in-flight messages still count for flow control
    pq.make_consume_again(batch[1:])
    assert pq.commit() == 1
    batch = pq.take(3, now_ms=0)
    assert [m.queue_offset for m in batch] == [1, 2, 3]
    pq.rollback()
    assert pq.commit() == -1
    assert [m.queue_offset for m in pq.take(10, now_ms=0)] == [1, 2, 3, 4, 5]
    assert pq.commit() == 6
    assert pq.take(1, now_ms=0) == []
    assert pq.consuming is False
    assert pq.msg_size == 0


def test_lock_and_pull_expiry() -> None:
    pq = ProcessQueue(last_lock_ms=1000, last_pull_ms=1000)
    assert not pq.lock_expired(31_000)
    assert pq.lock_expired(31_001)
    assert not pq.pull_expired(121_000)
    assert pq.pull_expired(121_001)


@settings(max_examples=50)
@given(st.lists(st.integers(0, 200), unique=True, min_size=1), st.data())
def test_commit_offset_never_skips_an_unconsumed_message(offsets, data) -> None:
    pq = ProcessQueue()
    pq.put([msg(o) for o in sorted(offsets)])
    remaining = set(offsets)
    while remaining:
        done = data.draw(st.sets(st.sampled_from(sorted(remaining)), min_size=1))
        committed = pq.remove([msg(o) for o in done], now_ms=0)
        remaining -= done
        assert all(o >= committed for o in remaining)
        if remaining:
            assert committed == min(remaining)
    assert committed == max(offsets) + 1
