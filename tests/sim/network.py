"""An in-memory network for one Trio run: hosts, listeners, byte streams, faults.

Every node of a simulated cluster gets ``network.node(host)``, a ``Transport``
(actors/remoting/transport.py) whose ``listen``/``connect`` hand out ``SimStream``s; the
remoting server, client and every handler run unchanged on top of them.

What it models, in virtual time (trio's clock, autojump in tests):

* latency per link (a base plus seeded jitter per write); a connection stays in order, as TCP
  does, but writes on different connections overtake one another when jitter allows;
* a bounded receive buffer per direction: ``send_all`` waits while the peer has
  ``buffer_limit`` unread bytes (TCP's window), so back pressure reaches the writer;
* a partition of two hosts: bytes already sent and new ones are held, not lost (TCP keeps
  retransmitting), and a connect across it hangs until the caller's own timeout; healing
  delivers what was held;
* a reset: both ends of a connection fail at once (BrokenResourceError), unread bytes lost;
* a crash of a host: ``down(host)`` resets its connections (a killed process: its peers
  see the reset at once) or, with ``silent=True``, isolates it (a lost machine: its peers
  hear nothing and must notice by their own timeouts); ``up(host)`` brings it back, and
  connections of the old incarnation are reset as a rebooted machine's RST would.

All random choices come from the ``random.Random`` passed in, so a seed replays.
"""

from __future__ import annotations

import collections
import itertools
import math
import random
from collections.abc import Callable
from typing import Any

import attrs
import trio

from actors.remoting.transport import Listening

DEFAULT_BUFFER = 4 * 1024 * 1024
BACKLOG = 128


@attrs.define
class LinkSpec:
    latency: float = 0.0005
    jitter: float = 0.0005


class _Pipe:
    """One direction of a connection: bytes with the virtual time they become readable."""

    def __init__(self, net: SimNetwork, src: str, dst: str) -> None:
        self.net, self.src, self.dst = net, src, dst
        self.chunks: collections.deque[tuple[float, bytes]] = collections.deque()
        self.buffered = 0
        self.last_ready = 0.0
        self.eof_at: float | None = None  # the writer closed: EOF readable at this time
        self.broken: str | None = None
        self.changed = trio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def ready_time(self) -> float:
        self.last_ready = max(
            self.last_ready, trio.current_time() + self.net.delay(self.src, self.dst)
        )
        return self.last_ready

    def break_(self, reason: str) -> None:
        if self.broken is None:
            self.broken = reason
        self.chunks.clear()
        self.buffered = 0
        self.notify()


@attrs.define(eq=False)
class SimConnection:
    client: SimStream
    server: SimStream
    generation: tuple[int, int]  # the hosts' incarnations when it was made

    def reset(self, reason: str = "connection reset") -> None:
        self.client.send_pipe.break_(reason)
        self.client.recv_pipe.break_(reason)
        self.client.net._connections.pop(self, None)


class SimStream(trio.abc.Stream):
    """One end of a simulated connection."""

    def __init__(
        self,
        net: SimNetwork,
        send_pipe: _Pipe,
        recv_pipe: _Pipe,
        local: tuple[str, int],
        peer: tuple[str, int],
    ) -> None:
        self.net = net
        self.send_pipe = send_pipe
        self.recv_pipe = recv_pipe
        self.local = local
        self.peer = peer
        self.closed = False
        self.connection: SimConnection | None = None

    @property
    def addresses(self) -> tuple[str, str]:
        """(peer, local) as "host:port": actors.remoting.transport.named_addresses reads it."""
        return (f"{self.peer[0]}:{self.peer[1]}", f"{self.local[0]}:{self.local[1]}")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        pipe = self.send_pipe
        while True:
            if self.closed:
                raise trio.ClosedResourceError("stream closed")
            if pipe.broken is not None:
                raise trio.BrokenResourceError(pipe.broken)
            if pipe.buffered < self.net.buffer_limit:
                break
            await pipe.changed.wait()
        if not data:
            return
        chunk = bytes(data)
        pipe.chunks.append((pipe.ready_time(), chunk))
        pipe.buffered += len(chunk)
        self.net.bytes_sent += len(chunk)
        pipe.notify()

    async def wait_send_all_might_not_block(self) -> None:
        pipe = self.send_pipe
        while pipe.buffered >= self.net.buffer_limit and pipe.broken is None and not self.closed:
            await pipe.changed.wait()
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        pipe = self.recv_pipe
        limit = max_bytes or 65536
        while True:
            if self.closed:
                raise trio.ClosedResourceError("stream closed")
            if pipe.broken is not None:
                raise trio.BrokenResourceError(pipe.broken)
            now = trio.current_time()
            cut = self.net.is_cut(pipe.src, pipe.dst)
            wake_at = math.inf
            if pipe.chunks and not cut:
                ready = pipe.chunks[0][0]
                if ready <= now:
                    return self._take(pipe, limit)
                wake_at = ready
            elif not pipe.chunks and pipe.eof_at is not None and not cut:
                if pipe.eof_at <= now:
                    return b""
                wake_at = pipe.eof_at
            with trio.move_on_at(wake_at):
                await pipe.changed.wait()

    def _take(self, pipe: _Pipe, limit: int) -> bytes:
        now = trio.current_time()
        parts: list[bytes] = []
        size = 0
        while pipe.chunks and pipe.chunks[0][0] <= now and size < limit:
            ready, chunk = pipe.chunks[0]
            room = limit - size
            if len(chunk) > room:
                parts.append(chunk[:room])
                pipe.chunks[0] = (ready, chunk[room:])
                size += room
                break
            pipe.chunks.popleft()
            parts.append(chunk)
            size += len(chunk)
        pipe.buffered -= size
        pipe.notify()  # room for a writer waiting on the window
        return b"".join(parts)

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            if self.send_pipe.broken is None and self.send_pipe.eof_at is None:
                self.send_pipe.eof_at = self.send_pipe.ready_time()
                self.send_pipe.notify()
            # the peer writing into a closed socket gets a reset, as with TCP
            self.recv_pipe.break_("connection reset by peer")
            conn = self.connection
            if conn is not None and conn.client.closed and conn.server.closed:
                self.net._connections.pop(conn, None)
        self.send_pipe.notify()
        await trio.lowlevel.checkpoint()


class SimListener(trio.abc.Listener[SimStream]):
    def __init__(self, net: SimNetwork, host: str, port: int) -> None:
        self.net, self.host, self.port = net, host, port
        self.send, self.recv = trio.open_memory_channel[SimStream](BACKLOG)

    async def accept(self) -> SimStream:
        try:
            return await self.recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("listener closed") from None

    async def aclose(self) -> None:
        self.net._listeners.pop((self.host, self.port), None)
        self.send.close()
        self.recv.close()
        await trio.lowlevel.checkpoint()


@attrs.define(eq=False)
class NodeTransport:
    """A host's view of the network: what ``use_transport`` gives a simulated node."""

    net: SimNetwork
    host: str
    # the host's incarnation this transport belongs to: a killed node's leftover tasks
    # (its cleanup runs on cancellation) must not reach the network of its successor
    generation: int = 0

    def _check_alive(self) -> None:
        if self.host in self.net._down or self.net._gen[self.host] != self.generation:
            raise OSError(f"host {self.host} (incarnation {self.generation}) is down")

    async def listen(self, host: str | None, port: int) -> Listening:
        await trio.lowlevel.checkpoint()
        if host not in (None, "", "0.0.0.0", self.host):
            raise OSError(f"{self.host} cannot listen on {host}")
        self._check_alive()
        if port == 0:
            port = self.net._ephemeral_port(self.host)
        if (self.host, port) in self.net._listeners:
            raise OSError(f"address in use: {self.host}:{port}")
        listener = SimListener(self.net, self.host, port)
        self.net._listeners[(self.host, port)] = listener
        return Listening([listener], self.host, port)

    async def connect(self, host: str, port: int) -> SimStream:
        net = self.net
        self._check_alive()
        # SYN and SYN-ACK; across a partition they never arrive and the caller times out
        await trio.sleep(net.delay(self.host, host) + net.delay(host, self.host))
        while net.is_cut(self.host, host):
            await net._heal_wait()
        self._check_alive()
        listener = net._listeners.get((host, port))
        if listener is None or host in net._down:
            raise ConnectionRefusedError(f"connection refused: {host}:{port}")
        local = (self.host, net._ephemeral_port(self.host))
        up, down = _Pipe(net, self.host, host), _Pipe(net, host, self.host)
        client = SimStream(net, up, down, local, (host, port))
        server = SimStream(net, down, up, (host, port), local)
        conn = SimConnection(client, server, (net._gen[self.host], net._gen[host]))
        client.connection = server.connection = conn
        try:
            listener.send.send_nowait(server)
        except (trio.WouldBlock, trio.ClosedResourceError):
            raise ConnectionRefusedError(f"backlog full or closed: {host}:{port}") from None
        net._connections[conn] = None
        net.connects += 1
        return client


class SimNetwork:
    """The network of one simulation; ``node(host)`` is a host's transport."""

    def __init__(
        self,
        rng: random.Random,
        *,
        latency: float = 0.0005,
        jitter: float = 0.0005,
        buffer_limit: int = DEFAULT_BUFFER,
    ) -> None:
        self.rng = rng
        self.default = LinkSpec(latency, jitter)
        self.buffer_limit = buffer_limit
        self._links: dict[frozenset[str], LinkSpec] = {}
        self._cuts: set[frozenset[str]] = set()
        self._isolated: set[str] = set()
        self._down: set[str] = set()
        self._gen: collections.defaultdict[str, int] = collections.defaultdict(int)
        self._listeners: dict[tuple[str, int], SimListener] = {}
        # insertion-ordered (a dict, not a set of identity-hashed objects): resets and wake-ups
        # happen in the same order in every process
        self._connections: dict[SimConnection, None] = {}
        self._ports: dict[str, itertools.count[int]] = {}
        self._healed = trio.Event()
        self.bytes_sent = 0
        self.connects = 0
        self.log: list[tuple[float, str]] = []
        # called after every partition, heal, crash or return: what is not a connection of
        # this network (the simulated etcd, tests/sim/etcd.py) follows its reachability
        self.on_change: list[Callable[[], None]] = []

    def node(self, host: str) -> NodeTransport:
        """The transport of ``host``'s current incarnation."""
        return NodeTransport(self, host, self._gen[host])

    # ------------------------------------------------------------ link properties

    def set_link(self, a: str, b: str, latency: float, jitter: float = 0.0) -> None:
        self._links[frozenset((a, b))] = LinkSpec(latency, jitter)

    def delay(self, src: str, dst: str) -> float:
        spec = self._links.get(frozenset((src, dst)), self.default)
        return spec.latency + (self.rng.uniform(0, spec.jitter) if spec.jitter else 0.0)

    def is_down(self, host: str) -> bool:
        return host in self._down

    def is_cut(self, a: str, b: str) -> bool:
        if a == b:
            return False
        return a in self._isolated or b in self._isolated or frozenset((a, b)) in self._cuts

    # ------------------------------------------------------------ faults

    def _note(self, what: str) -> None:
        self.log.append((trio.current_time(), what))

    def partition(self, a: str, b: str) -> None:
        """Cut the link between two hosts (both directions); bytes wait for ``heal``."""
        self._note(f"partition {a} {b}")
        self._cuts.add(frozenset((a, b)))
        self._changed()

    def isolate(self, host: str) -> None:
        self._note(f"isolate {host}")
        self._isolated.add(host)
        self._changed()

    def heal(self, a: str | None = None, b: str | None = None) -> None:
        """Heal one link (or every cut and isolation when called without hosts)."""
        self._note(f"heal {a or '*'} {b or '*'}")
        if a is None:
            self._cuts.clear()
            self._isolated.clear()
        elif b is None:
            self._isolated.discard(a)
        else:
            self._cuts.discard(frozenset((a, b)))
        self._wake_all()
        self._changed()

    def reset(self, a: str, b: str | None = None) -> int:
        """Reset every connection of host ``a`` (with ``b`` only: between the two)."""
        self._note(f"reset {a} {b or '*'}")
        hit = [
            c
            for c in self._connections
            if {c.client.local[0], c.server.local[0]} == {a, b}
            or (b is None and a in (c.client.local[0], c.server.local[0]))
        ]
        for conn in hit:
            conn.reset()
        return len(hit)

    def down(self, host: str, *, silent: bool = False) -> None:
        """The host is gone: its listeners close; its connections reset (a killed process)
        or, ``silent``, go quiet (a lost machine: peers notice only by their timeouts)."""
        self._note(f"down {host}{' silent' if silent else ''}")
        self._down.add(host)
        for h, port in list(self._listeners):
            if h == host:
                # unregistered: new connects are refused; accept() just waits (the node's
                # tasks are being cancelled anyway), and the backlog's streams are reset below
                del self._listeners[(h, port)]
        if silent:
            self._isolated.add(host)
        else:
            self.reset(host)
        self._changed()

    def up(self, host: str) -> None:
        """The host is back (a new incarnation): whatever it had open is reset."""
        self._note(f"up {host}")
        self.reset(host)
        self._down.discard(host)
        self._isolated.discard(host)
        self._gen[host] += 1
        self._wake_all()
        self._changed()

    # ------------------------------------------------------------ internals

    def _ephemeral_port(self, host: str) -> int:
        counter = self._ports.setdefault(host, itertools.count(40000))
        while True:
            port = next(counter)
            if (host, port) not in self._listeners:
                return port

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    async def _heal_wait(self) -> None:
        await self._healed.wait()

    def _wake_all(self) -> None:
        self._healed.set()
        self._healed = trio.Event()
        for conn in list(self._connections):
            conn.client.send_pipe.notify()
            conn.client.recv_pipe.notify()

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self._connections),
            "connects": self.connects,
            "bytes": self.bytes_sent,
        }
