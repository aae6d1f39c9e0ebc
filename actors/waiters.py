"""Waiting for a monotonically growing offset: flushed commit-log bytes, slave-acked bytes.

One flusher calls ``advance``; many send handlers call ``wait_for``.  A group commit acknowledges
dozens of sends per ``advance``, so the per-waiter cost is what bounds SYNC_FLUSH throughput on
the event loop.  Waiters therefore share: everyone who starts waiting between two advances (with
the same deadline) joins one group, parked on one ``trio.Event``.  An advance seals the open
groups and wakes each group whose smallest offset it reached, in O(groups); a woken waiter whose
own offset is still ahead joins a fresh group (rare: the flusher syncs everything written before
it starts, so a group is usually covered whole).

Timeouts are checked on wake rather than with a cancel scope per waiter: deadlines are rounded up
to a 1/64 s tick so that a group's members share one, and only the group's first member (its
keeper) holds a cancel scope, firing the group when the deadline passes.
"""

from __future__ import annotations

import math

import attrs
import trio

# deadlines round up to this (a binary fraction, so whole-second deadlines stay exact)
TICK = 1 / 64


@attrs.define(eq=False, slots=True)
class _Group:
    deadline: float
    # the smallest member offset: the group wakes once ``current`` reaches it
    first: int
    members: int = 1
    event: trio.Event = attrs.field(factory=trio.Event)


@attrs.define(eq=False)
class OffsetWaiters:
    """Waiters for ``current >= offset``; ``current`` only grows."""

    current: int = 0
    # groups not woken yet; and those still taking members (by deadline), emptied by advance
    _groups: list[_Group] = attrs.field(factory=list, init=False)
    _open: dict[float, _Group] = attrs.field(factory=dict, init=False)

    def __len__(self) -> int:
        """Waiters in groups not woken yet (a cancelled one counts until its group wakes)."""
        return sum(g.members for g in self._groups)

    def advance(self, offset: int) -> None:
        """Raise ``current`` to ``offset`` (a lower value is ignored) and wake who is due."""
        if offset <= self.current:
            return
        self.current = offset
        # whoever waits from now on needs a later advance: a new group, not one woken now
        self._open.clear()
        groups = self._groups
        if groups:
            keep = []
            for g in groups:
                if g.first <= offset:
                    g.event.set()
                else:
                    keep.append(g)
            self._groups = keep

    async def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        """True once ``current >= offset``; False once ``timeout`` seconds (rounded up to a
        TICK of the clock) pass first.

        Reached already: returns at once without a checkpoint.  This is the hot path of
        every sync-flush send whose group commit finished before it asked, and its caller
        (a request handler) checkpoints again on its next read.
        """
        if offset <= self.current:
            return True
        if timeout is None:
            deadline = math.inf
        elif timeout <= 0:
            return False
        else:
            deadline = math.ceil((trio.current_time() + timeout) / TICK) * TICK
        while True:
            group = self._open.get(deadline)
            if group is not None:
                group.members += 1
                if offset < group.first:
                    group.first = offset
                await group.event.wait()
            else:
                group = _Group(deadline, offset)
                self._open[deadline] = group
                self._groups.append(group)
                await self._keep(group)
            if offset <= self.current:
                return True
            if trio.current_time() >= deadline:
                return False

    async def _keep(self, group: _Group) -> None:
        """Wait as the group's keeper: on its deadline, or if cancelled, wake the whole group
        (members re-check; those still waiting form a new group with a new keeper)."""
        if group.deadline == math.inf:
            await group.event.wait()
            return
        try:
            with trio.CancelScope(deadline=group.deadline):
                await group.event.wait()
        finally:
            if not group.event.is_set():
                self._groups.remove(group)
                if self._open.get(group.deadline) is group:
                    del self._open[group.deadline]
                group.event.set()
