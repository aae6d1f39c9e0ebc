"""Request code -> handler table: the place of Java's processor table and its executors.

A handler is ``async def handler(ctx: RequestContext, req: RemotingCommand) ->
RemotingCommand | None``.  It answers with ``req.reply(code, ...)`` or raises
``RequestError(code, remark)``; returning ``None`` sends nothing (oneway requests, or a
held long-poll answered later through ``ctx.channel``).  Every exception becomes a
response here and nowhere else.

Inline handlers.  ``register(..., inline=True)`` marks a handler that never waits long
(it may await, but only briefly: no disk waits, no peers).  The connection's reader then
awaits it directly instead of spawning a task per request, and the limiter is skipped:
the reader itself is the bound (one request at a time per connection), and a handler that
never checkpoints lets every reply decoded from one read leave in a single ``send_all``.
Measured with apps/bench_remoting.py (1 KiB SEND_MESSAGE_V2, loopback, 2 busy cores),
server CPU per request: the same handler inline 67 us with 32 requests in flight and
252 us sequentially, spawned 90 us and 311 us; a bare decode-append-encode server 58 us
and 198 us.  So cheap handlers (namesrv queries, heartbeats, async-flush sends, held pulls
that return None at once) should be inline; handlers that wait (SYNC_FLUSH / SYNC_MASTER
sends, disk reads) must not be, or one slow request stalls every later request of that
connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
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

# Set in a connection's reader task when its router has ``after_read``: work a request leaves
# for later (dispatching what it appended) is the reader's once per read, not another task's.
reader_task: ContextVar[trio.lowlevel.Task | None] = ContextVar("reader_task", default=None)


def in_reader_task() -> bool:
    """Whether the calling task is a connection's reader that will call ``after_read``."""
    reader = reader_task.get()
    if reader is None:
        return False
    try:
        return reader is trio.lowlevel.current_task()
    except RuntimeError:  # a worker thread run from the reader (it inherits the context)
        return False


# Runs before any handler (and before the unknown-code reply): None lets the request through,
# a reply refuses it.  Synchronous on purpose: a check that awaited would be a handler.
Guard = Callable[[RequestContext, RemotingCommand], RemotingCommand | None]


@attrs.define(eq=False, slots=True)
class _Entry:
    handler: Handler
    limiter: trio.CapacityLimiter
    max_waiting: int
    inline: bool = False
    waiting: int = 0


class Router:
    """Maps request codes to handlers, each with its own concurrency limit and queue bound."""

    def __init__(self, name: str = "router", *, reply_unknown: bool = True) -> None:
        """``reply_unknown=False`` answers nothing to an unknown code, as the Java name
        server does (reference §1.10); the broker answers REQUEST_CODE_NOT_SUPPORTED."""
        self.name = name
        self.reply_unknown = reply_unknown
        self._table: dict[int, _Entry] = {}
        # The broker's ACL (actors/broker/acl.py) when aclEnable=true; None costs one test.
        self.guard: Guard | None = None
        # Called by a connection's reader after each read's replies are written (and when it
        # stops): the broker dispatches there what the read's requests appended.
        self.after_read: Callable[[], None] | None = None

    def register(
        self,
        code: int,
        handler: Handler,
        *,
        limit: int = 64,
        max_waiting: int = 10_000,
        inline: bool = False,
    ) -> None:
        if limit < 1 or max_waiting < 0:
            raise ValueError(f"limit must be >= 1 and max_waiting >= 0, got {limit}, {max_waiting}")
        self._table[int(code)] = _Entry(handler, trio.CapacityLimiter(limit), max_waiting, inline)

    def share(self, code: int, other: int, handler: Handler) -> None:
        """Register ``handler`` for ``code`` on the same limiter as ``other`` (one executor)."""
        entry = self._table.get(int(other))
        if entry is None:
            raise ValueError(f"cannot share the limiter of code {other}: it is not registered")
        self._table[int(code)] = _Entry(handler, entry.limiter, entry.max_waiting, entry.inline)

    def set_inline(self, code: int, inline: bool) -> None:
        """Change whether ``code``'s handler runs inline (a broker whose sends start or stop
        waiting for a slave when its role changes)."""
        self._table[int(code)].inline = inline

    def handles(self, code: int) -> bool:
        return int(code) in self._table

    def is_inline(self, code: int) -> bool:
        """True when the reader may await the request itself (cheap or unknown codes)."""
        entry = self._table.get(code)
        return entry is None or entry.inline

    async def dispatch(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand | None:
        if self.guard is not None:
            refusal = self.guard(ctx, req)
            if refusal is not None:
                return refusal
        entry = self._table.get(req.code)
        if entry is None:
            if not self.reply_unknown:
                log.debug("%s: no handler for code %d, not answering", self.name, req.code)
                return None
            return req.reply(
                ResponseCode.REQUEST_CODE_NOT_SUPPORTED,
                f" request type {req.code} not supported",
            )
        if entry.inline:
            return await self._call(entry.handler, ctx, req)
        try:
            # Only requests that find every slot taken count as waiting; acquire() would
            # count them during its checkpoint too and refuse requests that had a slot.
            entry.limiter.acquire_nowait()
        except trio.WouldBlock:
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
