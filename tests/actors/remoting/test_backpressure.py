"""Bounded memory per connection and no lost requests, over real loopback sockets.

A peer that pipelines requests and never reads its replies is stopped by TCP back pressure
with at most the write limit (plus one reply, or one per spawned handler) buffered; a peer
that sends and closes at once still has every complete request served.
"""

from __future__ import annotations

import fcntl
import gc
import socket
import struct
import termios
import weakref
from functools import partial

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from actors.remoting.client import open_remoting_client
from actors.remoting.connection import JOIN_LIMIT, Connection, _chunks
from actors.remoting.router import RequestContext, Router
from actors.remoting.server import ServerHandle, remoting_server
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import encode_command
from tests.actors.remoting.conftest import ECHO, RawPeer, echo, raw_connect

BIG = 2001  # inline, answers REPLY_SIZE bytes
BIG_SPAWNED = 2002  # the same, spawned
RECORD = 2003  # inline, records the request's "n" (0 waits for a gate), answers 4 KiB
RECORD_SPAWNED = 2004  # the same, spawned
REPLY_SIZE = 64 * 1024
LIMIT = 256 * 1024
MAX_SPAWNED = 8


class Served:
    def __init__(self) -> None:
        self.count = 0
        self.numbers: list[int] = []
        self.entered = trio.Event()
        self.gate = trio.Event()

    async def big(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        self.count += 1
        return req.reply(ResponseCode.SUCCESS, "big", body=b"b" * REPLY_SIZE)

    async def record(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        n = int(req.ext_fields["n"])
        if n == 0:
            self.entered.set()
            await self.gate.wait()
        self.numbers.append(n)
        return req.reply(ResponseCode.SUCCESS, "ok", body=b"r" * 4096)


async def start_server(nursery: trio.Nursery, served: Served) -> ServerHandle:
    router = Router("backpressure")
    router.register(ECHO, echo, inline=True)
    router.register(BIG, served.big, inline=True)
    router.register(BIG_SPAWNED, served.big)
    router.register(RECORD, served.record, inline=True)
    router.register(RECORD_SPAWNED, served.record, limit=1000)
    handle: ServerHandle = await nursery.start(
        partial(
            remoting_server,
            host="127.0.0.1",
            port=0,
            write_limit=LIMIT,
            max_spawned=MAX_SPAWNED,
        ),
        router,
    )
    return handle


async def wait_for(predicate: object, seconds: float = 10) -> None:
    with trio.fail_after(seconds):
        # Kernel socket state and other connections' progress have no event to wait on.
        while not predicate():  # type: ignore[operator]  # noqa: ASYNC110
            await trio.sleep(0.005)


@pytest.mark.parametrize(("code", "bound"), [(BIG, 1), (BIG_SPAWNED, MAX_SPAWNED)])
async def test_a_peer_that_pipelines_and_never_reads_meets_back_pressure(
    nursery: trio.Nursery, code: int, bound: int
) -> None:
    served = Served()
    server = await start_server(nursery, served)
    peer = RawPeer(await raw_connect(server.address))
    requests = 300
    frame = encode_command(RemotingCommand.request(code, {"q": "x"}))
    with trio.fail_after(20):
        await peer.stream.send_all(frame * requests)  # 300 requests in one write
        await wait_for(lambda: len(server.channels) == 1)
        [conn] = server.channels
        # Let the server go as far as it can: it is stuck writing replies nobody reads.
        await trio.testing.wait_all_tasks_blocked(cushion=0.1)
        highest = conn.peak_queued_bytes
        assert 0 < served.count < requests  # it stopped reading: back pressure reached us
        reply_frame = REPLY_SIZE + 200
        assert highest <= LIMIT + bound * reply_frame, (highest, served.count)

        # Other connections are served meanwhile.
        async with open_remoting_client() as client:
            answer = await client.invoke(server.address, RemotingCommand.request(ECHO), 5)
            assert answer.code == ResponseCode.SUCCESS

        # Reading the replies lets the rest through, in order and complete: nothing dropped.
        for _ in range(requests):
            reply = await peer.receive()
            assert reply is not None
            assert reply.code == ResponseCode.SUCCESS
            assert len(reply.body) == REPLY_SIZE
        assert served.count == requests
        assert conn.queued_bytes == 0

        # Closing leaves nothing behind: the connection and its buffers are freed.
        ref = weakref.ref(conn)
        del conn
        await peer.stream.aclose()
        await wait_for(lambda: not server.channels)
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("code", [RECORD, RECORD_SPAWNED])
async def test_every_request_read_is_served_when_the_peer_resets_at_once(
    nursery: trio.Nursery, code: int
) -> None:
    """A client sends requests and closes with its replies unread (a reset): every request
    that reached the server is still served although no reply can be written."""
    served = Served()
    server = await start_server(nursery, served)
    requests = 300
    frames = [
        encode_command(RemotingCommand.request(code, {"n": str(n)}, b"s" * 64))
        for n in range(requests)
    ]
    stream = await raw_connect(server.address)
    with trio.fail_after(20):
        # Request 0 holds its handler until the peer is gone, so the rest is read (inline)
        # or finishes (spawned) only after the server's writes started failing.
        await stream.send_all(frames[0])
        await served.entered.wait()
        await stream.send_all(b"".join(frames[1:]))
        await wait_for(lambda: unsent(stream.socket) == 0)  # all in the server's kernel
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()  # a reset, as closing with unread replies sends
        if code == RECORD_SPAWNED:
            await wait_for(lambda: len(served.numbers) == requests - 1)
        served.gate.set()
        await wait_for(lambda: len(served.numbers) == requests and not server.channels)
    assert sorted(served.numbers) == list(range(requests))


def unsent(sock: trio.socket.SocketType) -> int:
    """Bytes of our sends the peer's kernel has not acknowledged (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]


async def test_the_client_reader_is_bounded_too(nursery: trio.Nursery) -> None:
    """The client's connection is the same class: requests the server sends it (here a
    flood that never reads the answers) stop its reader at the limit as well."""
    served = Served()
    client_router = Router("client")
    client_router.register(BIG, served.big, inline=True)
    # A server that never reads: built from a raw listener so it can misbehave.
    accepted: list[trio.SocketStream] = []
    got = trio.Event()

    async def serve(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        got.set()
        await trio.sleep_forever()

    [listener] = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    async with open_remoting_client(client_router, write_limit=LIMIT) as client:
        with trio.fail_after(20):
            await client.invoke_oneway(f"127.0.0.1:{port}", RemotingCommand.request(ECHO))
            await got.wait()
            [stream] = accepted
            frame = encode_command(RemotingCommand.request(BIG))
            await stream.send_all(frame * 300)
            conn = client.connection(f"127.0.0.1:{port}")
            assert isinstance(conn, Connection)
            await trio.testing.wait_all_tasks_blocked(cushion=0.1)
            assert 0 < served.count < 300
            assert conn.peak_queued_bytes <= LIMIT + REPLY_SIZE + 200


@given(st.lists(st.integers(min_value=0, max_value=3 * JOIN_LIMIT), min_size=1, max_size=40))
def test_chunks_keep_every_byte_in_order_and_copy_little(sizes: list[int]) -> None:
    frames = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    chunks = list(_chunks(frames, sum(sizes)))
    assert b"".join(chunks) == b"".join(frames)
    for chunk in chunks:
        # A chunk is one whole frame (not copied) or a join of small ones.
        assert any(chunk is f for f in frames) or len(chunk) < 2 * JOIN_LIMIT
