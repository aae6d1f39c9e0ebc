"""The remoting client: one connection per address, reused, re-opened after failure.

``open_remoting_client()`` owns a nursery in which every connection's reader, writer and
idle watcher run, and in which ``invoke_async`` calls run.  Requests the server sends on
a connection (NOTIFY_CONSUMER_IDS_CHANGED, CHECK_TRANSACTION_STATE, ...) are served
through the client's own router, exactly as the server serves its clients.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import trio

from actors.remoting.connection import (
    MAX_SPAWNED,
    WRITE_HIGH_WATER,
    Connection,
    stream_addresses,
)
from actors.remoting.errors import (
    RemotingClosedError,
    RemotingConnectError,
    RemotingError,
    RemotingTimeoutError,
    RemotingTooManyRequestsError,
)
from actors.remoting.router import Router
from actors.remoting.transport import Transport, current_transport, named_addresses
from protocol.command import RemotingCommand
from protocol.frame import DEFAULT_MAX_FRAME_SIZE

log = logging.getLogger(__name__)

Callback = Callable[[RemotingCommand | Exception], object]
# Applied to every request before it is sent (Java's RPCHook.doBeforeRequest), e.g. ACL signing.
RequestHook = Callable[[RemotingCommand], RemotingCommand]


def split_address(addr: str) -> tuple[str, int]:
    """ "host:port" (IPv6 with or without brackets) -> (host, port); ValueError if not."""
    host, sep, port_text = addr.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"not a host:port address: {addr!r}")
    return host.strip("[]"), int(port_text)


@attrs.define(eq=False)
class RemotingClient:
    """Use through ``open_remoting_client``."""

    _nursery: trio.Nursery
    router: Router
    name: str = "client"
    connect_timeout: float = 3.0
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    idle_timeout: float | None = 120.0
    max_async: int = 65535
    # Per connection, as on the server (connection.py): unsent bytes at which invokes wait
    # and the reader stops, and spawned handlers of the server's requests.
    write_limit: int = WRITE_HIGH_WATER
    max_spawned: int = MAX_SPAWNED
    request_hook: RequestHook | None = None
    # TLS for every connection (tls.client_context()); None = plain text.
    ssl_context: ssl.SSLContext | None = None
    # None: the transport current when the client was opened (TCP unless simulated).
    transport: Transport | None = None
    # Called with the address whenever a connection to it ends (for route/broker cleanup).
    on_close: list[Callable[[str], object]] = attrs.field(factory=list)

    _connections: dict[str, Connection] = attrs.field(factory=dict, init=False)
    # Addresses being connected to: later callers wait for the first one's attempt.
    _connecting: dict[str, trio.Event] = attrs.field(factory=dict, init=False)
    _async_in_flight: int = attrs.field(default=0, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    # ------------------------------------------------------------------ requests

    async def invoke(self, addr: str, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        """Send ``cmd`` to ``addr`` and wait for its reply; ``timeout`` covers connecting too.

        Raises RemotingConnectError, RemotingTimeoutError, RemotingSendRequestError
        (connection lost while waiting) or RemotingClosedError.
        """
        deadline = trio.current_time() + timeout
        if self.request_hook is not None:
            cmd = self.request_hook(cmd)
        conn = await self._connection(addr, timeout)
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            raise RemotingTimeoutError(addr, 0, timeout)
        return await conn.invoke(cmd, remaining)

    async def invoke_oneway(self, addr: str, cmd: RemotingCommand) -> None:
        """Send ``cmd`` with the oneway bit set; no reply is expected or awaited."""
        if self.request_hook is not None:
            cmd = self.request_hook(cmd)
        conn = await self._connection(addr, self.connect_timeout)
        await conn.send_oneway(cmd)

    def invoke_async(
        self, addr: str, cmd: RemotingCommand, timeout: float, callback: Callback
    ) -> None:
        """Start ``invoke`` in the background; ``callback`` gets the reply or the error.

        The callback is called exactly once, also when the client closes first (with
        RemotingClosedError).

        Raises RemotingTooManyRequestsError when ``max_async`` calls are in flight and
        RemotingClosedError after the client was closed.
        """
        if self._closed:
            raise RemotingClosedError(f"{self.name} is closed")
        if self._async_in_flight >= self.max_async:
            raise RemotingTooManyRequestsError(
                f"{self.name}: {self._async_in_flight} asynchronous requests in flight"
            )
        self._async_in_flight += 1
        self._nursery.start_soon(self._run_async, addr, cmd, timeout, callback)

    async def _run_async(
        self, addr: str, cmd: RemotingCommand, timeout: float, callback: Callback
    ) -> None:
        result: RemotingCommand | Exception
        try:
            result = await self.invoke(addr, cmd, timeout)
        except RemotingError as exc:
            result = exc
        except trio.Cancelled:
            # The client is closing: the callback still hears about its request, so
            # nobody waits forever on it.
            self._call_back(callback, RemotingClosedError(f"{self.name} closed"), cmd, addr)
            raise
        finally:
            self._async_in_flight -= 1
        self._call_back(callback, result, cmd, addr)

    def _call_back(
        self,
        callback: Callback,
        result: RemotingCommand | Exception,
        cmd: RemotingCommand,
        addr: str,
    ) -> None:
        try:
            callback(result)
        except Exception:
            log.exception("%s: callback for code %d to %s failed", self.name, cmd.code, addr)

    # ------------------------------------------------------------------ connections

    def close_channel(self, addr: str) -> None:
        """Close the connection to ``addr`` if any; its pending requests fail at once."""
        conn = self._connections.get(addr)
        if conn is not None:
            conn.close("closed by client")

    def connection(self, addr: str) -> Connection | None:
        """The live connection to ``addr``, if there is one."""
        conn = self._connections.get(addr)
        return conn if conn is not None and not conn.closed else None

    async def _connection(self, addr: str, timeout: float) -> Connection:
        while True:
            if self._closed:
                raise RemotingClosedError(f"{self.name} is closed")
            conn = self._connections.get(addr)
            if conn is not None and not conn.closed:
                return conn
            attempt = self._connecting.get(addr)
            if attempt is None:
                break
            await attempt.wait()
        attempt = self._connecting[addr] = trio.Event()
        try:
            return await self._connect(addr, min(timeout, self.connect_timeout))
        finally:
            del self._connecting[addr]
            attempt.set()

    async def _connect(self, addr: str, timeout: float) -> Connection:
        try:
            host, port = split_address(addr)
        except ValueError as exc:
            raise RemotingConnectError(addr, str(exc)) from None
        stream: trio.abc.Stream | None = None
        peer = local = ""
        transport = self.transport or current_transport()
        with trio.move_on_after(timeout):
            try:
                sock = await transport.connect(host, port)
            except OSError as exc:
                raise RemotingConnectError(addr, str(exc)) from None
            peer, local = named_addresses(sock) or stream_addresses(sock)
            if self.ssl_context is None:
                stream = sock
            else:
                tls = trio.SSLStream(sock, self.ssl_context, server_hostname=host)
                try:
                    await tls.do_handshake()
                except trio.BrokenResourceError as exc:
                    await trio.aclose_forcefully(sock)
                    raise RemotingConnectError(
                        addr, f"TLS handshake failed: {exc.__cause__ or exc}"
                    ) from None
                except BaseException:
                    await trio.aclose_forcefully(sock)
                    raise
                stream = tls
        if stream is None:
            raise RemotingConnectError(addr, f"timed out after {timeout:.3f}s")
        conn = Connection(
            stream,
            self.router,
            peer=addr,
            local=local,
            name=self.name,
            max_frame_size=self.max_frame_size,
            idle_timeout=self.idle_timeout,
            write_limit=self.write_limit,
            max_spawned=self.max_spawned,
        )
        self._connections[addr] = conn
        await self._nursery.start(self._run_connection, addr, conn, name=f"{self.name} {addr}")
        log.info("%s: connected to %s (%s)", self.name, addr, peer)
        return conn

    async def _run_connection(
        self, addr: str, conn: Connection, *, task_status: trio.TaskStatus[Connection]
    ) -> None:
        try:
            await conn.run(task_status=task_status)
        finally:
            if self._connections.get(addr) is conn:
                del self._connections[addr]
            for callback in list(self.on_close):
                try:
                    callback(addr)
                except Exception:
                    log.exception("%s: on_close callback failed for %s", self.name, addr)

    def _close(self) -> None:
        self._closed = True
        for conn in list(self._connections.values()):
            conn.close("client closed")


@asynccontextmanager
async def open_remoting_client(
    router: Router | None = None,
    *,
    connect_timeout: float = 3.0,
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    idle_timeout: float | None = 120.0,
    max_async: int = 65535,
    write_limit: int = WRITE_HIGH_WATER,
    max_spawned: int = MAX_SPAWNED,
    name: str = "client",
    request_hook: RequestHook | None = None,
    ssl_context: ssl.SSLContext | None = None,
    transport: Transport | None = None,
) -> AsyncIterator[RemotingClient]:
    """A client for the duration of the block; leaving it closes every connection."""
    async with trio.open_nursery() as nursery:
        client = RemotingClient(
            nursery,
            router if router is not None else Router(f"{name}-router"),
            name=name,
            connect_timeout=connect_timeout,
            max_frame_size=max_frame_size,
            idle_timeout=idle_timeout,
            max_async=max_async,
            write_limit=write_limit,
            max_spawned=max_spawned,
            request_hook=request_hook,
            ssl_context=ssl_context,
            transport=transport or current_transport(),
        )
        try:
            yield client
        finally:
            client._close()
            nursery.cancel_scope.cancel(reason=f"{name} closed")
