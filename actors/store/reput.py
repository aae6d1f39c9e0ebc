"""The reput dispatcher: follows the commit log, builds consume-queue and index entries, announces."""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from actors.wake import Wake
from storage.message_store import Arrived, MessageStore

log = logging.getLogger(__name__)

# bytes dispatched per step before yielding to other tasks (~256 records of 1 KiB, a few ms)
STEP_BYTES = 256 << 10
SAFETY_INTERVAL = 1.0


class ArrivalSink(Protocol):
    """Where arrivals go: a memory channel, or a filter in front of one."""

    async def send(self, value: Arrived, /) -> None: ...


async def reput_dispatcher(
    store: MessageStore,
    arrivals: ArrivalSink | None,
    wake: Wake,
    *,
    interval: float = SAFETY_INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Dispatch whenever ``wake`` fires (after each put) and every ``interval`` s as a safety net.

    Reports started only once dispatch has caught up with the commit log.
    """
    async with trio.open_nursery() as nursery:
        # The safety net rings the same wake-up from beside the loop: a timeout around each
        # wait (``move_on_after``) was a cancel scope and a deadline per message, 9 % of the
        # event loop's CPU on the send path (bench_send_path, py-spy).
        nursery.start_soon(_ring_every, wake, interval)
        await _dispatch_loop(store, arrivals, wake, task_status)


async def _ring_every(wake: Wake, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        wake.set()


async def _dispatch_loop(
    store: MessageStore,
    arrivals: ArrivalSink | None,
    wake: Wake,
    task_status: trio.TaskStatus[None],
) -> None:
    while store.dispatch_behind_bytes() > 0:
        before = store.reput_from
        store.reput(STEP_BYTES)
        await trio.lowlevel.checkpoint()
        if store.reput_from == before:
            break  # a replicated record whose rest has not arrived
    task_status.started()
    while True:
        before = store.reput_from
        arrived = store.reput(STEP_BYTES)
        if arrived and arrivals is not None:
            for a in arrived:  # the newest per queue and tag (MessageStore.reput)
                await arrivals.send(a)
        # no progress: a replicated record waits for its rest (the next append rings us)
        if store.dispatch_behind_bytes() > 0 and store.reput_from != before:
            await trio.lowlevel.checkpoint()
            continue
        # no checkpoint since the check above, so a put cannot slip in before we wait
        await wake.wait()
