"""The master's HA server (reference §6.5): streams commit-log bytes to every connected slave.

    ha_server ............ listens on haListenPort; one nursery per slave connection:
    ├─ _read_reports ..... the slave's 8-byte reports: the first fixes where the transfer
    │                      starts, every one is an ack (Replication.acked); silence for
    │                      haHousekeepingInterval closes the connection
    └─ _transfer ......... frames of at most haTransferBatchSize bytes, never across a
                           commit-log file; woken by the store's append hook, a heartbeat
                           frame after haSendHeartbeatInterval without data

It runs in the master's role scope: a switch to SLAVE cancels it, closing every connection.

It listens where the broker's remoting server does (``bindAddress``).  Apache's
AcceptSocketService (4.9 and 5.x) binds the wildcard address whatever the remoting server's
address; we do not, on purpose: the HA port streams the whole commit log, unauthenticated, to
anyone who connects, so a broker kept on one interface must not offer it on every other.

One deliberate difference from Java: a first report beyond this master's commit log (a
demoted master with a tail nobody acknowledged) is answered from this master's end, so the
first frame tells the slave where the logs diverge (our HA client truncates to it; Java's
slave drops the connection, as it would have anyway).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

import trio

from actors.ha.state import Replication, SlaveLink
from actors.remoting.connection import stream_addresses
from actors.remoting.transport import current_transport, named_addresses
from protocol.ha import (
    HELLO_SIZE,
    REPORT_SIZE,
    HAProtocolError,
    ReportDecoder,
    decode_hello,
    encode_epoch,
    encode_transfer_header,
    plain_first_report,
)

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext

log = logging.getLogger(__name__)

RECEIVE_SIZE = 64 * 1024
BIND_RETRY = 5.0


async def ha_server(
    ctx: BrokerContext,
    *,
    host: str | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve slaves on ``haListenPort`` until cancelled; reports the port it listens on (0
    while the port cannot be bound: retried every BIND_RETRY seconds, loudly, rather than
    taking the whole broker down with it).  ``host``: default the broker's bind address."""
    store, cfg = ctx.store, ctx.store_config
    if host is None and ctx.listen_host not in ("", "0.0.0.0"):
        host = ctx.listen_host  # else every interface, IPv6 too, as Java's wildcard bind
    rep = Replication()
    ctx.replication = rep  # what SYNC_MASTER sends wait on, fresh for every master term
    hook = _ring(rep)
    store.add_append_hook(hook)
    try:
        while True:
            try:
                # the current transport: real TCP, or a simulated network (tests/sim)
                listening = await current_transport().listen(host, cfg.haListenPort)
            except OSError as exc:
                log.error("HA server cannot listen on %d: %s (retrying)", cfg.haListenPort, exc)
                task_status.started(0)
                task_status = trio.TASK_STATUS_IGNORED
                await trio.sleep(BIND_RETRY)
                continue
            break
        listeners, port = listening.listeners, listening.port
        async with trio.open_nursery() as nursery:
            handler = functools.partial(_serve_slave, ctx, rep)
            await nursery.start(trio.serve_listeners, handler, listeners)
            log.info("HA server listening on %d", port)
            task_status.started(port)
    finally:
        store.remove_append_hook(hook)


def _ring(rep: Replication) -> Any:
    transfer = rep.transfer

    def hook(end: int) -> None:
        transfer.set()

    return hook


async def _serve_slave(ctx: BrokerContext, rep: Replication, stream: trio.abc.Stream) -> None:
    peer = (named_addresses(stream) or stream_addresses(stream))[0]
    if peer == "unknown":  # reset between accept and here
        return
    log.info("slave %s connected", peer)
    first_report = b""  # a plain slave's first report, read while looking for a hello
    if ctx.failover is not None:
        try:
            accepted, first_report = await _hello(ctx, rep, stream, peer)
            if not accepted:
                await stream.aclose()
                return
        except (
            trio.BrokenResourceError,
            trio.ClosedResourceError,
            OSError,
            HAProtocolError,
        ) as exc:
            log.warning("slave %s: failover hello failed: %s", peer, exc)
            await stream.aclose()
            return
    rep.slaves[peer] = -1
    link = rep.links[peer] = SlaveLink()
    requested: trio.MemorySendChannel[int]
    requested, first = trio.open_memory_channel[int](1)
    try:
        async with stream, trio.open_nursery() as conn:
            conn.start_soon(
                _read_reports, ctx, rep, stream, peer, requested, conn.cancel_scope, first_report
            )
            conn.start_soon(_transfer, ctx, rep, stream, first, conn.cancel_scope, link)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
        log.info("slave %s connection broken: %s", peer, group.exceptions[0])
    finally:
        del rep.slaves[peer]
        rep.ids.pop(peer, None)
        rep.links.pop(peer, None)
        log.info("slave %s disconnected", peer)


async def _receive_exactly(stream: trio.abc.Stream, n: int, timeout: float) -> bytes:
    data = b""
    with trio.fail_after(timeout):
        while len(data) < n:
            chunk = await stream.receive_some(n - len(data))
            if not chunk:
                raise trio.BrokenResourceError("peer closed during the failover hello")
            data += chunk
    return data


async def _hello(
    ctx: BrokerContext, rep: Replication, stream: trio.abc.Stream, peer: str
) -> tuple[bool, bytes]:
    """The failover hello (protocol/ha.py): serve only a slave that follows this master's
    epoch; every slave learns this master's epoch (a stale one is refused by the slave).
    A plain (Java) slave sends none: it is served, but it never joins the in-sync set (so is
    never elected), unless its first report lies beyond this term's start and beyond what
    this term sent to its host - its tail may then be an older master's, which a Java slave
    cannot cut back.  Returns (accepted, the plain slave's first report)."""
    silence = ctx.store_config.haHousekeepingInterval / 1000
    failover = ctx.failover
    assert failover is not None  # only called with failover on
    try:
        first = await _receive_exactly(stream, REPORT_SIZE, silence)
        plain = plain_first_report(first)
        if plain is None:
            first += await _receive_exactly(stream, HELLO_SIZE - REPORT_SIZE, silence)
    except trio.TooSlowError:
        log.warning("slave %s sent nothing within %.0f s", peer, silence)
        return False, b""
    mine = failover.leading
    if plain is not None:
        start = failover.term_start()
        host = peer.rpartition(":")[0]
        if start is None or (plain > start and plain > rep.plain_acked.get(host, -1)):
            log.warning(
                "plain slave %s (no failover hello) resumes at %d, beyond where epoch %d began (%s): "
                "its tail may be an older master's; refused (clear its store to re-sync it)",
                peer, plain, mine, start,
            )  # fmt: skip
            return False, b""
        log.info(
            "plain slave %s (no failover hello): replicated to, never in the in-sync set", peer
        )
        return True, first
    broker_id, epoch = decode_hello(first)
    await stream.send_all(encode_epoch(mine))
    if epoch != mine or not mine:
        log.warning(
            "slave %s (broker %d) follows epoch %d, this master is of epoch %d: refused",
            peer,
            broker_id,
            epoch,
            mine,
        )
        return False, b""
    rep.ids[peer] = broker_id
    return True, b""


async def _read_reports(
    ctx: Any,
    rep: Replication,
    stream: trio.abc.Stream,
    peer: str,
    requested: trio.MemorySendChannel[int],
    conn: trio.CancelScope,
    received: bytes = b"",  # what the failover hello's check already read
) -> None:
    store = ctx.store
    silence = ctx.store_config.haHousekeepingInterval / 1000
    decoder = ReportDecoder()
    first = True
    # a plain slave under failover: what it acknowledges is remembered for its host
    plain_host = (
        peer.rpartition(":")[0] if ctx.failover is not None and peer not in rep.ids else None
    )
    while True:
        data: bytes | None = received
        received = b""
        if not data:
            data = None
            with trio.move_on_after(silence):
                data = bytes(await stream.receive_some(RECEIVE_SIZE))  # the same object
        if data is None:
            log.warning("slave %s silent for %.0f s: closing", peer, silence)
            conn.cancel()
            return
        if not data:  # the slave closed the connection
            conn.cancel()
            return
        try:
            offset = decoder.feed(data)
        except HAProtocolError as exc:
            log.warning("slave %s: %s", peer, exc)
            conn.cancel()
            return
        if offset is None:
            continue
        if first:
            first = False
            log.info("slave %s requests the commit log from %d", peer, offset)
            requested.send_nowait(offset)
            if offset > store.max_phy_offset:
                continue  # a tail this master lacks acknowledges nothing of its own
        elif offset > store.max_phy_offset:
            log.warning(
                "slave %s acked %d beyond this commit log's end %d: closing",
                peer,
                offset,
                store.max_phy_offset,
            )
            conn.cancel()
            return
        rep.slaves[peer] = offset
        if plain_host is not None:
            rep.plain_acked[plain_host] = max(offset, rep.plain_acked.get(plain_host, -1))
        rep.acked.advance(offset)
        rep.reported.set()


def start_offset(requested: int, max_offset: int, file_size: int) -> int:
    """Where the transfer to a slave begins (§6.5): a slave with an empty log gets the start
    of the master's last file; one ahead of this master gets this master's end."""
    if requested == 0:
        return max(0, max_offset - max_offset % file_size)
    return min(requested, max_offset)


async def _transfer(
    ctx: Any,
    rep: Replication,
    stream: trio.abc.Stream,
    first: trio.MemoryReceiveChannel[int],
    conn: trio.CancelScope,
    link: SlaveLink,
) -> None:
    store, cfg = ctx.store, ctx.store_config
    batch = cfg.haTransferBatchSize
    heartbeat = cfg.haSendHeartbeatInterval / 1000
    requested = await first.receive()
    nxt = start_offset(requested, store.max_phy_offset, cfg.mappedFileSizeCommitLog)
    log.info("transfer to slave from %d (it requested %d)", nxt, requested)
    link.transfer_from = nxt
    if nxt != requested:
        await stream.send_all(encode_transfer_header(nxt, 0))
    wake = rep.transfer
    while True:
        body = store.read_replication(nxt, batch)
        if body:
            await stream.send_all(encode_transfer_header(nxt, len(body)) + body)
            nxt += len(body)
            link.transfer_from = nxt
            link.flow.add(len(body), trio.current_time())
            continue
        # nothing new: no checkpoint since the read, so no append can slip in unseen
        with trio.move_on_after(heartbeat) as idle:
            await wake.wait()
        if idle.cancelled_caught:
            await stream.send_all(encode_transfer_header(nxt, 0))
