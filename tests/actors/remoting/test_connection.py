"""Connection over in-memory streams under autojump_clock: idle timeout, timeouts,
loss of the peer, coalesced writes and backpressure."""

from __future__ import annotations

import trio
import trio.testing

from actors.remoting.connection import RECEIVE_SIZE, WRITE_HIGH_WATER, Connection
from actors.remoting.errors import RemotingSendRequestError, RemotingTimeoutError
from actors.remoting.router import Router
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder, encode_command
from tests.actors.remoting.conftest import ECHO, RawPeer, make_router


class CountingStream(trio.abc.Stream):
    """Wraps a stream and records the size of every send_all."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sends: list[int] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sends.append(len(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


def connection(stream: trio.abc.Stream, router: Router | None = None, **kw: object) -> Connection:
    return Connection(stream, router or make_router(), peer="peer", local="local", **kw)  # type: ignore[arg-type]


async def test_idle_connection_closes_after_idle_timeout(autojump_clock: trio.abc.Clock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = connection(ours, idle_timeout=120)
    peer = RawPeer(theirs)  # type: ignore[arg-type]
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            await trio.sleep(100)
            await theirs.send_all(encode_command(RemotingCommand.request(ECHO, opaque=1)))
            assert (await peer.receive()) is not None  # activity at t=100 restarts the clock
            assert await peer.receive() is None  # EOF once idle for 120 s
            assert trio.current_time() == 220
    assert conn.closed
    assert conn.close_reason == "idle for 120s"


async def test_replies_ready_together_leave_in_one_send_all(
    autojump_clock: trio.abc.Clock,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    counting = CountingStream(ours)
    conn = connection(counting)
    requests = [RemotingCommand.request(ECHO, {"i": str(i)}, opaque=i) for i in range(20)]
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            await theirs.send_all(b"".join(encode_command(r) for r in requests))
            await trio.testing.wait_all_tasks_blocked()
            assert len(counting.sends) == 1
            decoder = FrameDecoder()
            decoder.feed(await theirs.receive_some())
            replies = decoder.commands()
            assert [r.opaque for r in replies] == list(range(20))
            assert all(r.code == ResponseCode.SUCCESS for r in replies)
            conn.close()


async def test_invoke_times_out_exactly_and_late_reply_is_dropped(
    autojump_clock: trio.abc.Clock,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = connection(ours)
    peer = RawPeer(theirs)  # type: ignore[arg-type]
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            t0 = trio.current_time()
            try:
                await conn.invoke(RemotingCommand.request(40), timeout=3)
            except RemotingTimeoutError:
                pass
            else:
                raise AssertionError("expected a timeout")
            assert trio.current_time() - t0 == 3
            assert conn.pending_count == 0
            request = await peer.receive()
            assert request is not None
            await theirs.send_all(encode_command(request.reply(ResponseCode.SUCCESS)))
            await trio.testing.wait_all_tasks_blocked()
            assert not conn.closed  # the stray reply was dropped, the connection lives on
            conn.close()


async def test_peer_gone_fails_pending_requests_at_once(autojump_clock: trio.abc.Clock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = connection(ours)
    errors: list[Exception] = []

    async def call() -> None:
        try:
            await conn.invoke(RemotingCommand.request(40), timeout=60)
        except RemotingSendRequestError as exc:
            errors.append(exc)

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            for _ in range(5):
                nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            assert conn.pending_count == 5
            await theirs.aclose()
    assert len(errors) == 5
    assert trio.current_time() == 0
    assert "peer closed the connection" in str(errors[0])


async def test_a_peer_that_does_not_read_is_not_buffered_without_bound(
    autojump_clock: trio.abc.Clock,
) -> None:
    ours, theirs = trio.testing.lockstep_stream_pair()
    conn = connection(ours, idle_timeout=None)
    request = encode_command(RemotingCommand.request(ECHO, body=b"x" * 1024))
    sent = 0

    async def flood() -> None:
        nonlocal sent
        while True:
            await theirs.send_all(request * 64)
            sent += 64

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            nursery.start_soon(flood)
            await trio.sleep(10)
            # The writer is stuck (nobody reads the replies), the reader stopped reading,
            # so the flooding peer is blocked too: nothing grows any more.
            queued, before = conn.queued_bytes, sent
            await trio.sleep(10)
            assert (conn.queued_bytes, sent) == (queued, before)
            assert queued <= WRITE_HIGH_WATER + 2 * RECEIVE_SIZE
            assert sent < 10_000  # about 10 MiB at most went anywhere
            nursery.cancel_scope.cancel()


async def test_each_request_times_out_at_its_own_deadline(autojump_clock: trio.abc.Clock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = connection(ours)
    peer = RawPeer(theirs)  # type: ignore[arg-type]
    outcomes: dict[str, object] = {}

    async def call(name: str, timeout: float) -> None:
        try:
            reply = await conn.invoke(RemotingCommand.request(40, {"name": name}), timeout)
            outcomes[name] = (reply.remark, trio.current_time())
        except RemotingTimeoutError:
            outcomes[name] = ("timeout", trio.current_time())

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            # A later deadline first, then earlier ones: the expirer must re-arm earlier.
            nursery.start_soon(call, "ten", 10)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(call, "two", 2)
            nursery.start_soon(call, "answered", 5)
            await trio.testing.wait_all_tasks_blocked()
            requests = [await peer.receive() for _ in range(3)]
            answered = next(r for r in requests if r and r.ext_fields["name"] == "answered")
            await trio.sleep(1)
            await theirs.send_all(encode_command(answered.reply(ResponseCode.SUCCESS, "ok")))
        conn.close()
    assert outcomes == {"two": ("timeout", 2), "answered": ("ok", 1), "ten": ("timeout", 10)}


async def test_concurrent_invokes_leave_in_one_send_all(autojump_clock: trio.abc.Clock) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    counting = CountingStream(ours)
    conn = connection(counting)
    peer = RawPeer(theirs)  # type: ignore[arg-type]
    replies: list[str] = []

    async def call(i: int) -> None:
        reply = await conn.invoke(RemotingCommand.request(40, {"i": str(i)}), 5)
        assert reply.ext_fields["i"] == str(i)
        replies.append(reply.ext_fields["i"])

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            for i in range(20):
                nursery.start_soon(call, i)
            await trio.testing.wait_all_tasks_blocked()
            assert len(counting.sends) == 1  # the writer woke once for all twenty
            requests = [await peer.receive() for _ in range(20)]
            # Answer in reverse order: each reply still finds its own caller.
            answers = [r.reply(0, None, dict(r.ext_fields)) for r in reversed(requests) if r]
            await theirs.send_all(b"".join(encode_command(a) for a in answers))
        conn.close()
    assert sorted(replies, key=int) == [str(i) for i in range(20)]


async def test_garbage_from_the_peer_fails_pending_with_the_reason(
    autojump_clock: trio.abc.Clock,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    conn = connection(ours)
    errors: list[Exception] = []

    async def call() -> None:
        try:
            await conn.invoke(RemotingCommand.request(40), timeout=60)
        except RemotingSendRequestError as exc:
            errors.append(exc)

    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            await nursery.start(conn.run)
            nursery.start_soon(call)
            await trio.testing.wait_all_tasks_blocked()
            await theirs.send_all(b"\x00\x00\x00\x08\x00\x00\xff\xff1234")
    assert trio.current_time() == 0
    assert len(errors) == 1
    assert "bad frame" in str(errors[0])
    assert conn.close_reason is not None
    assert conn.close_reason.startswith("bad frame")
