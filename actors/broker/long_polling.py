"""Held pulls (reference §7.4): a pull that found nothing waits here for an arrival or its timeout.

``PullHoldTable`` is the pure part: which held pulls an arrival or the clock releases.  The
``long_polling`` actor feeds it the reput dispatcher's arrivals and the clock, and re-runs every
released pull (which may not be held again) in its own task, so one slow connection never
delays the others.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import attrs
import trio

from actors.broker.clients import Subscription

log = logging.getLogger(__name__)

# Held pulls are re-checked against the queue's max offset this often even without arrivals,
# as Java's PullRequestHoldService does, so a lost notification costs at most this long.
CHECK_INTERVAL = 5.0
# Timeouts are honoured at this granularity at worst.
MAX_SLEEP = 1.0


class ArrivedLike(Protocol):
    # read-only members, so frozen records (storage's Arrived) match too
    @property
    def topic(self) -> str: ...
    @property
    def queue_id(self) -> int: ...
    @property
    def max_offset(self) -> int: ...
    @property
    def tags_code(self) -> int: ...


@attrs.define(eq=False)
class HeldPull:
    topic: str
    queue_id: int
    offset: int
    subscription: Subscription
    deadline: float
    # What resuming needs (the request and its connection); opaque to the table.
    payload: Any = None
    released: bool = False


class PullHoldTable:
    def __init__(self) -> None:
        self._by_queue: dict[tuple[str, int], list[HeldPull]] = {}
        self._deadlines: list[tuple[float, int, HeldPull]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return sum(len(pulls) for pulls in self._by_queue.values())

    def __bool__(self) -> bool:
        return bool(self._by_queue)

    def hold(self, pull: HeldPull) -> None:
        self._by_queue.setdefault((pull.topic, pull.queue_id), []).append(pull)
        heapq.heappush(self._deadlines, (pull.deadline, next(self._seq), pull))

    def waiting_on(self, topic: str, queue_id: int) -> bool:
        return (topic, queue_id) in self._by_queue

    def queues(self) -> list[tuple[str, int]]:
        return list(self._by_queue)

    def next_deadline(self) -> float:
        while self._deadlines and self._deadlines[0][2].released:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else float("inf")

    def _take(self, key: tuple[str, int], pick: Callable[[HeldPull], bool]) -> list[HeldPull]:
        pulls = self._by_queue.get(key)
        if not pulls:
            return []
        out = [p for p in pulls if pick(p)]
        if out:
            keep = [p for p in pulls if not pick(p)]
            if keep:
                self._by_queue[key] = keep
            else:
                del self._by_queue[key]
            for pull in out:
                pull.released = True
        return out

    def arrived(
        self, topic: str, queue_id: int, max_offset: int, tags_code: int | None
    ) -> list[HeldPull]:
        """Pulls a new message at ``max_offset - 1`` with ``tags_code`` satisfies."""
        return self._take(
            (topic, queue_id),
            lambda p: max_offset > p.offset and p.subscription.matches(tags_code),
        )

    def behind(self, topic: str, queue_id: int, max_offset: int) -> list[HeldPull]:
        """Pulls whose queue has grown past them, whatever the tags (the periodic check)."""
        return self._take((topic, queue_id), lambda p: max_offset > p.offset)

    def expired(self, now: float) -> list[HeldPull]:
        out = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, pull = heapq.heappop(self._deadlines)
            if pull.released:
                continue
            pull.released = True
            pulls = self._by_queue[(pull.topic, pull.queue_id)]
            pulls.remove(pull)
            if not pulls:
                del self._by_queue[(pull.topic, pull.queue_id)]
            out.append(pull)
        return out

    def abandoned(self, gone: Callable[[HeldPull], bool]) -> list[HeldPull]:
        """Take the pulls nobody can be answered for any more (their connection closed)."""
        out: list[HeldPull] = []
        for key in list(self._by_queue):
            out += self._take(key, gone)
        return out

    def drain(self) -> list[HeldPull]:
        out = [p for pulls in self._by_queue.values() for p in pulls]
        for pull in out:
            pull.released = True
        self._by_queue.clear()
        self._deadlines.clear()
        return out


@attrs.define(eq=False)
class HeldOnly:
    """The arrivals sink in front of ``long_polling``: passes on only arrivals for a queue some
    pull is held on, so a send nobody waits for costs no channel hop and no task switch.

    Dropping the others loses nothing: reput writes the consume queue before it announces, so
    a pull that comes later finds the message itself instead of being held.
    """

    downstream: trio.MemorySendChannel[Any]
    table: PullHoldTable

    async def send(self, arrival: ArrivedLike) -> None:
        if self.table.waiting_on(arrival.topic, arrival.queue_id):
            await self.downstream.send(arrival)

    def offer(self, arrival: ArrivedLike) -> bool:
        if not self.table.waiting_on(arrival.topic, arrival.queue_id):
            return True
        try:
            self.downstream.send_nowait(arrival)
        except trio.WouldBlock:
            return False
        return True


Resume = Callable[[HeldPull], Awaitable[None]]


async def long_polling(
    table: PullHoldTable,
    arrivals: trio.MemoryReceiveChannel[Any],
    resume: Resume,
    max_offset: Callable[[str, int], int],
    *,
    abandoned: Callable[[HeldPull], bool] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Release held pulls on arrivals, on queue growth (every 5 s) and on timeout.

    Every 5 s pulls for which ``abandoned`` is true (their connection closed) are released
    too: a client-chosen suspend timeout may be years, and they would stay until then.
    """
    async with trio.open_nursery() as nursery:

        def release(pulls: Iterable[HeldPull]) -> None:
            for pull in pulls:
                nursery.start_soon(resume, pull, name="long_polling.resume")

        task_status.started()
        next_check = trio.current_time() + CHECK_INTERVAL
        while True:
            now = trio.current_time()
            wake_at = min(table.next_deadline(), next_check, now + MAX_SLEEP)
            with trio.move_on_at(wake_at):
                try:
                    arrival = await arrivals.receive()
                except trio.EndOfChannel:
                    return
                batch = [arrival]
                while len(batch) < 1024:
                    try:
                        batch.append(arrivals.receive_nowait())
                    except trio.WouldBlock:
                        break
                if table:  # while producers send and nobody waits, arrivals are dropped here
                    for item in batch:
                        release(
                            table.arrived(
                                item.topic, item.queue_id, item.max_offset, item.tags_code
                            )
                        )
            now = trio.current_time()
            release(table.expired(now))
            if now >= next_check:
                next_check = now + CHECK_INTERVAL
                if abandoned is not None:
                    release(table.abandoned(abandoned))
                for topic, queue_id in table.queues():
                    release(table.behind(topic, queue_id, max_offset(topic, queue_id)))
