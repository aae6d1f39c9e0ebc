"""Router.after_read: the reader's once-per-read call, and who counts as that reader."""

from __future__ import annotations

from functools import partial

import trio

from actors.remoting.router import RequestContext, Router, in_reader_task
from actors.remoting.server import ServerHandle, remoting_server
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import encode_command
from tests.actors.remoting.conftest import RawPeer, raw_connect
from tests.actors.remoting.test_backpressure import wait_for

INLINE, SPAWNED = 1001, 1002


async def test_the_reader_calls_after_read_once_per_read_and_when_it_stops(
    nursery: trio.Nursery,
) -> None:
    """The broker dispatches there what a read's requests appended (reput.InlineDispatch);
    an append made by a spawned handler is no reader's, so it wakes the reput actor itself."""
    seen: list[tuple[int, bool]] = []
    calls: list[int] = []

    async def record(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        seen.append((req.code, in_reader_task()))
        return req.reply(ResponseCode.SUCCESS, None)

    router = Router("test")
    router.register(INLINE, record, inline=True)
    router.register(SPAWNED, record)
    router.after_read = lambda: calls.append(len(seen))
    server: ServerHandle = await nursery.start(
        partial(remoting_server, host="127.0.0.1", port=0), router
    )
    peer = RawPeer(await raw_connect(server.address))
    frames = [RemotingCommand.request(INLINE, {}) for _ in range(3)]
    await peer.stream.send_all(b"".join(encode_command(f) for f in frames))  # one write
    for _ in range(3):
        assert await peer.receive() is not None
    await peer.stream.send_all(encode_command(RemotingCommand.request(SPAWNED, {})))
    assert await peer.receive() is not None
    assert seen == [(INLINE, True)] * 3 + [(SPAWNED, False)]
    assert not in_reader_task()  # nor is the test's own task
    # after the read that carried the three frames (a read may also end mid-frame: a call
    # with nothing new is allowed, and cheap)
    await wait_for(lambda: 3 in calls)
    before = len(calls)
    await peer.stream.aclose()
    await wait_for(lambda: len(calls) > before)  # and once more when the reader stops
