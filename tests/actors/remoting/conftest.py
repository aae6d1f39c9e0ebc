"""Shared pieces for remoting tests: a test router, a loopback server, raw frame I/O."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from actors.remoting.client import split_address
from actors.remoting.router import RequestContext, RequestError, Router
from actors.remoting.server import ServerHandle, remoting_server
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder

ECHO = 1001  # inline: echoes body and ext fields
SLOW_ECHO = 1002  # spawned: sleeps ext "delay" seconds, then echoes
FAIL = 1003  # raises RequestError(TOPIC_NOT_EXIST)
CRASH = 1004  # raises a plain exception
CALL_BACK = 1005  # server -> client invoke of code NOTIFY on the same connection
NOTIFY = 40
MAX_FRAME = 64 * 1024


async def echo(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    return req.reply(ResponseCode.SUCCESS, "echo", dict(req.ext_fields), req.body)


async def slow_echo(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    await trio.sleep(float(req.ext_fields.get("delay", "0")))
    return req.reply(ResponseCode.SUCCESS, "slow", dict(req.ext_fields), req.body)


async def fail(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    raise RequestError(ResponseCode.TOPIC_NOT_EXIST, "no such topic")


async def crash(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    raise ZeroDivisionError("bug")


async def call_back(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    answer = await ctx.channel.invoke(RemotingCommand.request(NOTIFY, {"q": "hello"}), 2.0)
    return req.reply(ResponseCode.SUCCESS, answer.remark, dict(answer.ext_fields), answer.body)


def make_router() -> Router:
    router = Router("test")
    router.register(ECHO, echo, inline=True)
    router.register(SLOW_ECHO, slow_echo, limit=1000)
    router.register(FAIL, fail, inline=True)
    router.register(CRASH, crash)
    router.register(CALL_BACK, call_back)
    return router


@pytest.fixture
async def server(nursery: trio.Nursery) -> ServerHandle:
    handle: ServerHandle = await nursery.start(
        partial(remoting_server, host="127.0.0.1", port=0, max_frame_size=MAX_FRAME),
        make_router(),
    )
    return handle


async def raw_connect(addr: str) -> trio.SocketStream:
    host, port = split_address(addr)
    return await trio.open_tcp_stream(host, port)


class RawPeer:
    """A socket speaking frames by hand, to send what a well-behaved client would not."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.decoder = FrameDecoder()

    async def receive(self) -> RemotingCommand | None:
        """The next command, or None when the server closed the connection."""
        while (cmd := self.decoder.next_command()) is None:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                return None
            if not data:
                return None
            self.decoder.feed(data)
        return cmd
