"""Limits for untrusted peers (issue 19): connections per address and in total, frames per
second and held request bytes per connection.  Past a limit the connection is refused or
closed with a log line; other connections go on.  Real loopback sockets."""

from __future__ import annotations

from functools import partial

import trio

from actors.remoting.limits import ConnectionLimits
from actors.remoting.netconfig import ServerNetConfig
from actors.remoting.server import ServerHandle, remoting_server
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import encode_command
from tests.actors.remoting.conftest import ECHO, SLOW_ECHO, RawPeer, make_router, raw_connect

T = 5


async def start(nursery: trio.Nursery, **limits: int) -> ServerHandle:
    net = ServerNetConfig(**limits)  # type: ignore[arg-type]
    net.validate()
    handle: ServerHandle = await nursery.start(
        partial(remoting_server, host="127.0.0.1", port=0, net=net), make_router()
    )
    return handle


async def roundtrip(peer: RawPeer, opaque: int = 1, body: bytes = b"x") -> RemotingCommand | None:
    await peer.stream.send_all(
        encode_command(RemotingCommand.request(ECHO, {}, body, opaque=opaque))
    )
    return await peer.receive()


async def test_connections_per_address(nursery, caplog) -> None:
    server = await start(nursery, maxConnectionsPerAddress=2)
    with trio.fail_after(T):
        first = RawPeer(await raw_connect(server.address))
        second = RawPeer(await raw_connect(server.address))
        assert await roundtrip(first) is not None
        assert await roundtrip(second) is not None
        third = RawPeer(await raw_connect(server.address))
        assert await roundtrip(third) is None  # refused: closed at once
        assert await roundtrip(first, 2) is not None  # the others are unaffected
        await first.stream.aclose()
        await trio.sleep(0.1)
        fourth = RawPeer(await raw_connect(server.address))
        assert await roundtrip(fourth) is not None  # a place became free
    assert server.limits is not None
    assert server.limits.refused == 1
    assert "maxConnectionsPerAddress=2" in caplog.text
    for peer in (second, third, fourth):
        await peer.stream.aclose()


async def test_connections_in_total(nursery) -> None:
    server = await start(nursery, maxConnections=1, maxConnectionsPerAddress=0)
    with trio.fail_after(T):
        async with await raw_connect(server.address) as a, await raw_connect(server.address) as b:
            assert await roundtrip(RawPeer(a)) is not None
            assert await roundtrip(RawPeer(b)) is None


async def test_frame_rate(nursery, caplog) -> None:
    server = await start(nursery, maxFramesPerSecond=20)
    with trio.fail_after(T):
        async with (
            await raw_connect(server.address) as flood,
            await raw_connect(server.address) as calm,
        ):
            burst = b"".join(
                encode_command(RemotingCommand.request(ECHO, {}, b"", opaque=i)) for i in range(100)
            )
            await flood.send_all(burst)
            peer = RawPeer(flood)
            answered = 0
            while await peer.receive() is not None:
                answered += 1
            assert answered <= 100  # closed within the read that went over
            quiet = RawPeer(calm)
            for i in range(5):
                assert await roundtrip(quiet, i) is not None
    assert "more than 20 frames within a second" in caplog.text


async def test_frame_rate_within_the_limit_is_never_closed(nursery, autojump_clock) -> None:
    # 15 frames every second, for 5 seconds, under a limit of 20 per second.
    server = await start(nursery, maxFramesPerSecond=20)
    async with await raw_connect(server.address) as stream:
        peer = RawPeer(stream)
        for second in range(5):
            for i in range(15):
                assert await roundtrip(peer, second * 100 + i) is not None
            await trio.sleep(1)


async def test_memory_per_connection(nursery, caplog) -> None:
    server = await start(nursery, maxConnectionMemoryBytes=64 * 1024)
    with trio.fail_after(T):
        async with (
            await raw_connect(server.address) as hog,
            await raw_connect(server.address) as other,
        ):
            # Half of a 10 MB frame: the decoder would hold it all before anything is answered.
            frame = encode_command(RemotingCommand.request(ECHO, {}, b"y" * 10_000_000))
            try:
                await hog.send_all(frame[:200_000])
            except trio.BrokenResourceError:
                pass
            assert await RawPeer(hog).receive() is None
            # Requests held by slow handlers count too.
            slow = b"".join(
                encode_command(
                    RemotingCommand.request(SLOW_ECHO, {"delay": "2"}, b"z" * 20_000, opaque=i)
                )
                for i in range(5)
            )
            async with await raw_connect(server.address) as held:
                await held.send_all(slow)
                assert await RawPeer(held).receive() is None
            assert await roundtrip(RawPeer(other), body=b"small") is not None
    assert "bytes of requests held" in caplog.text


async def test_limits_release_their_counts() -> None:
    limits = ConnectionLimits(max_total=2, max_per_address=1)
    assert limits.admit("a", "t")
    assert not limits.admit("a", "t")
    assert limits.admit("b", "t")
    assert not limits.admit("c", "t")
    limits.release("a")
    assert limits.admit("c", "t")
    assert limits.per_address == {"b": 1, "c": 1}
    assert limits.total == 2


async def test_defaults_do_not_get_in_the_way(nursery) -> None:
    server = await start(nursery)
    async with trio.open_nursery() as clients:
        for _ in range(20):
            clients.start_soon(_one_roundtrip, server.address)


async def _one_roundtrip(addr: str) -> None:
    with trio.fail_after(T):
        async with await raw_connect(addr) as stream:
            reply = await roundtrip(RawPeer(stream))
            assert reply is not None
            assert reply.code == ResponseCode.SUCCESS
