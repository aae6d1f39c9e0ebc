"""The broker's connections against peers that misbehave (issue 13, defects 3, 4, 5 and 7).

Real loopback sockets written by hand: a consumer that pipelines pulls of a large message and
never reads, a producer that sends and resets at once, and header values Java would refuse.
"""

from __future__ import annotations

import functools
import gc
import json
import socket
import struct
import tracemalloc
import weakref

import trio
import trio.testing

from actors.broker.clients import build_subscription
from actors.broker.handlers import pull as pull_handler
from actors.broker.long_polling import CHECK_INTERVAL, HeldPull, PullHoldTable, long_polling
from actors.remoting.connection import WRITE_HIGH_WATER
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import encode_command
from protocol.message import decode_records, properties_to_string
from tests.actors.broker.wire import props, pull, send_v2
from tests.actors.remoting.conftest import RawPeer, raw_connect
from tests.actors.remoting.test_backpressure import unsent, wait_for

T = 5
BIG = 256 * 1024


async def test_pipelined_pulls_of_a_large_message_stay_within_the_write_limit(
    broker_handle, client
) -> None:
    """300 pulls of a 256 KiB message, replies never read: 75 MiB of replies if all were
    built; the broker holds at most the write limit plus one reply for that connection."""
    addr = broker_handle.address
    reply = await client.invoke(addr, send_v2("BigTopic", b"m" * BIG), T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    await wait_for(lambda: broker_handle.ctx.store.dispatch_behind_bytes() == 0)
    server = broker_handle.server
    before = set(server.channels)
    peer = RawPeer(await raw_connect(addr))
    requests = 300
    frame = encode_command(pull("BigTopic", sys_flag=0x4))
    with trio.fail_after(60):
        await peer.stream.send_all(frame * requests)
        await wait_for(lambda: len(server.channels - before) == 1)
        [conn] = server.channels - before
        await trio.testing.wait_all_tasks_blocked(cushion=0.2)
        assert conn.queued_bytes > WRITE_HIGH_WATER // 2  # it did stall on our socket
        # Others are served meanwhile.
        ok = await client.invoke(addr, send_v2("OtherTopic"), T)
        assert ok.code == ResponseCode.SUCCESS
        # Reading lets everything through: 300 complete answers.
        for _ in range(requests):
            answer = await peer.receive()
            assert answer is not None
            assert answer.code == ResponseCode.SUCCESS
            [msg] = decode_records(answer.body)
            assert len(msg.body) == BIG
        assert conn.peak_queued_bytes <= WRITE_HIGH_WATER + BIG + 4096
        ref = weakref.ref(conn)
        del conn
        await peer.stream.aclose()
        await wait_for(lambda: server.channels <= before)
    gc.collect()
    assert ref() is None  # its buffers went with it


async def test_sends_of_a_peer_that_resets_at_once_are_all_stored(broker_handle, client) -> None:
    """The issue's case, made deterministic: a peer that does not read its replies (here
    pulls of a large message keep the broker's writer stuck), sends 100 SEND_MESSAGE_V2
    (flag 0) and resets.  Every send that reached the broker is stored, though no reply
    can be written any more."""
    addr = broker_handle.address
    reply = await client.invoke(addr, send_v2("StuckTopic", b"m" * BIG), T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    await wait_for(lambda: broker_handle.ctx.store.dispatch_behind_bytes() == 0)
    server, store = broker_handle.server, broker_handle.ctx.store
    before = set(server.channels)
    stream = await raw_connect(addr)
    requests = 100
    with trio.fail_after(30):
        await stream.send_all(encode_command(pull("StuckTopic", sys_flag=0x4)) * 40)
        await wait_for(lambda: len(server.channels - before) == 1)
        [conn] = server.channels - before
        await wait_for(lambda: conn.queued_bytes > WRITE_HIGH_WATER)  # its writes are stuck
        sends = b"".join(encode_command(send_v2("FloodTopic")) for _ in range(requests))
        await stream.send_all(sends)
        await wait_for(lambda: unsent(stream.socket) == 0)  # all in the broker's kernel
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()
        await wait_for(lambda: server.channels <= before)  # the broker is done with it
        await wait_for(lambda: store.dispatch_behind_bytes() == 0)
    assert store.max_offset_in_queue("FloodTopic", 0) == requests


def _json_frame(cmd: RemotingCommand) -> bytes:
    """``cmd`` as a JSON frame written by json.dumps, which escapes a lone surrogate as
    ``\\ud800`` (a peer can send that; our own encoder would write "?")."""
    header = {
        "code": cmd.code,
        "language": "JAVA",
        "version": 0,
        "opaque": 7,
        "flag": 0,
        "extFields": cmd.ext_fields,
    }
    head = json.dumps(header).encode()
    return struct.pack(">ii", 4 + len(head) + len(cmd.body), len(head)) + head + cmd.body


async def _ask(peer: RawPeer, cmd: RemotingCommand) -> RemotingCommand:
    await peer.stream.send_all(_json_frame(cmd))
    reply = await peer.receive()
    assert reply is not None, "the broker closed the connection"
    return reply


async def test_out_of_range_and_unencodable_header_values_get_a_clear_error(
    broker_handle,
) -> None:
    addr = broker_handle.address
    store, offsets = broker_handle.ctx.store, broker_handle.ctx.offsets
    peer = RawPeer(await raw_connect(addr))
    with trio.fail_after(20):
        reply = await _ask(peer, send_v2("RangeTopic", g=str(10**30)))
        assert reply.code == ResponseCode.SYSTEM_ERROR
        assert "bornTimestamp" in (reply.remark or "")
        assert "out of the range of a Java long" in (reply.remark or "")

        reply = await _ask(peer, send_v2("RangeTopic", e=str(2**31)))
        assert reply.code == ResponseCode.SYSTEM_ERROR
        assert "queueId" in (reply.remark or "")

        bad_props = properties_to_string(props(k="a\ud800b"))
        reply = await _ask(peer, send_v2("RangeTopic", i=bad_props))
        assert reply.code == ResponseCode.SYSTEM_ERROR
        assert "property 'k' has a lone surrogate U+D800" in (reply.remark or "")

        update = RemotingCommand.request(
            RequestCode.UPDATE_CONSUMER_OFFSET,
            {
                "consumerGroup": "cg",
                "topic": "RangeTopic",
                "queueId": "0",
                "commitOffset": str(10**30),
            },
        )
        reply = await _ask(peer, update)
        assert reply.code == ResponseCode.SYSTEM_ERROR
        assert "commitOffset" in (reply.remark or "")

        # The same connection goes on, and nothing of the refused requests was kept.
        reply = await _ask(peer, send_v2("RangeTopic"))
        assert reply.code == ResponseCode.SUCCESS, reply.remark
        assert reply.ext_fields["queueOffset"] == "0"
        await wait_for(lambda: store.dispatch_behind_bytes() == 0)
    assert sum(store.max_offset_in_queue("RangeTopic", q) for q in range(8)) == 1
    assert offsets.offsets("cg", "RangeTopic") == {}
    await peer.stream.aclose()


async def test_held_pulls_per_connection_are_bounded(broker_handle, client, monkeypatch) -> None:
    """Long polling holds a request per pull; a connection may hold only so many."""
    monkeypatch.setattr(pull_handler, "MAX_HELD_PER_CONNECTION", 8)
    created = await client.invoke(broker_handle.address, send_v2("HoldTopic", queue_id=1), T)
    assert created.code == ResponseCode.SUCCESS  # the topic exists; queue 0 stays empty
    peer = RawPeer(await raw_connect(broker_handle.address))
    frames = b"".join(
        encode_command(pull("HoldTopic", queue_id=0, sys_flag=0x2 | 0x4, suspend_ms=60_000))
        for _ in range(9)
    )
    with trio.fail_after(20):
        await peer.stream.send_all(frames)
        reply = await peer.receive()  # the eight are held: only the ninth is answered now
    assert reply is not None
    assert reply.code == ResponseCode.SYSTEM_BUSY
    assert "too many held pulls on this connection (at most 8)" in (reply.remark or "")
    assert len(broker_handle.ctx.holds) == 8
    await peer.stream.aclose()


async def test_pulls_released_together_do_not_pile_up_replies(broker_handle, client) -> None:
    """One arrival releases every held pull of a consumer that does not read: their large
    replies are built one at a time per connection, within the write limit."""
    addr = broker_handle.address
    server = broker_handle.server
    created = await client.invoke(addr, send_v2("WakeTopic", queue_id=1), T)
    assert created.code == ResponseCode.SUCCESS  # the topic exists; queue 0 stays empty
    before = set(server.channels)
    peer = RawPeer(await raw_connect(addr))
    held = 40
    frame = encode_command(pull("WakeTopic", sys_flag=0x2 | 0x4, suspend_ms=60_000))
    with trio.fail_after(30):
        await peer.stream.send_all(frame * held)
        await wait_for(lambda: len(broker_handle.ctx.holds) == held)
        [conn] = server.channels - before
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            reply = await client.invoke(addr, send_v2("WakeTopic", b"w" * BIG), T)
            assert reply.code == ResponseCode.SUCCESS
            await wait_for(lambda: len(broker_handle.ctx.holds) == 0)
            await wait_for(lambda: conn.queued_bytes > WRITE_HIGH_WATER)
            await trio.testing.wait_all_tasks_blocked(cushion=0.2)
            # Queued replies plus any built and waiting for their turn: one at most.
            grown = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        assert grown < WRITE_HIGH_WATER + 4 * BIG, grown
        for _ in range(held):
            answer = await peer.receive()
            assert answer is not None
            assert answer.code == ResponseCode.SUCCESS
    # Also while the peer read: room for one more reply is not room for all of them.
    assert conn.peak_queued_bytes <= WRITE_HIGH_WATER + BIG + 4096
    await peer.stream.aclose()


async def test_held_pulls_of_closed_connections_are_released_at_the_next_check(
    nursery, autojump_clock
) -> None:
    """A client may ask to be held for years; once its connection is gone the pull goes at
    the next periodic check (5 s) instead of its own deadline."""

    class Channel:
        closed = False

    live, gone = Channel(), Channel()
    table = PullHoldTable()
    for channel in (live, gone, gone):
        table.hold(
            HeldPull(
                "T", 0, 0, build_subscription("T", "*"), deadline=10**9, payload=(channel, None)
            )
        )
    resumed: list[object] = []

    async def resume(pull: HeldPull) -> None:
        resumed.append(pull.payload[0])

    _send, receive = trio.open_memory_channel[object](10)
    await nursery.start(
        functools.partial(
            long_polling,
            table,
            receive,
            resume,
            lambda topic, queue_id: 0,
            abandoned=lambda pull: bool(pull.payload[0].closed),
        )
    )
    gone.closed = True
    await trio.sleep(CHECK_INTERVAL + 1)
    assert resumed == [gone, gone]  # released to resume, which answers nobody
    assert len(table) == 1
