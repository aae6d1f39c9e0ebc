"""Waiting for a monotonically growing offset: flushed commit-log bytes, slave-acked bytes.

``OffsetWaiters`` is a heap of ``(offset, seq, Event)``.  ``advance(new)`` pops and sets
every waiter at or below ``new`` - O(k log n) for k woken of n waiting - where an
``AsyncValue`` predicate per in-flight request would cost O(n) per change (the
trio-util docstring's own caveat).  One flusher calls ``advance``; many send handlers
call ``wait_for``.
"""

from __future__ import annotations

import heapq
import itertools
import math

import attrs
import trio


@attrs.define(eq=False, slots=True)
class _Waiter:
    event: trio.Event = attrs.field(factory=trio.Event)
    # Set when the waiter gave up (timeout or cancellation): its heap entry is garbage.
    abandoned: bool = False


@attrs.define(eq=False)
class OffsetWaiters:
    """Waiters for ``current >= offset``; ``current`` only grows."""

    current: int = 0
    # Invariant: every live (not abandoned) waiter in the heap has offset > current.
    _heap: list[tuple[int, int, _Waiter]] = attrs.field(factory=list, init=False)
    _seq: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _abandoned: int = attrs.field(default=0, init=False)

    def __len__(self) -> int:
        """Waiters still in the heap (abandoned ones not yet swept included)."""
        return len(self._heap)

    def advance(self, offset: int) -> None:
        """Raise ``current`` to ``offset`` (a lower value is ignored) and wake who is due."""
        if offset <= self.current:
            return
        self.current = offset
        heap = self._heap
        while heap and heap[0][0] <= offset:
            _, _, waiter = heapq.heappop(heap)
            if waiter.abandoned:
                self._abandoned -= 1
            else:
                waiter.event.set()

    async def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        """True once ``current >= offset``; False if ``timeout`` seconds pass first.

        Reached already: returns at once without a checkpoint.  This is the hot path of
        every sync-flush send whose group commit finished before it asked, and its caller
        (a request handler) checkpoints again on its next read.
        """
        if offset <= self.current:
            return True
        waiter = _Waiter()
        heapq.heappush(self._heap, (offset, next(self._seq), waiter))
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout):
                await waiter.event.wait()
                return True
            return False
        finally:
            if not waiter.event.is_set():
                waiter.abandoned = True
                self._abandoned += 1
                self._sweep()

    def _sweep(self) -> None:
        # Timed-out waiters stay in the heap until advance() reaches them; if advance
        # stalls (a hung disk) rebuild once garbage dominates, so memory stays bounded.
        if self._abandoned > 64 and self._abandoned * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].abandoned]
            heapq.heapify(self._heap)
            self._abandoned = 0
