"""The reput dispatcher: follows the commit log, builds consume-queue and index entries, announces."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

from actors.wake import Wake
from storage.message_store import Arrived, MessageStore

log = logging.getLogger(__name__)

# bytes dispatched per step before yielding to other tasks (~256 records of 1 KiB, a few ms)
STEP_BYTES = 256 << 10
SAFETY_INTERVAL = 1.0
# new queues whose files dispatch makes on the loop rather than in a worker thread
INLINE_FILES_MAX = 1


class ArrivalSink(Protocol):
    """Where arrivals go: a memory channel, or a filter in front of one."""

    async def send(self, value: Arrived, /) -> None: ...


class OfferSink(ArrivalSink, Protocol):
    def offer(self, value: Arrived, /) -> bool:
        """Take ``value`` without waiting; False when only ``send`` could."""
        ...


class InlineDispatch:
    """Dispatch by the task that appended, while the reput actor is idle and caught up.

    A connection's reader calls ``run`` once per read (``Router.after_read``), after writing
    that read's replies: the actor's turn per read (its wake-up, its loop, trio's scheduling)
    cost as much as 12-20 % of a one-frame read's CPU (bench_send_path).  Whatever this cannot
    finish (files to make, more than a step, arrivals a sink cannot take at once) rings the
    actor, which also keeps dispatching whenever it is not idle.
    """

    def __init__(self, store: MessageStore, sink: OfferSink | None, wake: Wake) -> None:
        self.store = store
        self.sink = sink
        self.wake = wake
        self.idle = False  # set by the actor only while it waits, caught up
        self.left: list[Arrived] = []  # arrivals for the actor to send

    def run(self) -> None:
        store = self.store
        if not store.dispatch_behind_bytes():
            return
        if not self.idle:
            self.wake.set()
            return
        arrived = store.reput(STEP_BYTES, create_files=False)
        sink = self.sink
        if sink is not None:
            for i, a in enumerate(arrived):
                if not sink.offer(a):
                    self.left.extend(arrived[i:])
                    break
        if self.left or store.dispatch_behind_bytes():
            self.wake.set()


async def reput_dispatcher(
    store: MessageStore,
    arrivals: ArrivalSink | None,
    wake: Wake,
    *,
    interval: float = SAFETY_INTERVAL,
    inline: InlineDispatch | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Dispatch whenever ``wake`` fires (after each put) and every ``interval`` s as a safety net.

    Reports started only once dispatch has caught up with the commit log.  With ``inline``,
    appending tasks may dispatch while this waits (``InlineDispatch``).
    """
    async with trio.open_nursery() as nursery:
        # The safety net rings the same wake-up from beside the loop: a timeout around each
        # wait (``move_on_after``) was a cancel scope and a deadline per message, 9 % of the
        # event loop's CPU on the send path (bench_send_path, py-spy).
        nursery.start_soon(_ring_every, wake, interval)
        await _dispatch_loop(store, arrivals, wake, task_status, inline)


async def _ring_every(wake: Wake, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        wake.set()


async def _dispatch_loop(
    store: MessageStore,
    arrivals: ArrivalSink | None,
    wake: Wake,
    task_status: trio.TaskStatus[None],
    inline: InlineDispatch | None = None,
) -> None:
    while store.dispatch_behind_bytes() > 0:
        before = store.reput_from
        store.reput(STEP_BYTES, create_files=False)
        created = await _create_queue_files(store)
        await trio.lowlevel.checkpoint()
        if store.reput_from == before and not created:
            break  # a replicated record whose rest has not arrived, or a full disk
    task_status.started()
    while True:
        if inline is not None and inline.left:
            left, inline.left = inline.left, []
            if arrivals is not None:
                for a in left:
                    await arrivals.send(a)
        before = store.reput_from
        arrived = store.reput(STEP_BYTES, create_files=False)
        if arrived and arrivals is not None:
            for a in arrived:  # the newest per queue and tag (MessageStore.reput)
                await arrivals.send(a)
        created = await _create_queue_files(store)
        if created is not None:
            if not created:
                # a full disk: try again after the next put or the safety net's ring
                await wake.wait()
            continue
        # no progress: a replicated record waits for its rest (the next append rings us)
        if store.dispatch_behind_bytes() > 0 and store.reput_from != before:
            await trio.lowlevel.checkpoint()
            continue
        # no checkpoint since the check above, so a put cannot slip in before we wait
        if inline is None:
            await wake.wait()
            continue
        inline.idle = True
        try:
            await wake.wait()
        finally:
            inline.idle = False


async def _create_queue_files(store: MessageStore) -> bool | None:
    """Create the consume-queue files dispatch stopped for: None when it did not stop for
    one, False when creating failed.

    A lone new queue's file is made here on the loop (mkdir, create, map: 0.1-0.3 ms), so a
    new topic's first message is dispatched as promptly as any other.  A burst (a sender
    round robin over new topics) is made in one worker-thread call; only dispatch waits for
    it, sends go on being appended and answered.
    """
    preparers = store.queue_file_preparers()
    if not preparers:
        return None
    try:
        if len(preparers) <= INLINE_FILES_MAX:
            _run_all(preparers)
        else:
            await trio.to_thread.run_sync(_run_all, preparers)
    except OSError as exc:
        store.queue_file_failed(exc)
        return False
    return True


def _run_all(preparers: list[Callable[[], None]]) -> None:
    for prepare in preparers:
        prepare()
