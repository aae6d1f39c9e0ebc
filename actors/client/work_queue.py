"""A bounded queue of work for a pool of Trio workers that wakes as few of them as it can.

The concurrent consume service hands every listener call (one message, by default) to a
pool of workers, as Java's consume thread pool does.  A memory channel costs a task switch
per item (the sender checkpoints, a parked receiver is rescheduled): tens of microseconds
per message on a busy machine.  Here an item is taken without a switch when one is ready,
and an idle worker is woken only when no other woken worker is yet to run, so

* a listener that never blocks has one worker run the whole backlog, with one switch per
  batch put (the second worker wakes, finds nothing, parks again);
* a listener that blocks (I/O) spreads the work: before each call a worker calls
  ``spread()``, which wakes one more worker while items wait, so the pool ramps up to as
  many concurrent calls as there are workers.

``take`` and ``put`` checkpoint only when they wait: a worker yields to the rest of the
program at its listener's own awaits or when the queue is empty, and producers (the pull
loops) cannot refill it without running, so no task runs more than ``capacity`` items at a go.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

import attrs
from trio.lowlevel import ParkingLot

T = TypeVar("T")


@attrs.define(eq=False)
class WorkQueue(Generic[T]):
    capacity: int
    _items: deque[T] = attrs.field(init=False, factory=deque)
    _idle: ParkingLot = attrs.field(init=False, factory=ParkingLot)  # workers with nothing to do
    _full: ParkingLot = attrs.field(init=False, factory=ParkingLot)  # producers waiting for room
    _waking: int = attrs.field(init=False, default=0)  # unparked workers that have not run yet

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        while len(self._items) >= self.capacity:
            await self._full.park()
        self._items.append(item)
        self._wake()

    async def put_all(self, items: Iterable[T]) -> None:
        """``put`` of each item in order, without a coroutine per item while there is room."""
        pending = self._items
        for item in items:
            while len(pending) >= self.capacity:
                self._wake()
                await self._full.park()
            pending.append(item)
        if pending:
            self._wake()

    async def take(self) -> T:
        while not self._items:
            await self._idle.park()
            self._waking -= 1
        return self._pop()

    def take_ready(self) -> T | None:
        """``take`` when an item is ready, without a coroutine; None when there is none."""
        return self._pop() if self._items else None

    def _pop(self) -> T:
        item = self._items.popleft()
        if self._full:
            self._full.unpark()
        return item

    def spread(self) -> None:
        """A worker is about to run something that may block: let another take the rest."""
        if self._items:
            self._wake()

    def _wake(self) -> None:
        if not self._waking and self._idle:
            self._waking += 1
            self._idle.unpark()
