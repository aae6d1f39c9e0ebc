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

from actors.remoting.connection import Connection, stream_addresses
from actors.remoting.router import Channel, Router
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
    on_open: Callable[[Channel], None] | None = None,
    on_close: Callable[[Channel], None] | None = None,
    transport: Transport | None = None,
    task_status: trio.TaskStatus[ServerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``router`` on ``host:port`` (0 = any free port) until cancelled.

    ``transport`` defaults to the current task's (actors/remoting/transport.py: TCP unless a
    simulation set another)."""
    listening = await (transport or current_transport()).listen(host, port)
    listeners, bound_host, bound_port = listening.listeners, listening.host, listening.port
    handle = ServerHandle(host=bound_host, port=bound_port)

    async def serve_stream(stream: trio.abc.Stream) -> None:
        peer, local = named_addresses(stream) or stream_addresses(stream)
        conn = Connection(
            stream,
            router,
            peer=peer,
            local=local,
            name=name,
            max_frame_size=max_frame_size,
            idle_timeout=idle_timeout,
        )
        handle.channels.add(conn)
        log.info("%s: connection from %s", name, peer)
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
