"""A tiny HTTP/1.1 server under Trio for /metrics, /healthz and /readyz.

h11 does the protocol (parsing, framing, keep-alive rules: a well-kept sans-IO library, the
same shape as our own codec), this module only the sockets.  Everything is bounded:
connections (``MAX_CONNECTIONS``), request head size (h11's ``max_incomplete_event_size``),
idle time per connection and the request body (refused when it has one: these endpoints are
GET only).  A handler is ``async (method, path) -> Reply`` and runs in the server's task, so
it may read the actors' state directly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import h11
import trio

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32
MAX_HEAD = 16 * 1024
IDLE_TIMEOUT = 30.0
READ_SIZE = 16 * 1024


@attrs.frozen
class Reply:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[str, str], Awaitable[Reply]]


@attrs.frozen
class HttpServerHandle:
    host: str
    port: int


async def _respond(stream: trio.SocketStream, conn: h11.Connection, reply: Reply) -> None:
    headers = [
        ("Content-Type", reply.content_type),
        ("Content-Length", str(len(reply.body))),
    ]
    data = conn.send(h11.Response(status_code=reply.status, headers=headers))
    data += conn.send(h11.Data(data=reply.body)) if reply.body else b""
    data += conn.send(h11.EndOfMessage())
    await stream.send_all(data)


async def _serve_connection(stream: trio.SocketStream, handler: Handler, name: str) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        while True:
            with trio.move_on_after(IDLE_TIMEOUT) as idle:
                event = conn.next_event()
                while event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(READ_SIZE))
                    event = conn.next_event()
            if idle.cancelled_caught or isinstance(event, h11.ConnectionClosed):
                return
            if not isinstance(event, h11.Request):
                return
            method = event.method.decode("ascii", "replace")
            target = event.target.decode("ascii", "replace")
            path = target.split("?", 1)[0]
            if method not in ("GET", "HEAD"):
                reply = Reply(405, b"only GET\n")
            else:
                try:
                    reply = await handler(method, path)
                except Exception:
                    log.exception("%s: %s %s failed", name, method, path)
                    reply = Reply(500, b"internal error\n")
                if method == "HEAD":
                    reply = attrs.evolve(reply, body=b"")
            # a GET with a body is not ours to read: answer, then close
            await _respond(stream, conn, reply)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
                    break
            if conn.our_state is h11.MUST_CLOSE or event is h11.NEED_DATA:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        log.debug("%s: bad request: %s", name, exc)
        try:
            await _respond(stream, conn, Reply(exc.error_status_hint, b"bad request\n"))
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def http_server(
    handler: Handler,
    *,
    host: str,
    port: int,
    name: str = "http",
    task_status: trio.TaskStatus[HttpServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound (host, port) (port 0 picks a free one)."""
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    bound = listeners[0].socket.getsockname()
    limit = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def one(stream: trio.SocketStream) -> None:
        try:
            limit.acquire_nowait()
        except trio.WouldBlock:
            # over the limit: close at once rather than queue unbounded sockets
            await trio.aclose_forcefully(stream)
            return
        try:
            await _serve_connection(stream, handler, name)
        finally:
            limit.release()

    async with trio.open_nursery() as nursery:
        handle = HttpServerHandle(host=str(bound[0]), port=int(bound[1]))
        nursery.start_soon(trio.serve_listeners, one, listeners)
        log.info("%s serving /metrics /healthz /readyz on %s:%d", name, handle.host, handle.port)
        task_status.started(handle)
