"""Flushers: the commit log (ASYNC_FLUSH periodic, SYNC_FLUSH group commit) and consume queues.

fdatasync runs in a worker thread (it releases the GIL); the event loop keeps serving puts while
a group is being synced, and those puts form the next group.

Under SYNC_FLUSH the commit log has a flush thread of its own for the actor's lifetime (Java's
GroupCommitService): a put rings it directly (``FlushWake``, a threading.Event underneath), so it
can start syncing before the event loop has run every task the same wake-up made runnable, and
it starts the next sync as soon as one ends; no thread is handed a job per group.  How soon it
starts depends on the GIL: in the broker the loop lets go of it at every socket operation, and
groups overlap the next group's puts (measured +20 % on 16 SYNC_FLUSH senders, p99 16-17 ms
instead of 23-117 ms); writers that never block (apps/bench_store.py) keep it lock-step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import trio
import trio_util

from actors.waiters import OffsetWaiters
from actors.wake import Wake
from storage.config import FlushDiskType, MessageStoreConfig
from storage.message_store import MessageStore

log = logging.getLogger(__name__)

GROUP_COMMIT_PERIOD = 0.01  # s


async def _flush(store: MessageStore, least_pages: int, prefault: trio_util.RepeatedEvent) -> int:
    try:
        flushed = await trio.to_thread.run_sync(store.flush_commit_log, least_pages)
    except OSError:
        # a failed fdatasync may have lost pages: never acknowledge anything again
        store.flags.writeable = False
        log.exception("commit-log flush failed; the store no longer accepts writes")
        raise
    if store.next_file_needed():
        # creating a file (fallocate + directory fsync) is blocking work too: do it here,
        # ahead of need, rather than on the put path when the current file fills up
        await trio.to_thread.run_sync(store.prepare_next_file)
    if store.prefault_needed():
        prefault.set()
    return flushed


async def _prefaulter(store: MessageStore, wanted: trio_util.RepeatedEvent) -> None:
    """Populate commit-log pages ahead of the writer in a worker thread whenever the flusher
    finds the populated window running short (storage/mapped_file.py MappedFile.prefault).
    Woken by the flusher, not by a timer of its own: an idle store stays quiet."""
    while True:
        if store.prefault_needed():
            await trio.to_thread.run_sync(store.prefault_commit_log)
        await wanted.wait()


class FlushWake:
    """What a put rings when it has appended: wakes the commit-log flusher.

    Waitable like a trio_util.RepeatedEvent (the ASYNC_FLUSH flusher's early wake-up); while a
    SYNC_FLUSH flush thread is attached, ``set`` rings the thread instead, without a trio task.
    """

    def __init__(self) -> None:
        self._event = Wake()
        self._thread: threading.Event | None = None

    def set(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.set()
        else:
            self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def attach(self, thread: threading.Event | None) -> None:
        self._thread = thread


async def commit_log_flusher(
    store: MessageStore,
    config: MessageStoreConfig,
    waiters: OffsetWaiters,
    wake: FlushWake,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """SYNC_FLUSH: one fdatasync per group of puts, then ``waiters.advance(flushed)``.
    ASYNC_FLUSH: every flushIntervalCommitLog ms if >= flushCommitLogLeastPages pages are dirty,
    everything at least every flushCommitLogThoroughInterval ms."""
    prefault = trio_util.RepeatedEvent()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_prefaulter, store, prefault)
        if config.flushDiskType is FlushDiskType.SYNC_FLUSH:
            await _group_commit(store, waiters, wake, prefault, task_status)
        else:
            await _flush_loop(store, config, waiters, wake, prefault, task_status)


async def _group_commit(
    store: MessageStore,
    waiters: OffsetWaiters,
    wake: FlushWake,
    prefault: trio_util.RepeatedEvent,
    task_status: trio.TaskStatus[None],
) -> None:
    """Run the flush thread; its flushed offsets come back through ``run_sync_soon``."""
    ring = threading.Event()
    stop = threading.Event()
    token = trio.lowlevel.current_trio_token()

    def flushed(offset: int) -> None:  # on the event loop
        waiters.advance(offset)
        if store.prefault_needed():
            prefault.set()

    def post(offset: int) -> None:  # on the flush thread
        token.run_sync_soon(flushed, offset)

    async def stopper() -> None:
        try:
            await trio.sleep_forever()
        finally:
            stop.set()
            ring.set()

    waiters.advance(store.flushed_offset)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stopper)
        wake.attach(ring)
        task_status.started()
        try:
            # not abandoned on cancel: the stopper's finally ends the thread, and we wait for it
            await trio.to_thread.run_sync(group_commit_thread, store, ring, stop, post)
        except OSError:
            # a failed fdatasync may have lost pages: never acknowledge anything again
            store.flags.writeable = False
            log.exception("commit-log flush failed; the store no longer accepts writes")
            raise
        finally:
            wake.attach(None)
            nursery.cancel_scope.cancel()


def group_commit_thread(
    store: MessageStore,
    ring: threading.Event,
    stop: threading.Event,
    post: Callable[[int], None],
) -> None:
    """The flush thread: fdatasync whatever is written, post the flushed offset, again; sleep
    until rung when everything is flushed.  Ends when ``stop`` is set (and ``ring`` rung)."""
    while not stop.is_set():
        # cleared before looking: a put after the look rings again, one before it is seen
        ring.clear()
        if store.max_phy_offset > store.flushed_offset:
            post(store.flush_commit_log(0))
            if store.next_file_needed():
                # blocking work too: ahead of need, rather than on the put path at the roll
                store.prepare_next_file()
        else:
            # a period as well as the ring, as Java's GroupCommitService waits 10 ms: bytes
            # appended by a path that did not ring (or a ring lost to a race) still get synced
            ring.wait(GROUP_COMMIT_PERIOD)


async def _flush_loop(
    store: MessageStore,
    config: MessageStoreConfig,
    waiters: OffsetWaiters,
    wake: FlushWake,
    prefault: trio_util.RepeatedEvent,
    task_status: trio.TaskStatus[None],
) -> None:
    waiters.advance(store.flushed_offset)
    task_status.started()
    interval = config.flushIntervalCommitLog / 1000
    thorough = config.flushCommitLogThoroughInterval / 1000
    last_thorough = trio.current_time()
    while True:
        if config.flushCommitLogTimed:
            await trio.sleep(interval)
        else:
            with trio.move_on_after(interval):
                await wake.wait()
        least = config.flushCommitLogLeastPages
        if trio.current_time() - last_thorough >= thorough:
            least = 0
            last_thorough = trio.current_time()
        waiters.advance(await _flush(store, least, prefault))


async def consume_queue_flusher(
    store: MessageStore,
    config: MessageStoreConfig,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Every flushIntervalConsumeQueue ms (>= 2 dirty pages, or everything every 60 s)."""
    task_status.started()
    interval = config.flushIntervalConsumeQueue / 1000
    thorough = config.flushConsumeQueueThoroughInterval / 1000
    last_thorough = trio.current_time()
    while True:
        await trio.sleep(interval)
        least = config.flushConsumeQueueLeastPages
        if trio.current_time() - last_thorough >= thorough:
            least = 0
            last_thorough = trio.current_time()
        await trio.to_thread.run_sync(store.flush_consume_queues, least)
