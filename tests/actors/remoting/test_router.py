"""Router: the code -> handler table, its limits and its error mapping (no transport)."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from actors.remoting.router import RequestContext, RequestError, Router
from protocol.codes import ResponseCode, SerializeType
from protocol.command import RemotingCommand
from protocol.errors import HeaderFieldError


@attrs.define
class FakeChannel:
    peer: str = "10.0.0.1:1234"
    local: str = "10.0.0.2:10911"
    closed: bool = False

    async def send(self, cmd: RemotingCommand) -> None:
        raise NotImplementedError

    async def invoke(self, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


CTX = RequestContext(FakeChannel())


async def test_unknown_code_is_answered_or_ignored() -> None:
    req = RemotingCommand.request(777, serialize_type=SerializeType.ROCKETMQ, opaque=9)
    reply = await Router().dispatch(CTX, req)
    assert reply is not None
    assert (reply.code, reply.remark, reply.opaque) == (
        ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
        " request type 777 not supported",
        9,
    )
    assert reply.serialize_type is SerializeType.ROCKETMQ
    assert await Router(reply_unknown=False).dispatch(CTX, req) is None


async def test_errors_map_to_codes() -> None:
    async def refuse(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        raise RequestError(ResponseCode.NO_PERMISSION, "read only")

    async def bad_header(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        raise HeaderFieldError("SendMessageRequestHeaderV2", "e", "is not an integer")

    async def bug(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return {}["missing"]  # type: ignore[no-any-return]

    router = Router()
    router.register(1, refuse)
    router.register(2, bad_header, inline=True)
    router.register(3, bug)
    replies = [await router.dispatch(CTX, RemotingCommand.request(c)) for c in (1, 2, 3)]
    assert [(r.code if r else None) for r in replies] == [
        ResponseCode.NO_PERMISSION,
        ResponseCode.SYSTEM_ERROR,
        ResponseCode.SYSTEM_ERROR,
    ]
    remarks = [r.remark if r else None for r in replies]
    assert remarks[0] == "read only"
    assert "field 'e' is not an integer" in (remarks[1] or "")
    assert (remarks[2] or "").startswith("KeyError")


async def test_limit_and_queue_bound(autojump_clock: trio.abc.Clock) -> None:
    running = 0
    peak = 0

    async def slow(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1
        return req.reply(ResponseCode.SUCCESS)

    router = Router()
    router.register(10, slow, limit=2, max_waiting=3)
    codes: list[int] = []

    async def call() -> None:
        reply = await router.dispatch(CTX, RemotingCommand.request(10))
        assert reply is not None
        codes.append(reply.code)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(call)
    # 2 run, 3 wait, 3 are refused at once with SYSTEM_BUSY.
    assert peak == 2
    assert sorted(codes) == [ResponseCode.SUCCESS] * 5 + [ResponseCode.SYSTEM_BUSY] * 3
    assert trio.current_time() == 3  # 5 requests through 2 slots of 1 s each


async def test_shared_limiter_is_one_executor(autojump_clock: trio.abc.Clock) -> None:
    async def slow(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        await trio.sleep(1)
        return req.reply(ResponseCode.SUCCESS)

    router = Router()
    router.register(310, slow, limit=1)
    router.share(10, 310, slow)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.dispatch, CTX, RemotingCommand.request(310))
        nursery.start_soon(router.dispatch, CTX, RemotingCommand.request(10))
    assert trio.current_time() == 2
    with pytest.raises(ValueError, match="not registered"):
        router.share(11, 999, slow)
    with pytest.raises(ValueError, match="limit"):
        router.register(12, slow, limit=0)


async def test_inline_handlers_skip_the_limiter() -> None:
    async def quick(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return req.reply(ResponseCode.SUCCESS)

    router = Router()
    router.register(34, quick, inline=True)
    router.register(11, quick)
    assert router.is_inline(34)
    assert not router.is_inline(11)
    assert router.is_inline(9999)  # unknown codes are answered on the spot
    # Inline dispatch of a handler that never awaits does not yield either: that is
    # what lets a whole read's replies leave in one send_all.
    coro = router.dispatch(CTX, RemotingCommand.request(34))
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    assert done.value.value.code == ResponseCode.SUCCESS
