"""The slave's HA client (reference §6.5): follows the master's commit log byte for byte.

    ha_client ............ connects to haMasterAddress, else the master HA address learnt from
    │                      the name servers' REGISTER_BROKER replies; reconnects after
    │                      RECONNECT_DELAY (Java's 5 s) when the connection fails or closes
    ├─ _receive .......... frames in order; each body is appended at exactly its offset
    │                      (the store's append hook then rings reput and the flusher)
    └─ _report ........... the 8-byte max offset: at once on connecting, after every batch
                           that moved it, and every haSendHeartbeatInterval

Either side closes a connection silent for haHousekeepingInterval.  A frame that does not
continue this commit log drops the connection, as in Java - unless this broker was a master
just demoted (``ctx.demoted``) and the master starts below this log's end: then the tail
beyond the master's offset is one nobody acknowledged, and it is truncated.  A master demoted
without ``truncateTo`` first compares its log with the new master's by content
(actors/ha/divergence.py): offsets alone miss records both wrote at the same offsets.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from actors.ha.divergence import cut_divergent_tail
from actors.remoting.transport import current_transport
from actors.wake import Wake
from protocol.ha import (
    EPOCH_SIZE,
    HAProtocolError,
    TransferDecoder,
    decode_epoch,
    encode_hello,
    encode_report,
)
from storage.errors import StoreError

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext
    from actors.failover.election import MasterRecord

log = logging.getLogger(__name__)

RECONNECT_DELAY = 5.0
FAILOVER_RECONNECT_DELAY = 0.2
ADDRESS_POLL = 0.5
CONNECT_TIMEOUT = 3.0
RECEIVE_SIZE = 256 * 1024


class _Diverged(Exception):
    pass


def master_ha_address(ctx: BrokerContext) -> str | None:
    if ctx.failover is not None:
        # with failover, only the master etcd elected (actors/broker/failover.py)
        master = ctx.failover_master.value
        return master.ha_addr if master is not None else None
    return ctx.store_config.haMasterAddress or ctx.master_ha_addr or None


async def ha_client(
    ctx: BrokerContext,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Follow the master until cancelled (the slave's role scope)."""
    task_status.started()
    while True:
        addr = master_ha_address(ctx)
        followed = ctx.failover_master.value
        if addr is None:
            # learnt from the next REGISTER_BROKER reply (or, with failover, from etcd): look
            # again soon
            with trio.move_on_after(ADDRESS_POLL):
                await ctx.failover_master.wait_value(lambda m, seen=followed: m is not seen)
            continue
        if addr is not None:
            try:
                await _follow(ctx, addr)
            except* (
                OSError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                trio.TooSlowError,
            ) as group:
                log.info("HA connection to master %s: %s", addr, group.exceptions[0])
            except* (HAProtocolError, _Diverged, StoreError, ValueError) as group:
                log.warning("HA connection to master %s dropped: %s", addr, group.exceptions[0])
        # with failover the master is known (etcd): its HA port may just be opening
        with trio.move_on_after(
            RECONNECT_DELAY if ctx.failover is None else FAILOVER_RECONNECT_DELAY
        ):
            # a newly elected master is followed at once, not after the reconnect delay
            await ctx.failover_master.wait_value(
                lambda m, seen=followed: m is not seen and m is not None
            )


async def _connect(addr: str) -> trio.abc.Stream:
    host, _, port = addr.rpartition(":")
    with trio.fail_after(CONNECT_TIMEOUT):
        try:
            # the current transport: real TCP, or a simulated network (tests/sim)
            return await current_transport().connect(host, int(port))
        except ValueError as exc:
            raise OSError(f"bad master HA address {addr!r}") from exc


async def _follow(ctx: BrokerContext, addr: str) -> None:
    if ctx.following.verify_prefix and ctx.failover is None:
        await cut_divergent_tail(ctx, addr)  # a demoted master: offsets alone cannot tell
        # what is left is a prefix of the master's log: nothing more to drop
        ctx.following.verify_prefix = ctx.demoted = False
    try:
        stream = await _connect(addr)
    except trio.TooSlowError as exc:
        raise OSError(f"connect to {addr} timed out") from exc
    moved = Wake()
    master = ctx.failover_master.value
    async with stream, trio.open_nursery() as conn:
        if ctx.failover is not None:
            await _hello(ctx, stream, master)
            # another master elected: leave this one at once
            conn.start_soon(_until_changed, ctx, master, conn.cancel_scope)
        log.info("following master %s from %d", addr, ctx.store.max_phy_offset)
        ctx.following.master_addr = addr
        try:
            conn.start_soon(_report, ctx, stream, moved)
            await _receive(ctx, stream, moved, master)
            conn.cancel_scope.cancel()
        finally:
            ctx.following.master_addr = None


async def _until_changed(
    ctx: BrokerContext, master: MasterRecord | None, conn: trio.CancelScope
) -> None:
    await ctx.failover_master.wait_value(lambda m: m is not master)
    log.info("master changed: leaving %s", master.ha_addr if master else None)
    conn.cancel()


async def _hello(ctx: BrokerContext, stream: trio.abc.Stream, master: MasterRecord) -> None:
    """The failover hello (protocol/ha.py): follow only a master of the elected epoch."""
    failover = ctx.failover
    assert failover is not None  # only called with failover on
    await stream.send_all(encode_hello(failover.elector.broker_id, master.epoch))
    data = b""
    with trio.fail_after(ctx.store_config.haHousekeepingInterval / 1000):
        while len(data) < EPOCH_SIZE:
            chunk = await stream.receive_some(EPOCH_SIZE - len(data))
            if not chunk:
                raise trio.BrokenResourceError("master closed the connection during the hello")
            data += chunk
    epoch = decode_epoch(data)
    if epoch != master.epoch:
        raise _Diverged(
            f"master at {master.ha_addr} is of epoch {epoch}, etcd elected epoch {master.epoch}"
        )


async def _report(ctx: BrokerContext, stream: trio.abc.Stream, moved: Wake) -> None:
    store = ctx.store
    heartbeat = ctx.store_config.haSendHeartbeatInterval / 1000
    sent = -1
    while True:
        offset = store.max_phy_offset
        if offset != sent:
            await stream.send_all(encode_report(offset))
            ctx.following.last_write_ms = ctx.now_ms()
            sent = offset
            continue  # the send was a checkpoint: look again before sleeping
        with trio.move_on_after(heartbeat) as idle:
            await moved.wait()
        if idle.cancelled_caught:
            sent = -1  # a heartbeat: report even if nothing moved


async def _receive(
    ctx: BrokerContext, stream: trio.abc.Stream, moved: Wake, master: MasterRecord | None = None
) -> None:
    store = ctx.store
    silence = ctx.store_config.haHousekeepingInterval / 1000
    decoder = TransferDecoder(max_body=max(ctx.store_config.haTransferBatchSize, 4 << 20))
    while True:
        data = None
        with trio.move_on_after(silence):
            data = await stream.receive_some(RECEIVE_SIZE)
        if data is None:
            raise _Diverged(f"master silent for {silence:.0f} s")
        if not data:
            raise trio.BrokenResourceError("master closed the connection")
        ctx.following.last_read_ms = ctx.now_ms()
        ctx.following.flow.add(len(data), trio.current_time())
        decoder.feed(bytes(data))  # bytes: the same object, no copy
        while (frame := decoder.next_transfer()) is not None:
            if ctx.failover is not None and ctx.failover_master.value is not master:
                # bytes received before another master was elected (and this log cut back
                # for it): never append them
                return
            mine = store.max_phy_offset
            if mine and frame.phy_offset != mine:
                if not (ctx.demoted and frame.phy_offset < mine):
                    raise _Diverged(
                        f"master sends from {frame.phy_offset}, this log ends at {mine}"
                    )
                dropped = store.truncate_replicated(frame.phy_offset)
                log.warning("dropped %d bytes the master does not have", dropped)
            # the logs agree from here on: only a master demoted again may drop a tail
            ctx.demoted = False
            if frame.body:
                store.append_replicated(frame.phy_offset, frame.body)
            moved.set()
