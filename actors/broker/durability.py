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

from actors.broker.failover_gate import replicas_durable
from actors.remoting.router import in_reader_task
from storage.config import BrokerRole, FlushDiskType
from storage.message_store import PutStatus

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext

_PUT_OK = PutStatus.PUT_OK
_SYNC_MASTER = BrokerRole.SYNC_MASTER


def announce_appends(ctx: BrokerContext) -> Callable[[int], None]:
    """Hook the context's wake-ups to its store's appends; returns the hook (to remove it)."""
    reput = ctx.reput_wake
    # A connection's reader dispatches what its requests appended itself, once per read
    # (reput.InlineDispatch via Router.after_read): ringing the reput actor for those would
    # cost the task switch that saves.  Every other appender rings it.
    if ctx.store_config.flushDiskType is FlushDiskType.SYNC_FLUSH:
        flush = ctx.flush_wake

        def hook(end: int) -> None:
            if not in_reader_task():
                reput.set()
            flush.set()

    else:

        def hook(end: int) -> None:
            if not in_reader_task():
                reput.set()

    ctx.store.add_append_hook(hook)
    return hook


async def wait_durable(ctx: BrokerContext, end_offset: int, *, replica: bool = True) -> PutStatus:
    """PUT_OK once the commit log's bytes up to ``end_offset`` are as durable as configured;
    FLUSH_DISK_TIMEOUT if the group commit misses ``syncFlushTimeout``.  Then, on a
    SYNC_MASTER (and ``replica``), as Java's handleHA: SLAVE_NOT_AVAILABLE when no slave is
    connected or the fastest is ``haSlaveFallbehindMax`` behind, FLUSH_SLAVE_TIMEOUT when
    none acknowledged the bytes within ``slaveTimeout``.  No checkpoint when nothing needs
    waiting for (ASYNC_FLUSH, or already flushed; ASYNC_MASTER)."""
    status = _PUT_OK
    # the role when the bytes were appended decides: a master fenced meanwhile must not
    # acknowledge without its replica
    sync_master = replica and ctx.role.value is _SYNC_MASTER
    if ctx.sync_flush:
        timeout = ctx.store_config.syncFlushTimeout / 1000
        if not await ctx.flushed.wait_for(end_offset, timeout):
            status = PutStatus.FLUSH_DISK_TIMEOUT
    if sync_master:
        # the replica's verdict wins over the flush's, as Java's thenCombine
        cfg = ctx.store_config
        rep = ctx.replication
        if not rep.is_slave_ok(end_offset, cfg.haSlaveFallbehindMax):
            return PutStatus.SLAVE_NOT_AVAILABLE
        if not await rep.acked.wait_for(end_offset, cfg.slaveTimeout / 1000):
            return PutStatus.FLUSH_SLAVE_TIMEOUT
        if ctx.failover is not None and not await replicas_durable(
            ctx, end_offset, cfg.slaveTimeout / 1000
        ):
            return PutStatus.FLUSH_SLAVE_TIMEOUT
    return status


async def commit_log_durable(ctx: BrokerContext) -> bool:
    """Until everything appended so far is durable as configured (False: the flush timed
    out): what a persisted position (delay-level offsets, timer progress) waits for before it
    may cover the messages it delivered."""
    return await wait_durable(ctx, ctx.store.max_phy_offset, replica=False) is _PUT_OK
