"""A bare RocketMQ remoting connection: the project's codec over a plain trio TCP stream.

Deliberately independent of our client and remoting actors, so the compat tests judge a server
only by the bytes it sends back.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder, encode_command

_opaques = itertools.count(1)


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


@attrs.define
class RawConnection:
    stream: trio.SocketStream
    decoder: FrameDecoder = attrs.Factory(FrameDecoder)
    # Server-initiated requests (e.g. NOTIFY_CONSUMER_IDS_CHANGED) seen while waiting for replies.
    server_requests: list[RemotingCommand] = attrs.Factory(list)

    async def _next(self) -> RemotingCommand:
        while (cmd := self.decoder.next_command()) is None:
            data = await self.stream.receive_some(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.decoder.feed(data)
        return cmd

    async def call(self, request: RemotingCommand, timeout: float = 10.0) -> RemotingCommand:
        """Send ``request`` with a fresh opaque and return the response carrying that opaque."""
        request = request.with_opaque(next(_opaques))
        await self.stream.send_all(encode_command(request))
        with trio.fail_after(timeout):
            while True:
                cmd = await self._next()
                if cmd.is_response and cmd.opaque == request.opaque:
                    return cmd
                if not cmd.is_response:
                    self.server_requests.append(cmd)

    async def next_request(self, code: int, timeout: float = 10.0) -> RemotingCommand:
        """The next server-initiated request with ``code`` (one seen earlier counts)."""
        for i, cmd in enumerate(self.server_requests):
            if cmd.code == code:
                return self.server_requests.pop(i)
        with trio.fail_after(timeout):
            while True:
                cmd = await self._next()
                if not cmd.is_response and cmd.code == code:
                    return cmd
                if not cmd.is_response:
                    self.server_requests.append(cmd)

    async def oneway(self, request: RemotingCommand) -> None:
        await self.stream.send_all(encode_command(request.with_opaque(next(_opaques))))


@asynccontextmanager
async def connect(addr: str) -> AsyncIterator[RawConnection]:
    host, port = split_addr(addr)
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        yield RawConnection(stream)
