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


def _size(msg: MessageExt) -> int:
    return len(msg.body)


@attrs.define(eq=False)
class ProcessQueue:
    # Invariant: _offsets is sorted and holds exactly the keys of _msgs; _consuming holds
    # messages an orderly consumer has taken but not committed (they still block the commit
    # offset, so a restart re-delivers them).
    _msgs: dict[int, MessageExt] = attrs.field(factory=dict, alias="_msgs")
    _offsets: list[int] = attrs.field(factory=list, alias="_offsets")
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
        for msg in msgs:
            offset = msg.queue_offset
            if offset in self._msgs or offset in self._consuming:
                continue
            self._msgs[offset] = msg
            bisect.insort(self._offsets, offset)
            self.msg_size += _size(msg)
            self.queue_offset_max = max(self.queue_offset_max, offset)
        wake = bool(self._msgs) and not self.consuming
        if wake:
            self.consuming = True
        return wake

    def max_span(self) -> int:
        if not self._offsets:
            return 0
        return self._offsets[-1] - self._offsets[0]

    def throttle(self, limits: FlowLimits, *, orderly: bool) -> Throttle | None:
        if self.msg_count > limits.max_count:
            return Throttle.COUNT
        if self.msg_size > limits.max_size_bytes:
            return Throttle.SIZE
        if not orderly and self.max_span() > limits.max_span:
            return Throttle.SPAN
        return None

    def _discard(self, offset: int) -> MessageExt | None:
        msg = self._msgs.pop(offset, None)
        if msg is not None:
            del self._offsets[bisect.bisect_left(self._offsets, offset)]
            self.msg_size -= _size(msg)
        return msg

    # ------------------------------------------------------------ concurrent

    def messages(self) -> list[MessageExt]:
        return [self._msgs[o] for o in self._offsets]

    def remove(self, msgs: Iterable[MessageExt], now_ms: int) -> int:
        """Forget consumed messages; the offset to commit, or -1 if nothing was cached.

        The result is the smallest offset still cached, or one past the highest seen.
        """
        had_any = bool(self._msgs)
        self.last_consume_ms = now_ms
        for msg in msgs:
            self._discard(msg.queue_offset)
        if not had_any:
            return -1
        if self._offsets:
            return self._offsets[0]
        return self.queue_offset_max + 1

    # ------------------------------------------------------------ orderly

    def take(self, batch_size: int, now_ms: int) -> list[MessageExt]:
        """Move up to ``batch_size`` lowest-offset messages into the in-flight set."""
        self.last_consume_ms = now_ms
        taken = []
        for offset in list(self._offsets[:batch_size]):
            msg = self._discard(offset)
            assert msg is not None
            self._consuming[offset] = msg
            self.msg_size += _size(msg)  # still cached for flow control until committed
            taken.append(msg)
        if not taken:
            self.consuming = False
        return taken

    def commit(self) -> int:
        """The in-flight batch was consumed: the next offset to consume, or -1 if none in flight."""
        if not self._consuming:
            return -1
        offset = max(self._consuming) + 1
        for msg in self._consuming.values():
            self.msg_size -= _size(msg)
        self._consuming.clear()
        return offset

    def make_consume_again(self, msgs: Iterable[MessageExt]) -> None:
        """Put in-flight messages back at the head of the queue (orderly retry later)."""
        for msg in msgs:
            if self._consuming.pop(msg.queue_offset, None) is not None:
                self.msg_size -= _size(msg)
                self._msgs[msg.queue_offset] = msg
                bisect.insort(self._offsets, msg.queue_offset)
                self.msg_size += _size(msg)

    def rollback(self) -> None:
        self.make_consume_again(list(self._consuming.values()))

    def clear(self) -> None:
        self._msgs.clear()
        self._offsets.clear()
        self._consuming.clear()
        self.msg_size = 0
        self.queue_offset_max = -1
        self.consuming = False

    # ------------------------------------------------------------ expiry

    def lock_expired(self, now_ms: int) -> bool:
        return now_ms - self.last_lock_ms > LOCK_MAX_LIVE_MS

    def pull_expired(self, now_ms: int) -> bool:
        return now_ms - self.last_pull_ms > PULL_MAX_IDLE_MS
