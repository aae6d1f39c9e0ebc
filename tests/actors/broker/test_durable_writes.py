"""Under SYNC_FLUSH, every acknowledged write waits until the flushed offset covers it (issue 13).

No flusher runs here: the flushed offset (``ctx.flushed``) moves only when a test says so, so
a handler that answers before its bytes are flushed is caught in the act.  Each write path is
driven through its real handler or service, on a real store, under virtual time.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from actors.broker.config import BrokerConfig
from actors.broker.context import BrokerContext
from actors.broker.handlers.send import SendHandler
from actors.broker.handlers.send_back import SendBackHandler
from actors.broker.persist import persist_now
from actors.remoting.router import RequestContext, Router
from actors.store.flush import group_commit_thread
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import BatchEntry, encode_batch
from storage.config import FlushDiskType
from storage.delay_offsets import FILE_NAME as DELAY_FILE
from storage.message_store import MessageInner
from tests.actors.broker.delay_harness import StoreHarness, clock_ms
from tests.actors.broker.wire import send_v2


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    # in the event loop: virtual time cannot pass while a file is half written
    return fn(*args)


@attrs.define
class _Peer:
    peer: str = "10.0.0.9:5555"


class SyncFlushBroker:
    def __init__(self, root: Path) -> None:
        self.h = StoreHarness(root, config_overrides={"flushDiskType": FlushDiskType.SYNC_FLUSH})
        config = BrokerConfig(brokerIP1="127.0.0.1", brokerName="broker-a")
        self.ctx = BrokerContext.create(config, self.h.store.config, self.h.store, now_ms=clock_ms)
        self.ctx.flushed.advance(self.h.store.flushed_offset)
        self.router = Router()
        SendHandler(self.ctx).register(self.router)
        SendBackHandler(self.ctx).register(self.router)

    async def call(self, req: RemotingCommand) -> RemotingCommand:
        reply = await self.router.dispatch(RequestContext(_Peer()), req)  # type: ignore[arg-type]
        assert reply is not None
        return reply


async def answered_only_after_flush(b: SyncFlushBroker, req: RemotingCommand) -> RemotingCommand:
    """Dispatch ``req``; check it stays unanswered until the flushed offset covers the store's
    end, then return the reply."""
    replies: list[RemotingCommand] = []

    async def call() -> None:
        replies.append(await b.call(req))

    start = b.h.store.max_phy_offset
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await trio.testing.wait_all_tasks_blocked()
        end = b.h.store.max_phy_offset
        assert end > start, "the request stored nothing"
        assert not replies, "answered before its bytes were flushed"
        b.ctx.flushed.advance(end - 1)
        await trio.testing.wait_all_tasks_blocked()
        assert not replies, "answered before its last byte was flushed"
        b.ctx.flushed.advance(end)
    [reply] = replies
    return reply


async def test_single_send_waits_for_its_flush(tmp_path: Path, autojump_clock: object) -> None:
    b = SyncFlushBroker(tmp_path)
    reply = await answered_only_after_flush(b, send_v2("T", b"x"))
    assert reply.code == ResponseCode.SUCCESS, reply.remark


async def test_batch_send_waits_for_its_flush(tmp_path: Path, autojump_clock: object) -> None:
    b = SyncFlushBroker(tmp_path)
    body = encode_batch([BatchEntry(body=b"a"), BatchEntry(body=b"b")])
    req = send_v2("T", body, m="true")
    req = RemotingCommand.request(RequestCode.SEND_BATCH_MESSAGE, req.ext_fields, body)
    reply = await answered_only_after_flush(b, req)
    assert reply.code == ResponseCode.SUCCESS, reply.remark


async def test_send_back_waits_for_its_flush(tmp_path: Path, autojump_clock: object) -> None:
    b = SyncFlushBroker(tmp_path)
    b.h.send("T", {"UNIQ_KEY": "U1"}, body=b"work")
    [original] = b.h.read("T")
    b.ctx.flushed.advance(b.h.store.max_phy_offset)
    req = RemotingCommand(
        code=RequestCode.CONSUMER_SEND_MSG_BACK,
        version=333,
        ext_fields={"offset": str(original.commit_log_offset), "group": "cg", "delayLevel": "0"},
    )
    reply = await answered_only_after_flush(b, req)
    assert reply.code == ResponseCode.SUCCESS, reply.remark


async def test_send_back_flush_timeout_is_not_success(
    tmp_path: Path, autojump_clock: object
) -> None:
    b = SyncFlushBroker(tmp_path)
    b.h.send("T", {"UNIQ_KEY": "U1"}, body=b"work")
    [original] = b.h.read("T")
    req = RemotingCommand(
        code=RequestCode.CONSUMER_SEND_MSG_BACK,
        version=333,
        ext_fields={"offset": str(original.commit_log_offset), "group": "cg", "delayLevel": "0"},
    )
    reply = await b.call(req)  # nobody flushes: syncFlushTimeout passes in virtual time
    assert reply.code == ResponseCode.SYSTEM_ERROR
    assert reply.remark == "FLUSH_DISK_TIMEOUT"


async def test_delay_offsets_persist_only_once_deliveries_are_flushed(
    tmp_path: Path, autojump_clock: object
) -> None:
    b = SyncFlushBroker(tmp_path)
    delay_file = b.ctx.config_dir / DELAY_FILE
    b.ctx.flushed.advance(b.h.store.max_phy_offset)
    # a delivery: the message put into its real topic, the level's offset moved past it
    put = b.h.store.put_message(
        MessageInner(topic="T", queue_id=0, body=b"due", born_host="10.0.0.9:5555")
    )
    assert put.append is not None
    b.ctx.delay_offsets.update(3, 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(persist_now, b.ctx, offload=inline))
        await trio.testing.wait_all_tasks_blocked()
        assert not delay_file.exists(), "offsets written before the delivery was flushed"
        b.ctx.flushed.advance(put.append.end_offset)
    assert delay_file.exists()


def test_store_announces_every_append_path(tmp_path: Path) -> None:
    h = StoreHarness(tmp_path)
    seen: list[int] = []
    h.store.add_append_hook(seen.append)
    msg = MessageInner(topic="T", queue_id=0, body=b"x", born_host="10.0.0.9:5555")
    h.store.put_message(msg)
    h.store.put_messages([msg, msg])
    assert seen == [h.store.max_phy_offset - (seen[1] - seen[0]), h.store.max_phy_offset]
    end = h.store.max_phy_offset
    data = h.store.read_replication(0, end)
    other = StoreHarness(tmp_path / "slave", config_overrides={"brokerRole": "SLAVE"})
    replicated: list[int] = []
    other.store.add_append_hook(replicated.append)
    other.store.append_replicated(0, data)
    assert replicated == [end]


def test_flush_thread_syncs_appends_nobody_rang_for(tmp_path: Path) -> None:
    """The group-commit thread also wakes on a period: bytes appended without a ring (or a
    ring lost to a race) are still flushed."""
    h = StoreHarness(tmp_path, config_overrides={"flushDiskType": FlushDiskType.SYNC_FLUSH})
    store = h.store
    ring, stop = threading.Event(), threading.Event()
    flushed: list[int] = []
    arrived = threading.Event()

    def post(offset: int) -> None:
        flushed.append(offset)
        arrived.set()

    thread = threading.Thread(target=group_commit_thread, args=(store, ring, stop, post))
    thread.start()
    try:
        put = store.put_message(
            MessageInner(topic="T", queue_id=0, body=b"quiet", born_host="10.0.0.9:5555")
        )
        assert put.append is not None
        # no ring.set(): only the period can wake the thread
        assert arrived.wait(5), "the flush thread never synced an append nobody rang for"
        assert flushed[-1] >= put.append.end_offset
    finally:
        stop.set()
        ring.set()
        thread.join(5)


async def test_send_waiting_too_long_for_a_place_gets_system_busy(
    tmp_path: Path, autojump_clock: object
) -> None:
    """Java's [TIMEOUT_CLEAN_QUEUE]: only time spent waiting for a place counts
    (waitTimeMillsInSendQueue, 200 ms), measured on the virtual clock."""
    b = SyncFlushBroker(tmp_path)
    gate = b.ctx.send_gate
    holders = [object() for _ in range(int(gate.total_tokens))]
    for holder in holders:
        gate.acquire_on_behalf_of_nowait(holder)
    replies: list[RemotingCommand] = []

    async def send() -> None:
        replies.append(await b.call(send_v2("Busy")))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await trio.sleep(0.199)
        assert not replies
        await trio.sleep(0.002)
        for holder in holders:
            gate.release_on_behalf_of(holder)
    [reply] = replies
    assert reply.code == ResponseCode.SYSTEM_BUSY
    assert reply.remark.startswith("[TIMEOUT_CLEAN_QUEUE]")
    assert b.h.store.max_phy_offset == 0  # refused, not stored
