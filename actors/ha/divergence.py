"""Where a demoted master's commit log stops agreeing with its new master's, by content.

A master demoted without ``truncateTo`` cannot tell from offsets alone where its log and the
new master's diverge: both were written to after the promotion, at the same offsets (README,
"Role switch at run time").  Before it follows, the HA client asks the new master for records
at offsets of its own log (VIEW_MESSAGE_BY_ID, which any RocketMQ 4.9 broker answers with the
raw record at a commit-log offset) and keeps only the longest prefix the master holds byte for
byte; the rest is cut.

The search is by record and costs O(log files + log records of one file) requests: logs agree
up to some offset and differ after it, every commit-log file begins with a record (records
never span files), so first a binary search over the files' first records, then one over the
records of the last file that still agrees.  Walking that file's records reads it locally, in
a worker thread.  A record is compared whole (its store timestamp, host and CRC included), so
two different records never compare equal.

With automatic failover this is not used: a member cuts back to its epoch's start instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.errors import RemotingError
from protocol.bodies.common import KVTable
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, encode_header
from protocol.errors import ProtocolError
from protocol.headers.query import ViewMessageRequestHeader
from storage.message_store import MessageStore

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
# the remark of a VIEW_MESSAGE_BY_ID that found no record (Apache 4.9's and ours); any other
# refusal (Apache answers an ACL failure with SYSTEM_ERROR too) is not an answer
NOT_FOUND = "can not find message by the offset"

# the master's whole record at a commit-log offset, None if it has none there
Probe = Callable[[int], Awaitable[bytes | None]]


async def agreed_prefix(store: MessageStore, probe: Probe, master_min: int = 0) -> int:
    """The end of the longest prefix of ``store``'s commit log that ``probe`` returns record for
    record.  Only files from ``master_min`` on (the master's first file: older ones it may have
    deleted) are compared; if the first of them does not agree, the log is kept up to there."""
    end = store.max_phy_offset
    starts = [mf.file_from_offset for mf in store.commit_log.queue.files]
    starts = [s for s in starts if master_min <= s < end]
    if not starts:
        # nothing of this log is in the master's: nothing to compare (and nothing to keep
        # that the master could contradict)
        return end

    async def agrees(offset: int) -> bool:
        mine = store.select_one_message_by_offset(offset)
        if mine is None:
            return False
        return await probe(offset) == bytes(mine)

    if not await agrees(starts[0]):
        return starts[0]
    lo, hi = 0, len(starts) - 1  # starts[lo] agrees; find the last file whose first record does
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if await agrees(starts[mid]):
            lo = mid
        else:
            hi = mid - 1
    records = await trio.to_thread.run_sync(_records, store, starts[lo], end)
    lo, hi = 0, len(records) - 1  # records[0] agrees (the file's first)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if await agrees(records[mid][0]):
            lo = mid
        else:
            hi = mid - 1
    offset, size = records[lo]
    return offset + size


def _records(store: MessageStore, start: int, end: int) -> list[tuple[int, int]]:
    """(offset, size) of the records of the file beginning at ``start`` (up to ``end``)."""
    out: list[tuple[int, int]] = []
    offset = start
    limit = min(end, start + store.config.mappedFileSizeCommitLog)
    while offset < limit:
        record = store.select_one_message_by_offset(offset)
        if record is None:  # the end-of-file blank, or the end of the log
            break
        out.append((offset, len(record)))
        offset += len(record)
    return out


def master_remoting_address(ctx: BrokerContext, ha_addr: str) -> str:
    """The master's remoting address: from the name servers' REGISTER_BROKER reply, else
    RocketMQ's convention (haListenPort = listenPort + 1) applied to its HA address."""
    if ctx.master_addr:
        return ctx.master_addr
    host, _, port = ha_addr.rpartition(":")
    return f"{host}:{int(port) - 1}"


async def cut_divergent_tail(ctx: BrokerContext, ha_addr: str) -> int:
    """Truncate this (demoted) broker's commit log to the prefix its master has too; returns
    the bytes dropped.  Network failures raise OSError (the HA client retries)."""
    addr = master_remoting_address(ctx, ha_addr)
    async with open_remoting_client(name="ha-diverge") as client:

        async def probe(offset: int) -> bytes | None:
            request = RemotingCommand.request(
                RequestCode.VIEW_MESSAGE_BY_ID,
                encode_header(ViewMessageRequestHeader(offset=offset)),
            )
            try:
                reply = await client.invoke(addr, request, PROBE_TIMEOUT)
            except RemotingError as exc:
                raise OSError(f"master {addr}: {exc}") from exc
            if reply.code == ResponseCode.SUCCESS:
                return bytes(reply.body)
            if reply.code == ResponseCode.SYSTEM_ERROR and NOT_FOUND in (reply.remark or ""):
                return None
            # refused (ACL, a busy broker): not an answer - cutting on it could drop the log
            raise OSError(f"master {addr} refused VIEW_MESSAGE_BY_ID: {reply.code} {reply.remark}")

        try:
            info = await client.invoke(
                addr,
                RemotingCommand.request(RequestCode.GET_BROKER_RUNTIME_INFO, {}),
                PROBE_TIMEOUT,
            )
        except RemotingError as exc:
            raise OSError(f"master {addr}: {exc}") from exc
        if info.code != ResponseCode.SUCCESS:
            raise OSError(f"master {addr}: runtime info refused: {info.remark}")
        try:
            table = decode_body(KVTable, info.body).table
            master_min = int(table.get("commitLogMinOffset", 0))
        except (ProtocolError, ValueError, TypeError) as exc:
            raise OSError(f"master {addr}: bad runtime info: {exc}") from exc
        keep = await agreed_prefix(ctx.store, probe, master_min)
    dropped = ctx.store.truncate_replicated(keep)
    if dropped:
        log.warning(
            "dropped %d bytes from %d on: the new master %s has other records there",
            dropped,
            keep,
            addr,
        )
    return dropped
