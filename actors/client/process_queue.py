"""Per-queue cache of pulled, not yet consumed messages (Java's ProcessQueue), pure.

The pull service puts messages in, the consume service takes them out; what remains
decides (a) flow control — stop pulling while too much is cached — and (b) the offset to
commit: the smallest offset still cached, so a crash never skips an unconsumed message
(at-least-once).  Time is a parameter (milliseconds), never read here.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable

import attrs

from protocol.message import MessageExt

LOCK_MAX_LIVE_MS = 30_000  # rocketmq.client.rebalance.lockMaxLiveTime
PULL_MAX_IDLE_MS = 120_000  # rocketmq.client.pull.pullMaxIdleTime


class Throttle(enum.Enum):
    """Why the pull service must not pull this queue right now."""

    COUNT = "cached message count over threshold"
    SIZE = "cached message size over threshold"
    SPAN = "cached offset span over consumeConcurrentlyMaxSpan"


@attrs.define(eq=False)
class FlowLimits:
    max_count: int = 1000  # pullThresholdForQueue
    max_size_bytes: int = 100 * 1024 * 1024  # pullThresholdSizeForQueue (MiB in Java)
    max_span: int = 2000  # consumeConcurrentlyMaxSpan (concurrent consumers only)


@attrs.define(eq=False)
class ProcessQueue:
    # Invariants: every offset of _msgs appears exactly once in _offsets[_head:], which is
    # sorted; entries there whose message left _msgs are dead and skipped lazily, so that
    # putting (offsets mostly arrive in ascending order: an append) and removing cost O(1)
    # amortized per message instead of an insort and a list deletion each.  _offsets[:_head]
    # is garbage awaiting compaction.  _consuming holds messages an orderly consumer has
    # taken but not committed (they still block the commit offset, so a restart
    # re-delivers them).
    _msgs: dict[int, MessageExt] = attrs.field(factory=dict, alias="_msgs")
    _offsets: list[int] = attrs.field(factory=list, alias="_offsets")
    _head: int = attrs.field(default=0, alias="_head")
    _consuming: dict[int, MessageExt] = attrs.field(factory=dict, alias="_consuming")
    msg_size: int = 0
    queue_offset_max: int = -1
    dropped: bool = False
    locked: bool = False
    consuming: bool = False  # orderly: a worker currently owns this queue
    last_lock_ms: int = 0
    last_pull_ms: int = 0
    last_consume_ms: int = 0
    try_unlock_times: int = 0

    # ------------------------------------------------------------ shared

    @property
    def msg_count(self) -> int:
        return len(self._msgs) + len(self._consuming)

    def put(self, msgs: Iterable[MessageExt]) -> bool:
        """Cache pulled messages; True if an orderly consumer should be woken for this queue."""
        cached, consuming, offsets = self._msgs, self._consuming, self._offsets
        size = 0
        for msg in msgs:
            offset = msg.queue_offset
            if offset in cached or offset in consuming:
                continue
            cached[offset] = msg
            size += len(msg.body)
            if len(offsets) > self._head and offset <= offsets[-1]:
                self._insert(offset)
            else:
                offsets.append(offset)
            if offset > self.queue_offset_max:
                self.queue_offset_max = offset
        self.msg_size += size
        wake = bool(cached) and not self.consuming
        if wake:
            self.consuming = True
        return wake

    def _insert(self, offset: int) -> None:
        """An offset out of ascending order (a re-pull, an orderly retry): into its place,
        unless a dead entry of it is still there (then that entry is live again)."""
        offsets = self._offsets
        i = bisect.bisect_left(offsets, offset, self._head)
        if i == len(offsets) or offsets[i] != offset:
            offsets.insert(i, offset)

    def _first(self) -> int | None:
        """The lowest cached offset (not counting in-flight orderly messages)."""
        offsets, cached, head = self._offsets, self._msgs, self._head
        end = len(offsets)
        while head < end and offsets[head] not in cached:
            head += 1
        if head > 64 and 2 * head > end:
            del offsets[:head]  # O(live entries), paid once per at least 64 removals
            head = 0
        elif end - head > 2 * len(cached) + 64:
            # Dead entries piled up behind a message that is not consumed yet.
            offsets[:] = sorted(cached)
            head = 0
        self._head = head
        return offsets[head] if head < len(offsets) else None

    def _last(self) -> int | None:
        offsets, cached = self._offsets, self._msgs
        while len(offsets) > self._head and offsets[-1] not in cached:
            offsets.pop()
        return offsets[-1] if len(offsets) > self._head else None

    def max_span(self) -> int:
        first = self._first()
        if first is None:
            return 0
        last = self._last()
        assert last is not None
        return last - first

    def throttle(self, limits: FlowLimits, *, orderly: bool) -> Throttle | None:
        if self.msg_count > limits.max_count:
            return Throttle.COUNT
        if self.msg_size > limits.max_size_bytes:
            return Throttle.SIZE
        if not orderly and self.max_span() > limits.max_span:
            return Throttle.SPAN
        return None

    # ------------------------------------------------------------ concurrent

    def messages(self) -> list[MessageExt]:
        cached = self._msgs
        return [cached[o] for o in self._offsets[self._head :] if o in cached]

    def remove(self, msgs: Iterable[MessageExt], now_ms: int) -> int:
        """Forget consumed messages; the offset to commit, or -1 if nothing was cached.

        The result is the smallest offset still cached, or one past the highest seen.
        """
        cached = self._msgs
        if not cached:
            self.last_consume_ms = now_ms
            return -1
        self.last_consume_ms = now_ms
        pop = cached.pop
        size = 0
        for msg in msgs:
            gone = pop(msg.queue_offset, None)
            if gone is not None:
                size += len(gone.body)
        self.msg_size -= size
        first = self._first()
        return self.queue_offset_max + 1 if first is None else first

    # ------------------------------------------------------------ orderly

    def take(self, batch_size: int, now_ms: int) -> list[MessageExt]:
        """Move up to ``batch_size`` lowest-offset messages into the in-flight set (they stay
        counted in msg_size for flow control until committed)."""
        self.last_consume_ms = now_ms
        taken: list[MessageExt] = []
        if self._first() is not None:
            offsets, cached, consuming = self._offsets, self._msgs, self._consuming
            head = self._head
            while len(taken) < batch_size and head < len(offsets):
                offset = offsets[head]
                head += 1
                msg = cached.pop(offset, None)
                if msg is not None:
                    consuming[offset] = msg
                    taken.append(msg)
            self._head = head
        if not taken:
            self.consuming = False
        return taken

    def commit(self) -> int:
        """The in-flight batch was consumed: the next offset to consume, or -1 if none in flight."""
        if not self._consuming:
            return -1
        offset = max(self._consuming) + 1
        for msg in self._consuming.values():
            self.msg_size -= len(msg.body)
        self._consuming.clear()
        return offset

    def make_consume_again(self, msgs: Iterable[MessageExt]) -> None:
        """Put in-flight messages back at the head of the queue (orderly retry later)."""
        for msg in msgs:
            offset = msg.queue_offset
            back = self._consuming.pop(offset, None)
            if back is not None:
                self._msgs[offset] = back
                self._insert(offset)

    def rollback(self) -> None:
        self.make_consume_again(list(self._consuming.values()))

    def clear(self) -> None:
        self._msgs.clear()
        self._offsets.clear()
        self._head = 0
        self._consuming.clear()
        self.msg_size = 0
        self.queue_offset_max = -1
        self.consuming = False

    # ------------------------------------------------------------ expiry

    def lock_expired(self, now_ms: int) -> bool:
        return now_ms - self.last_lock_ms > LOCK_MAX_LIVE_MS

    def pull_expired(self, now_ms: int) -> bool:
        return now_ms - self.last_pull_ms > PULL_MAX_IDLE_MS
