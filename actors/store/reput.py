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
    while store.dispatch_behind_bytes() > 0:
        store.reput(STEP_BYTES)
        await trio.lowlevel.checkpoint()
    task_status.started()
    while True:
        arrived = store.reput(STEP_BYTES)
        if arrived and arrivals is not None:
            for a in arrived:  # the newest per queue and tag (MessageStore.reput)
                await arrivals.send(a)
        if store.dispatch_behind_bytes() > 0:
            await trio.lowlevel.checkpoint()
            continue
        # no checkpoint since the check above, so a put cannot slip in before we wait
        with trio.move_on_after(interval):
            await wake.wait()
