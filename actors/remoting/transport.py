"""Where remoting bytes travel: real TCP by default, or any network that gives trio Streams.

The remoting server listens and the remoting client connects through a ``Transport``; the
connection, the router and every handler only ever see a ``trio.abc.Stream``, so they do not
know which network carries them.  ``TcpTransport`` is what runs in production; the test
harness in tests/sim supplies an in-memory network with latency, partitions and resets.

A transport is passed explicitly (``remoting_server(transport=...)``,
``open_remoting_client(transport=...)``) or, for a whole actor tree such as a broker with its
outgoing client, set for the current task and everything it spawns with ``use_transport``:
trio tasks inherit the context of the task that starts them, so a simulated node's actors all
find the node's own view of the network without a parameter through every layer.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import attrs
import trio


@attrs.frozen
class Listening:
    """What ``Transport.listen`` returns: the listeners and the address they are bound to."""

    listeners: Sequence[trio.abc.Listener[Any]]
    host: str
    port: int


@runtime_checkable
class Transport(Protocol):
    async def listen(self, host: str | None, port: int) -> Listening:
        """Listen on ``host:port`` (port 0: any free port; host None: every interface)."""
        ...

    async def connect(self, host: str, port: int) -> trio.abc.Stream:
        """A stream to ``host:port``; OSError if it cannot be reached."""
        ...


@attrs.frozen
class TcpTransport:
    """Real sockets: trio's TCP listeners and streams."""

    async def listen(self, host: str | None, port: int) -> Listening:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound_host, bound_port = listeners[0].socket.getsockname()[:2]
        return Listening(listeners, bound_host, bound_port)

    async def connect(self, host: str, port: int) -> trio.abc.Stream:
        return await trio.open_tcp_stream(host, port)


TCP = TcpTransport()

_current: contextvars.ContextVar[Transport] = contextvars.ContextVar(
    "remoting_transport", default=TCP
)


def current_transport() -> Transport:
    """The transport of the current task (TCP unless ``use_transport`` said otherwise)."""
    return _current.get()


@contextmanager
def use_transport(transport: Transport) -> Iterator[None]:
    """Make ``transport`` the current one for this task and every task it starts inside."""
    token = _current.set(transport)
    try:
        yield
    finally:
        _current.reset(token)


def named_addresses(stream: trio.abc.Stream) -> tuple[str, str] | None:
    """(peer, local) of a stream that names them itself (``addresses``), else None."""
    addresses = getattr(stream, "addresses", None)
    if isinstance(addresses, tuple) and len(addresses) == 2:
        return (str(addresses[0]), str(addresses[1]))
    return None


__all__ = [
    "TCP",
    "Listening",
    "TcpTransport",
    "Transport",
    "current_transport",
    "named_addresses",
    "use_transport",
]
