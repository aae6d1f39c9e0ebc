"""Request code -> handler table: the place of Java's processor table and its executors.

A handler is ``async def handler(ctx: RequestContext, req: RemotingCommand) ->
RemotingCommand | None``.  It answers with ``req.reply(code, ...)`` or raises
``RequestError(code, remark)``; returning ``None`` sends nothing (oneway requests, or a
held long-poll answered later through ``ctx.channel``).  Every exception becomes a
response here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio

from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)


class RequestError(Exception):
    """Raised by a handler to answer with a RocketMQ response code and remark."""

    def __init__(self, code: ResponseCode, remark: str) -> None:
        super().__init__(f"{code.name}: {remark}")
        self.code = code
        self.remark = remark


class Channel(Protocol):
    """One live connection, as handlers see it (implemented in connection.py)."""

    @property
    def peer(self) -> str:
        """Remote address as "ip:port"."""
        ...

    @property
    def local(self) -> str:
        """Local address as "ip:port"."""
        ...

    @property
    def closed(self) -> bool: ...

    async def send(self, cmd: RemotingCommand) -> None:
        """Queue a frame (a late reply, or a oneway request) on this connection's writer."""
        ...

    async def invoke(self, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        """Server-to-client request: a fresh opaque, wait for the reply or TimeoutError."""
        ...

    def close(self) -> None: ...


@attrs.define(eq=False, slots=True)
class RequestContext:
    channel: Channel

    @property
    def peer(self) -> str:
        return self.channel.peer


Handler = Callable[[RequestContext, RemotingCommand], Awaitable[RemotingCommand | None]]


@attrs.define(eq=False, slots=True)
class _Entry:
    handler: Handler
    limiter: trio.CapacityLimiter
    max_waiting: int
    waiting: int = 0


class Router:
    """Maps request codes to handlers, each with its own concurrency limit and queue bound."""

    def __init__(self, name: str = "router") -> None:
        self.name = name
        self._table: dict[int, _Entry] = {}

    def register(
        self, code: int, handler: Handler, *, limit: int = 64, max_waiting: int = 10_000
    ) -> None:
        self._table[int(code)] = _Entry(handler, trio.CapacityLimiter(limit), max_waiting)

    def share(self, code: int, other: int, handler: Handler) -> None:
        """Register ``handler`` for ``code`` on the same limiter as ``other`` (one executor)."""
        entry = self._table[int(other)]
        self._table[int(code)] = _Entry(handler, entry.limiter, entry.max_waiting)

    def handles(self, code: int) -> bool:
        return int(code) in self._table

    async def dispatch(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand | None:
        entry = self._table.get(req.code)
        if entry is None:
            return req.reply(
                ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                f" request type {req.code} not supported",
            )
        if entry.waiting >= entry.max_waiting:
            return req.reply(
                ResponseCode.SYSTEM_BUSY,
                "[OVERLOAD]system busy, start flow control for a while",
            )
        entry.waiting += 1
        try:
            await entry.limiter.acquire()
        finally:
            entry.waiting -= 1
        try:
            return await self._call(entry.handler, ctx, req)
        finally:
            entry.limiter.release()

    async def _call(
        self, handler: Handler, ctx: RequestContext, req: RemotingCommand
    ) -> RemotingCommand | None:
        try:
            return await handler(ctx, req)
        except RequestError as exc:
            return req.reply(exc.code, exc.remark)
        except ProtocolError as exc:
            # A malformed header or body in an otherwise whole frame: answer, keep the connection.
            return req.reply(ResponseCode.SYSTEM_ERROR, str(exc))
        except trio.Cancelled:
            raise
        except Exception as exc:
            log.exception("handler for code %d failed (peer %s)", req.code, ctx.peer)
            return req.reply(ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}")
