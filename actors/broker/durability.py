"""When a write may be acknowledged: durable as configured (reference §7.1 step 13, §6.5).

Every path that stores something a client or a persisted offset depends on (a send, a
send-back, a transaction commit, a delayed or timed delivery) ends here before it answers or
moves on, so SYNC_FLUSH means the same thing on each of them.  The store announces every
append itself (``MessageStore.add_append_hook``): ``announce_appends`` rings the reput
dispatcher and, under SYNC_FLUSH, the flush thread, whatever wrote the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from storage.config import FlushDiskType
from storage.message_store import PutStatus

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext

_PUT_OK = PutStatus.PUT_OK


def announce_appends(ctx: BrokerContext) -> Callable[[int], None]:
    """Hook the context's wake-ups to its store's appends; returns the hook (to remove it)."""
    reput = ctx.reput_wake
    if ctx.store_config.flushDiskType is FlushDiskType.SYNC_FLUSH:
        flush = ctx.flush_wake

        def hook(end: int) -> None:
            reput.set()
            flush.set()

    else:

        def hook(end: int) -> None:
            reput.set()

    ctx.store.add_append_hook(hook)
    return hook


async def wait_durable(ctx: BrokerContext, end_offset: int) -> PutStatus:
    """PUT_OK once the commit log's bytes up to ``end_offset`` are as durable as configured;
    FLUSH_DISK_TIMEOUT if the group commit misses ``syncFlushTimeout``.  No checkpoint when
    nothing needs waiting for (ASYNC_FLUSH, or already flushed)."""
    if ctx.sync_flush:
        timeout = ctx.store_config.syncFlushTimeout / 1000
        if not await ctx.flushed.wait_for(end_offset, timeout):
            return PutStatus.FLUSH_DISK_TIMEOUT
    return _PUT_OK


async def commit_log_durable(ctx: BrokerContext) -> bool:
    """Until everything appended so far is durable as configured (False: the flush timed
    out): what a persisted position (delay-level offsets, timer progress) waits for before it
    may cover the messages it delivered."""
    return await wait_durable(ctx, ctx.store.max_phy_offset) is _PUT_OK
