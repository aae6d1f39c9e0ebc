"""Server and client over real loopback sockets (port 0, fail_after per test).

Tests that measure time run under autojump_clock: loopback delivers a send before the
sender blocks, so the clock only jumps when every task waits for a deadline, and the
windows are exact instead of real-clock ranges a busy machine could miss."""

from __future__ import annotations

import random
import struct
from functools import partial

import pytest
import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.errors import (
    RemotingClosedError,
    RemotingConnectError,
    RemotingError,
    RemotingSendRequestError,
    RemotingTimeoutError,
    RemotingTooManyRequestsError,
)
from actors.remoting.router import RequestContext, Router
from actors.remoting.server import ServerHandle
from protocol.codes import ResponseCode, SerializeType
from protocol.command import RemotingCommand
from protocol.frame import encode_command
from tests.actors.remoting.conftest import (
    CALL_BACK,
    CRASH,
    ECHO,
    FAIL,
    MAX_FRAME,
    NOTIFY,
    SLOW_ECHO,
    RawPeer,
    raw_connect,
)


@pytest.mark.parametrize("stype", [SerializeType.JSON, SerializeType.ROCKETMQ])
async def test_reply_in_the_request_serialize_type(
    server: ServerHandle, stype: SerializeType
) -> None:
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            req = RemotingCommand.request(ECHO, {"topic": "T"}, b"body", serialize_type=stype)
            reply = await client.invoke(server.address, req, 2)
            assert reply.serialize_type is stype
            assert reply.is_response
            assert (reply.code, reply.remark, reply.ext_fields, reply.body) == (
                ResponseCode.SUCCESS,
                "echo",
                {"topic": "T"},
                b"body",
            )
            # Errors are answered in the request's type as well (C++ clients need it).
            unknown = await client.invoke(
                server.address, RemotingCommand.request(4242, serialize_type=stype), 2
            )
            assert unknown.serialize_type is stype
            assert unknown.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
            assert unknown.remark == " request type 4242 not supported"


async def test_handler_errors_become_responses(server: ServerHandle) -> None:
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            failed = await client.invoke(server.address, RemotingCommand.request(FAIL), 2)
            assert (failed.code, failed.remark) == (ResponseCode.TOPIC_NOT_EXIST, "no such topic")
            crashed = await client.invoke(server.address, RemotingCommand.request(CRASH), 2)
            assert crashed.code == ResponseCode.SYSTEM_ERROR
            assert "ZeroDivisionError" in (crashed.remark or "")


async def test_many_concurrent_requests_with_interleaved_replies(server: ServerHandle) -> None:
    rng = random.Random(7)
    results: dict[int, RemotingCommand] = {}

    with trio.fail_after(10):
        async with open_remoting_client() as client:

            async def one(i: int) -> None:
                # Random delays make the server answer out of request order.
                code = SLOW_ECHO if i % 2 else ECHO
                ext = {"i": str(i), "delay": f"{rng.random() * 0.05:.4f}"}
                req = RemotingCommand.request(code, ext, str(i).encode() * 10)
                results[i] = await client.invoke(server.address, req, 5)

            async with trio.open_nursery() as nursery:
                for i in range(300):
                    nursery.start_soon(one, i)
            assert len(server.channels) == 1  # all on one connection
    for i, reply in results.items():
        assert reply.ext_fields["i"] == str(i)
        assert reply.body == str(i).encode() * 10
    assert len({reply.opaque for reply in results.values()}) == 300


async def test_timeout_then_late_reply_dropped_and_connection_reused(
    server: ServerHandle, autojump_clock: trio.abc.Clock
) -> None:
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            slow = RemotingCommand.request(SLOW_ECHO, {"delay": "0.3"})
            t0 = trio.current_time()
            with pytest.raises(RemotingTimeoutError) as info:
                await client.invoke(server.address, slow, 0.1)
            assert trio.current_time() - t0 == pytest.approx(0.1)  # exactly its timeout
            assert isinstance(info.value, TimeoutError)
            conn = client.connection(server.address)
            assert conn is not None
            assert conn.pending_count == 0
            # The late reply arrives while this request waits; it must not be taken for
            # this one's reply (opaques differ) and must not break the connection.
            reply = await client.invoke(
                server.address, RemotingCommand.request(SLOW_ECHO, {"delay": "0.4", "n": "2"}), 2
            )
            assert reply.ext_fields["n"] == "2"
            assert client.connection(server.address) is conn


async def test_lost_connection_fails_pending_at_once_then_reconnects(
    server: ServerHandle, autojump_clock: trio.abc.Clock
) -> None:
    closed: list[str] = []
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            closed_event = trio.Event()

            def on_close(addr: str) -> None:
                closed.append(addr)
                closed_event.set()

            client.on_close.append(on_close)
            await client.invoke(server.address, RemotingCommand.request(ECHO), 2)
            (server_side,) = server.channels
            failures: list[BaseException] = []

            async def pending() -> None:
                req = RemotingCommand.request(SLOW_ECHO, {"delay": "30"})
                try:
                    await client.invoke(server.address, req, 30)
                except RemotingSendRequestError as exc:
                    failures.append(exc)

            t0 = trio.current_time()
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(pending)
                await trio.testing.wait_all_tasks_blocked()
                conn = client.connection(server.address)
                assert conn is not None
                assert conn.pending_count == 3
                server_side.close("test drops the client")
            assert len(failures) == 3
            assert trio.current_time() == t0  # at once, not after their 30 s timeout
            await closed_event.wait()
            assert closed == [server.address]
            # The next request opens a fresh connection.
            reply = await client.invoke(server.address, RemotingCommand.request(ECHO), 2)
            assert reply.code == ResponseCode.SUCCESS


async def test_oneway_request_gets_no_reply(server: ServerHandle) -> None:
    with trio.fail_after(5):
        stream = await raw_connect(server.address)
        peer = RawPeer(stream)
        oneway = RemotingCommand.request(ECHO, {"n": "oneway"}, opaque=11, oneway=True)
        normal = RemotingCommand.request(ECHO, {"n": "normal"}, opaque=12)
        await stream.send_all(encode_command(oneway) + encode_command(normal))
        reply = await peer.receive()
        assert reply is not None
        assert (reply.opaque, reply.ext_fields) == (12, {"n": "normal"})
        await stream.aclose()


async def test_client_oneway_reaches_the_server() -> None:
    received = trio.Event()
    seen: list[RemotingCommand] = []

    async def record(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        seen.append(req)
        received.set()
        return req.reply(ResponseCode.SUCCESS)

    from actors.remoting.server import remoting_server

    router = Router()
    router.register(ECHO, record, inline=True)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(remoting_server, router)
            async with open_remoting_client() as client:
                await client.invoke_oneway(
                    handle.address, RemotingCommand.request(ECHO, {"k": "v"})
                )
                await received.wait()
            nursery.cancel_scope.cancel()
    assert seen[0].is_oneway
    assert seen[0].ext_fields == {"k": "v"}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(struct.pack(">i", MAX_FRAME + 1), id="oversized"),
        pytest.param(struct.pack(">ii", 8, 0x00_00_FF_FF) + b"1234", id="header-overrun"),
        pytest.param(struct.pack(">ii", 6, 0x00_00_00_02) + b"{]", id="bad-json"),
        pytest.param(struct.pack(">ii", 6, 0x07_00_00_02) + b"{}", id="bad-serialize-type"),
        pytest.param(struct.pack(">i", 2), id="too-short"),
    ],
)
async def test_bad_frame_closes_that_connection_only(server: ServerHandle, bad: bytes) -> None:
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            await client.invoke(server.address, RemotingCommand.request(ECHO), 2)
            stream = await raw_connect(server.address)
            peer = RawPeer(stream)
            await stream.send_all(encode_command(RemotingCommand.request(ECHO, opaque=5)))
            first = await peer.receive()
            assert first is not None
            assert first.opaque == 5
            await stream.send_all(bad)
            assert await peer.receive() is None  # the server closed this connection
            await stream.aclose()
            # The other connection is unaffected, and the server still accepts.
            conn = client.connection(server.address)
            reply = await client.invoke(server.address, RemotingCommand.request(ECHO), 2)
            assert reply.code == ResponseCode.SUCCESS
            assert client.connection(server.address) is conn
            async with open_remoting_client() as other:
                await other.invoke(server.address, RemotingCommand.request(ECHO), 2)


async def test_server_invokes_the_client_on_its_connection(server: ServerHandle) -> None:
    async def notified(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return req.reply(ResponseCode.SUCCESS, "client says hi", {"got": req.ext_fields["q"]})

    client_router = Router("client")
    client_router.register(NOTIFY, notified, inline=True)
    with trio.fail_after(5):
        async with open_remoting_client(client_router) as client:
            reply = await client.invoke(server.address, RemotingCommand.request(CALL_BACK), 3)
            assert (reply.remark, reply.ext_fields) == ("client says hi", {"got": "hello"})
            # And directly through the server's handle of that connection.
            (channel,) = server.channels
            answer = await channel.invoke(RemotingCommand.request(NOTIFY, {"q": "again"}), 2)
            assert answer.ext_fields == {"got": "again"}


async def test_server_invoke_of_a_client_without_handler(server: ServerHandle) -> None:
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            reply = await client.invoke(server.address, RemotingCommand.request(CALL_BACK), 3)
            assert reply.code == ResponseCode.SUCCESS
            # The client's default router answered REQUEST_CODE_NOT_SUPPORTED:
            assert reply.remark == f" request type {NOTIFY} not supported"


async def test_invoke_async_delivers_reply_and_errors(server: ServerHandle) -> None:
    results: list[RemotingCommand | Exception] = []
    done = trio.Semaphore(0)

    def callback(result: RemotingCommand | Exception) -> None:
        results.append(result)
        done.release()

    with trio.fail_after(5):
        async with open_remoting_client() as client:
            client.invoke_async(
                server.address, RemotingCommand.request(ECHO, {"a": "1"}), 2, callback
            )
            client.invoke_async(
                server.address, RemotingCommand.request(SLOW_ECHO, {"delay": "1"}), 0.05, callback
            )
            await done.acquire()
            await done.acquire()
    reply, error = results
    assert isinstance(reply, RemotingCommand)
    assert reply.ext_fields == {"a": "1"}
    assert isinstance(error, RemotingTimeoutError)


async def test_connect_errors_are_typed() -> None:
    # A port that was just free: bind, read the port, close.
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with trio.fail_after(5):
        async with open_remoting_client(connect_timeout=1) as client:
            with pytest.raises(RemotingConnectError, match=f"127.0.0.1:{port}"):
                await client.invoke(f"127.0.0.1:{port}", RemotingCommand.request(ECHO), 1)
            with pytest.raises(RemotingConnectError, match="not a host:port"):
                await client.invoke("nonsense", RemotingCommand.request(ECHO), 1)


async def test_on_open_and_on_close_see_the_channel() -> None:
    from actors.remoting.server import remoting_server

    opened: list[str] = []
    closed = trio.Event()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(
                lambda task_status: remoting_server(
                    Router(),
                    host="127.0.0.1",
                    on_open=lambda ch: opened.append(ch.peer),
                    on_close=lambda ch: closed.set(),
                    task_status=task_status,
                )
            )
            async with open_remoting_client() as client:
                await client.invoke(handle.address, RemotingCommand.request(ECHO), 2)
                local = client.connection(handle.address).local  # type: ignore[union-attr]
            await closed.wait()
            nursery.cancel_scope.cancel()
    assert opened == [local]


async def test_stop_accepting_keeps_live_connections(server: ServerHandle) -> None:
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            await client.invoke(server.address, RemotingCommand.request(ECHO), 2)
            server.stop_accepting()
            await trio.testing.wait_all_tasks_blocked()
            reply = await client.invoke(server.address, RemotingCommand.request(ECHO), 2)
            assert reply.code == ResponseCode.SUCCESS
            async with open_remoting_client(connect_timeout=1) as other:
                with pytest.raises(RemotingConnectError):
                    await other.invoke(server.address, RemotingCommand.request(ECHO), 1)


async def test_held_request_answered_later_through_the_channel() -> None:
    """The long-polling pattern: the handler returns None and replies later."""
    from actors.remoting.server import remoting_server

    held: list[tuple[RequestContext, RemotingCommand]] = []
    arrived = trio.Event()

    async def hold(ctx: RequestContext, req: RemotingCommand) -> None:
        held.append((ctx, req))
        arrived.set()

    router = Router()
    router.register(11, hold, inline=True)
    result: list[RemotingCommand] = []
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(partial(remoting_server, host="127.0.0.1"), router)
            async with open_remoting_client() as client:

                async def pull() -> None:
                    req = RemotingCommand.request(11, {"queueId": "0"})
                    result.append(await client.invoke(handle.address, req, 3))

                async with trio.open_nursery() as pulls:
                    pulls.start_soon(pull)
                    await arrived.wait()
                    ctx, req = held[0]
                    await ctx.channel.send(req.reply(ResponseCode.SUCCESS, "FOUND", body=b"msgs"))
            nursery.cancel_scope.cancel()
    assert (result[0].remark, result[0].body) == ("FOUND", b"msgs")


async def test_close_channel_fails_pending_at_once(server: ServerHandle) -> None:
    with trio.fail_after(5):
        async with open_remoting_client() as client:
            await client.invoke(server.address, RemotingCommand.request(ECHO), 2)
            errors: list[Exception] = []

            async def waiting() -> None:
                req = RemotingCommand.request(SLOW_ECHO, {"delay": "10"})
                try:
                    await client.invoke(server.address, req, 10)
                except RemotingSendRequestError as exc:
                    errors.append(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(waiting)
                await trio.testing.wait_all_tasks_blocked()
                client.close_channel(server.address)
            assert len(errors) == 1
            assert "closed by client" in str(errors[0])


async def test_shutdown_gives_in_flight_requests_a_grace_period(
    autojump_clock: trio.abc.Clock,
) -> None:
    from actors.remoting.server import remoting_server

    both_arrived = trio.Semaphore(0)

    async def sleepy(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        both_arrived.release()
        await trio.sleep(float(req.ext_fields["delay"]))
        return req.reply(ResponseCode.SUCCESS)

    router = Router()
    router.register(SLOW_ECHO, sleepy)
    outcomes: dict[str, RemotingCommand | Exception] = {}
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(partial(remoting_server, host="127.0.0.1"), router)
            async with open_remoting_client() as client:

                async def call(delay: str) -> None:
                    req = RemotingCommand.request(SLOW_ECHO, {"delay": delay})
                    try:
                        outcomes[delay] = await client.invoke(handle.address, req, 5)
                    except RemotingSendRequestError as exc:
                        outcomes[delay] = exc

                async with trio.open_nursery() as calls:
                    calls.start_soon(call, "0.1")
                    calls.start_soon(call, "3")
                    await both_arrived.acquire()
                    await both_arrived.acquire()
                    t0 = trio.current_time()
                    handle.shutdown(grace=0.5)
            # remoting_server returns by itself once its last connection is gone.
    quick, slow = outcomes["0.1"], outcomes["3"]
    assert isinstance(quick, RemotingCommand)
    assert quick.code == ResponseCode.SUCCESS  # finished inside the grace period
    assert isinstance(slow, RemotingSendRequestError)  # cut when the grace ran out
    assert trio.current_time() - t0 == pytest.approx(0.5)  # exactly the grace
    assert not handle.channels


def test_wildcard_address_is_reached_through_loopback() -> None:
    assert ServerHandle(host="0.0.0.0", port=9876).address == "127.0.0.1:9876"
    assert ServerHandle(host="10.1.2.3", port=10911).address == "10.1.2.3:10911"


async def test_async_requests_are_bounded_and_closed_client_refuses(
    server: ServerHandle, autojump_clock: trio.abc.Clock
) -> None:
    results: list[RemotingCommand | Exception] = []
    with trio.fail_after(5):
        async with open_remoting_client(max_async=1) as client:
            slow = RemotingCommand.request(SLOW_ECHO, {"delay": "0.2"})
            client.invoke_async(server.address, slow, 2, results.append)
            with pytest.raises(RemotingTooManyRequestsError):
                client.invoke_async(server.address, slow, 2, results.append)
        # Leaving the block ended the call in flight; its callback still heard of it.
        assert len(results) == 1
        assert isinstance(results[0], RemotingError)
        with pytest.raises(RemotingClosedError):
            await client.invoke(server.address, RemotingCommand.request(ECHO), 1)
        with pytest.raises(RemotingClosedError):
            client.invoke_async(server.address, slow, 2, results.append)
