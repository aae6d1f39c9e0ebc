"""Flushers: the commit log (ASYNC_FLUSH periodic, SYNC_FLUSH group commit) and consume queues.

fdatasync runs in a worker thread (it releases the GIL); the event loop keeps serving puts while
a group is being synced, and those puts form the next group.
"""

from __future__ import annotations

import logging

import trio
import trio_util

from actors.waiters import OffsetWaiters
from storage.config import FlushDiskType, MessageStoreConfig
from storage.message_store import MessageStore

log = logging.getLogger(__name__)


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


async def commit_log_flusher(
    store: MessageStore,
    config: MessageStoreConfig,
    waiters: OffsetWaiters,
    wake: trio_util.RepeatedEvent,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """SYNC_FLUSH: one fdatasync per group of puts, then ``waiters.advance(flushed)``.
    ASYNC_FLUSH: every flushIntervalCommitLog ms if >= flushCommitLogLeastPages pages are dirty,
    everything at least every flushCommitLogThoroughInterval ms."""
    prefault = trio_util.RepeatedEvent()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_prefaulter, store, prefault)
        await _flush_loop(store, config, waiters, wake, prefault, task_status)


async def _flush_loop(
    store: MessageStore,
    config: MessageStoreConfig,
    waiters: OffsetWaiters,
    wake: trio_util.RepeatedEvent,
    prefault: trio_util.RepeatedEvent,
    task_status: trio.TaskStatus[None],
) -> None:
    waiters.advance(store.flushed_offset)
    task_status.started()
    if config.flushDiskType is FlushDiskType.SYNC_FLUSH:
        while True:
            if store.max_phy_offset > store.flushed_offset:
                waiters.advance(await _flush(store, 0, prefault))
                continue
            await wake.wait()
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
