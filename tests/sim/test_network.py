"""The simulated network under the real remoting server and client (autojump clock)."""

from __future__ import annotations

import functools
import random

import pytest
import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.errors import RemotingConnectError, RemotingError, RemotingTimeoutError
from actors.remoting.server import remoting_server
from actors.remoting.transport import current_transport, use_transport
from protocol.command import RemotingCommand
from tests.actors.remoting.conftest import ECHO, SLOW_ECHO, make_router
from tests.sim.network import SimNetwork, SimStream


async def serve(nursery: trio.Nursery, net: SimNetwork, host: str, port: int = 9000):
    return await nursery.start(
        functools.partial(
            remoting_server, make_router(), host=host, port=port, transport=net.node(host)
        )
    )


def echo(body: bytes = b"x", **fields: str) -> RemotingCommand:
    return RemotingCommand.request(ECHO, dict(fields), body=body)


async def test_request_and_reply_cross_the_link_latency(nursery, autojump_clock):
    net = SimNetwork(random.Random(1), latency=0.010, jitter=0.0)
    server = await serve(nursery, net, "10.0.0.1")
    assert server.address == "10.0.0.1:9000"
    async with open_remoting_client(transport=net.node("10.0.0.2")) as client:
        await client.invoke("10.0.0.1:9000", echo(), 5)  # connect first
        start = trio.current_time()
        reply = await client.invoke("10.0.0.1:9000", echo(b"hello", k="v"), 5)
        took = trio.current_time() - start
    assert reply.body == b"hello"
    assert reply.ext_fields["k"] == "v"
    assert took == pytest.approx(0.020)  # one way each, no jitter


async def test_handlers_see_the_simulated_peer_address(nursery, autojump_clock):
    net = SimNetwork(random.Random(1))
    server = await serve(nursery, net, "10.0.0.1")
    async with open_remoting_client(transport=net.node("10.0.0.7")) as client:
        await client.invoke(server.address, echo(), 5)
        (conn,) = server.channels
    assert conn.peer.startswith("10.0.0.7:")
    assert conn.local == "10.0.0.1:9000"


async def test_the_current_transport_is_inherited_by_spawned_tasks(nursery, autojump_clock):
    net = SimNetwork(random.Random(1))
    node = net.node("10.0.0.3")
    seen: list[object] = []

    async def child() -> None:
        seen.append(current_transport())

    with use_transport(node):
        async with trio.open_nursery() as inner:
            inner.start_soon(child)
    seen.append(current_transport())
    assert seen[0] is node
    assert seen[1] is not node


async def test_connection_refused_without_listener(autojump_clock):
    net = SimNetwork(random.Random(1))
    async with open_remoting_client(transport=net.node("10.0.0.2")) as client:
        with pytest.raises(RemotingConnectError, match="refused"):
            await client.invoke("10.0.0.1:9000", echo(), 5)


async def test_partition_holds_bytes_until_heal_and_connect_times_out(nursery, autojump_clock):
    net = SimNetwork(random.Random(1))
    await serve(nursery, net, "10.0.0.1")
    async with open_remoting_client(transport=net.node("10.0.0.2")) as client:
        await client.invoke("10.0.0.1:9000", echo(), 5)
        net.partition("10.0.0.1", "10.0.0.2")
        with pytest.raises(RemotingTimeoutError):
            await client.invoke("10.0.0.1:9000", echo(), 2)
        # held, not lost: after the heal the same connection answers again
        async with trio.open_nursery() as n:
            results: list[bytes] = []

            async def call() -> None:
                results.append((await client.invoke("10.0.0.1:9000", echo(b"late"), 30)).body)

            n.start_soon(call)
            await trio.sleep(10)
            assert results == []
            net.heal("10.0.0.1", "10.0.0.2")
        assert results == [b"late"]
        # a new connection across a partition hangs until the connect timeout
        client.close_channel("10.0.0.1:9000")
        await trio.sleep(1)
        net.partition("10.0.0.1", "10.0.0.2")
        start = trio.current_time()
        with pytest.raises(RemotingConnectError, match="timed out"):
            await client.invoke("10.0.0.1:9000", echo(), 2)
        assert trio.current_time() - start == pytest.approx(2.0)


async def test_reset_fails_pending_requests_at_once(nursery, autojump_clock):
    net = SimNetwork(random.Random(1))
    await serve(nursery, net, "10.0.0.1")
    async with open_remoting_client(transport=net.node("10.0.0.2")) as client:
        await client.invoke("10.0.0.1:9000", echo(), 5)
        errors: list[BaseException] = []

        async def slow() -> None:
            cmd = RemotingCommand.request(SLOW_ECHO, {"delay": "20"})
            try:
                await client.invoke("10.0.0.1:9000", cmd, 60)
            except RemotingError as exc:
                errors.append(exc)

        async with trio.open_nursery() as n:
            n.start_soon(slow)
            await trio.sleep(1)
            start = trio.current_time()
            assert net.reset("10.0.0.2") == 1
        assert trio.current_time() - start < 0.1
        assert len(errors) == 1
        assert "reset" in str(errors[0])
        # the client reconnects on the next request
        assert (await client.invoke("10.0.0.1:9000", echo(b"again"), 5)).body == b"again"


async def test_host_down_resets_and_refuses(nursery, autojump_clock):
    net = SimNetwork(random.Random(1))
    await serve(nursery, net, "10.0.0.1")
    async with open_remoting_client(transport=net.node("10.0.0.2")) as client:
        await client.invoke("10.0.0.1:9000", echo(), 5)
        net.down("10.0.0.1")
        with pytest.raises(RemotingError):
            await client.invoke("10.0.0.1:9000", echo(), 5)
        net.up("10.0.0.1")
        with pytest.raises(RemotingConnectError, match="refused"):  # nobody listens any more
            await client.invoke("10.0.0.1:9000", echo(), 5)


async def test_silent_down_gives_no_error_only_timeouts(nursery, autojump_clock):
    net = SimNetwork(random.Random(1))
    await serve(nursery, net, "10.0.0.1")
    async with open_remoting_client(transport=net.node("10.0.0.2")) as client:
        await client.invoke("10.0.0.1:9000", echo(), 5)
        net.down("10.0.0.1", silent=True)
        start = trio.current_time()
        with pytest.raises(RemotingTimeoutError):
            await client.invoke("10.0.0.1:9000", echo(), 5)
        assert trio.current_time() - start == pytest.approx(5.0)


async def test_jitter_reorders_across_connections_never_within_one(autojump_clock):
    net = SimNetwork(random.Random(7), latency=0.001, jitter=0.010)
    arrivals: list[tuple[int, int]] = []
    listening = await net.node("10.0.0.1").listen("10.0.0.1", 9000)
    (listener,) = listening.listeners

    async def reader(stream: SimStream) -> None:
        while data := await stream.receive_some(2):
            arrivals.append((data[0], data[1]))  # (connection, sequence), 2-byte writes

    async with trio.open_nursery() as n:
        clients = [await net.node(f"10.0.1.{i}").connect("10.0.0.1", 9000) for i in range(2)]
        for _ in clients:
            n.start_soon(reader, await listener.accept())
        for seq in range(50):
            for i, stream in enumerate(clients):
                await stream.send_all(bytes([i, seq]))
        for stream in clients:
            await stream.aclose()
    for i in range(2):
        assert [s for c, s in arrivals if c == i] == list(range(50))
    assert arrivals != sorted(arrivals, key=lambda a: (a[1], a[0])), "no overtaking at all"


async def test_send_all_waits_for_the_reader_beyond_the_buffer(autojump_clock):
    net = SimNetwork(random.Random(1), buffer_limit=1000)
    (listener,) = (await net.node("10.0.0.1").listen("10.0.0.1", 9000)).listeners
    client = await net.node("10.0.0.2").connect("10.0.0.1", 9000)
    server = await listener.accept()
    await client.send_all(b"a" * 1000)
    with trio.move_on_after(5) as blocked:
        await client.send_all(b"b")
    assert blocked.cancelled_caught
    assert len(await server.receive_some(2000)) == 1000
    await client.send_all(b"b")
    assert await server.receive_some(10) == b"b"


async def test_requests_without_an_answer_are_recorded(nursery, autojump_clock):
    from tests.sim.history import History, Violation
    from tests.sim.requests import answers_recorded

    net = SimNetwork(random.Random(1))
    await serve(nursery, net, "10.0.0.1")
    history = History()
    with answers_recorded(history):
        async with open_remoting_client(transport=net.node("10.0.0.2")) as client:
            await client.invoke("10.0.0.1:9000", echo(), 5)  # answered: nothing recorded
            history.check()
            net.partition("10.0.0.1", "10.0.0.2")
            with pytest.raises(RemotingTimeoutError):
                await client.invoke("10.0.0.1:9000", echo(), 2)
    assert [(addr, code) for _, addr, code, _ in history.unanswered] == [("10.0.0.1:9000", ECHO)]
    with pytest.raises(Violation, match="unanswered: request"):
        history.check()
