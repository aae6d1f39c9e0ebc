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


class _Model:
    """The process queue's meaning, spelled naively (sorted() on every question)."""

    def __init__(self) -> None:
        self.cached: dict[int, int] = {}  # offset -> size
        self.consuming: dict[int, int] = {}
        self.highest = -1

    def put(self, offsets: list[int]) -> None:
        for o in offsets:
            if o not in self.cached and o not in self.consuming:
                self.cached[o] = o % 7
                self.highest = max(self.highest, o)

    def remove(self, offsets: list[int]) -> int:
        if not self.cached:
            return -1
        for o in offsets:
            self.cached.pop(o, None)
        return min(self.cached) if self.cached else self.highest + 1

    def take(self, n: int) -> list[int]:
        taken = sorted(self.cached)[:n]
        for o in taken:
            self.consuming[o] = self.cached.pop(o)
        return taken

    def span(self) -> int:
        return max(self.cached) - min(self.cached) if self.cached else 0

    def size(self) -> int:
        return sum(self.cached.values()) + sum(self.consuming.values())


_ops = st.one_of(
    st.tuples(st.just("put"), st.lists(st.integers(0, 300), max_size=40)),
    st.tuples(st.just("put_run"), st.integers(0, 300), st.integers(1, 80)),
    st.tuples(st.just("remove"), st.lists(st.integers(0, 300), max_size=40)),
    st.tuples(st.just("remove_lowest"), st.integers(1, 80)),
    st.tuples(st.just("remove_above_lowest")),  # dead entries pile up behind the lowest
    st.tuples(st.just("take"), st.integers(1, 40)),
    st.tuples(st.just("commit")),
    st.tuples(st.just("again"), st.integers(0, 40)),
)


@settings(max_examples=200)
@given(st.lists(_ops, max_size=60))
def test_matches_a_naive_model(ops) -> None:  # type: ignore[no-untyped-def]
    pq, model = ProcessQueue(), _Model()
    for op in ops:
        kind = op[0]
        if kind in ("put", "put_run"):
            offsets = op[1] if kind == "put" else list(range(op[1], op[1] + op[2]))
            pq.put([msg(o, size=o % 7) for o in offsets])
            model.put(offsets)
        elif kind in ("remove", "remove_lowest", "remove_above_lowest"):
            if kind == "remove":
                offsets = op[1]
            elif kind == "remove_lowest":
                offsets = sorted(model.cached)[: op[1]]
            else:
                offsets = sorted(model.cached)[1:]
            assert pq.remove([msg(o) for o in offsets], now_ms=0) == model.remove(offsets)
        elif kind == "take":
            assert [m.queue_offset for m in pq.take(op[1], now_ms=0)] == model.take(op[1])
        elif kind == "commit":
            expected = max(model.consuming) + 1 if model.consuming else -1
            model.consuming.clear()
            assert pq.commit() == expected
        else:  # put some in-flight messages back
            back = sorted(model.consuming)[: op[1]]
            pq.make_consume_again([msg(o) for o in back])
            for o in back:
                model.cached[o] = model.consuming.pop(o)
        assert [m.queue_offset for m in pq.messages()] == sorted(model.cached)
        assert pq.max_span() == model.span()
        assert pq.msg_count == len(model.cached) + len(model.consuming)
        assert pq.msg_size == model.size()
