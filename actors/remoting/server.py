"""The remoting server actor: a TCP listener, one ``Connection`` per accepted stream.

Listeners and connections live in separate nurseries (tractor's and hypercorn's layout):
``stop_accepting()`` closes the listener while live connections keep being served, and
``shutdown(grace)`` gives in-flight requests a deadline instead of cutting them off.
An error in one connection - a bad frame, a reset, even a bug - ends that connection only;
``serve_listeners`` would otherwise propagate it and take the listener down.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import attrs
import trio

from actors.remoting.connection import (
    MAX_SPAWNED,
    WRITE_HIGH_WATER,
    Connection,
    stream_addresses,
)
from actors.remoting.limits import ConnectionLimits, peer_host
from actors.remoting.netconfig import ServerNetConfig
from actors.remoting.router import Channel, Router
from actors.remoting.tls import ServerTls
from actors.remoting.transport import Transport, current_transport, named_addresses
from protocol.frame import DEFAULT_MAX_FRAME_SIZE

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class ServerHandle:
    """What ``remoting_server`` reports through ``task_status.started``."""

    host: str
    port: int
    # Live connections; a handler may look one up by peer to call it back.
    channels: set[Connection] = attrs.field(factory=set)
    limits: ConnectionLimits | None = None
    _listen_scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    _handler_scope: trio.CancelScope | None = None

    @property
    def address(self) -> str:
        """ "ip:port" to connect to; a wildcard listener is reached through loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"{host}:{self.port}"

    def stop_accepting(self) -> None:
        """Close the listener; live connections keep being served."""
        self._listen_scope.cancel(reason="server stops accepting")

    def shutdown(self, grace: float) -> None:
        """Stop accepting and give live connections ``grace`` seconds before they close."""
        self.stop_accepting()
        if self._handler_scope is not None:
            self._handler_scope.deadline = min(
                self._handler_scope.deadline, trio.current_time() + grace
            )


async def remoting_server(
    router: Router,
    *,
    host: str = "0.0.0.0",
    port: int = 0,
    name: str = "remoting",
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
    idle_timeout: float | None = 120.0,
    write_limit: int = WRITE_HIGH_WATER,
    max_spawned: int = MAX_SPAWNED,
    on_open: Callable[[Channel], None] | None = None,
    on_close: Callable[[Channel], None] | None = None,
    net: ServerNetConfig | None = None,
    transport: Transport | None = None,
    task_status: trio.TaskStatus[ServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``router`` on ``host:port`` (0 = any free port) until cancelled.

    ``net``: TLS and the limits for untrusted peers (actors/remoting/netconfig.py); without
    it, plain text and no limits beyond the frame size.  ``transport`` defaults to the
    current task's (actors/remoting/transport.py: TCP unless a simulation set another).
    """
    tls = ServerTls.from_config(net) if net is not None else None
    limits = (
        ConnectionLimits(net.maxConnections, net.maxConnectionsPerAddress)
        if net is not None and (net.maxConnections or net.maxConnectionsPerAddress)
        else None
    )
    listening = await (transport or current_transport()).listen(host, port)
    listeners, bound_host, bound_port = listening.listeners, listening.host, listening.port
    handle = ServerHandle(host=bound_host, port=bound_port, limits=limits)

    async def serve_stream(stream: trio.abc.Stream) -> None:
        peer, local = named_addresses(stream) or stream_addresses(stream)
        if limits is None:
            await serve_admitted(stream, peer, local)
            return
        host = peer_host(peer)
        if not limits.admit(host, name):
            await trio.aclose_forcefully(stream)
            return
        try:
            await serve_admitted(stream, peer, local)
        finally:
            limits.release(host)

    async def serve_admitted(stream: trio.abc.Stream, peer: str, local: str) -> None:
        conn_stream: trio.abc.Stream = stream
        if tls is not None:
            accepted = await tls.accept(stream, peer, name)
            if accepted is None:
                await trio.aclose_forcefully(stream)
                return
            conn_stream = accepted
        conn = Connection(
            conn_stream,
            router,
            peer=peer,
            local=local,
            name=name,
            max_frame_size=max_frame_size,
            idle_timeout=idle_timeout,
            write_limit=write_limit,
            max_spawned=max_spawned,
            max_frames_per_second=net.maxFramesPerSecond if net is not None else 0,
            max_memory=net.maxConnectionMemoryBytes if net is not None else 0,
        )
        handle.channels.add(conn)
        secure = " (TLS)" if isinstance(conn_stream, trio.SSLStream) else ""
        log.info("%s: connection from %s%s", name, peer, secure)
        try:
            if on_open is not None:
                on_open(conn)
            await conn.run()
        except Exception:
            # A bug must not take the listener down with it (serve_listeners would).
            log.exception("%s: connection %s failed", name, peer)
        finally:
            handle.channels.discard(conn)
            if on_close is not None:
                try:
                    on_close(conn)
                except Exception:
                    log.exception("%s: on_close callback failed for %s", name, peer)

    async with trio.open_nursery() as handler_nursery:
        handle._handler_scope = handler_nursery.cancel_scope
        with handle._listen_scope:
            async with trio.open_nursery() as listen_nursery:
                await listen_nursery.start(
                    functools.partial(trio.serve_listeners, handler_nursery=handler_nursery),
                    serve_stream,
                    listeners,
                )
                log.info("%s: listening on %s:%d", name, bound_host, bound_port)
                task_status.started(handle)
        log.info("%s: stopped accepting on port %d", name, bound_port)
        # Live connections go on until they end, the grace deadline, or cancellation.
