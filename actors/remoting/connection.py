"""One remoting connection: a reader, one sender at a time, and the pending-request table.

Used by both ends: the server runs one ``Connection`` per accepted stream, the client one
per address.  The connection is the ``Channel`` handlers see (router.py).

Hot path, and why it looks the way it does (costs measured on the project machine: an
unbuffered channel hop ~16 us, a bare checkpoint ~4.5 us, a task spawn more than both):

* The reader decodes every whole frame of one ``receive_some`` and, for inline handlers,
  awaits the handler itself; replies are encoded by whoever produced them and appended to
  an outbox list.  No channel hop per request and no task per request.
* One task at a time holds the send turn and calls ``send_all``: the reader, for the
  replies of what it just read (no switch to another task, as in a minimal server), or
  the writer task, for frames other tasks queue (invokes, spawned handlers).  Whoever
  sends joins everything in the outbox into one buffer, so all frames that became ready
  meanwhile leave in a single ``send_all``.
* A reply waiter is a parked task (``wait_task_rescheduled``), woken by the reader with
  ``reschedule``: the cheapest wake-up trio has, no Event or channel per request; its
  timeout is an entry in a per-connection deadline heap, not a cancel scope per request.

Bounds (memory per connection stays bounded whatever the peer does):

* Unsent bytes (``queued_bytes``: encoded frames queued or in the middle of a
  ``send_all``) above ``write_limit`` stop the reader, checked after every frame, not
  only after a whole read: a peer that pipelines requests and never reads its replies
  meets TCP back pressure after at most one reply past the limit.  Producers (invokes,
  late replies) wait for room too.
* At most ``max_spawned`` spawned handlers run per connection; at that many the reader
  stops too, so their replies add at most ``max_spawned`` replies to the above.
* Frames are limited to ``max_frame_size`` before a byte of them is buffered
  (FrameDecoder).  A malformed or oversized frame ends this connection only.

Requests already read are served even when their replies can no longer be written: a
failed write discards the outbox and ends writing, but the reader goes on dispatching
what the peer sent until its end, and spawned handlers run to their end before the
connection's tasks are cancelled (a client that sends and closes at once loses nothing).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, final

import attrs
import outcome
import trio

from actors.remoting.errors import RemotingSendRequestError, RemotingTimeoutError
from actors.remoting.router import RequestContext, Router, reader_task
from protocol.codes import ResponseCode
from protocol.command import FLAG_ONEWAY, RemotingCommand
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.frame import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_command

log = logging.getLogger(__name__)

# 64 KiB takes dozens of pipelined 1 KiB sends per read; 16 KiB measured slower and
# 256 KiB no faster (64 requests in flight, apps/bench_remoting.py's send handler).
RECEIVE_SIZE = 64 * 1024
# Default unsent bytes per connection above which producers wait and the reader stops.
WRITE_HIGH_WATER = 4 * 1024 * 1024
# Default spawned handlers running per connection at which the reader stops.  Above the
# router's default per-code limit (64), so one connection's pipelined sends still fill it.
MAX_SPAWNED = 64
# Queued frames are joined into one send_all up to about this many bytes; a larger frame
# is sent by itself instead of being copied into a join.
JOIN_LIMIT = 256 * 1024

_opaques = itertools.count(1)


def next_opaque() -> int:
    """A process-wide request id (reference §1.7), wrapped to a positive int32."""
    return next(_opaques) & 0x7FFFFFFF


def stream_addresses(stream: trio.abc.Stream) -> tuple[str, str]:
    """(peer, local) as "ip:port" for a socket stream; placeholders for other streams."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return ("memory", "memory")
    try:
        return (_format_addr(sock.getpeername()), _format_addr(sock.getsockname()))
    except OSError:
        # Reset between accept and here: the reader will see it and end the connection.
        return ("unknown", "unknown")


def _format_addr(sockaddr: Any) -> str:
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        return f"{sockaddr[0]}:{sockaddr[1]}"
    return str(sockaddr)


def _with_opaque(cmd: RemotingCommand, opaque: int) -> RemotingCommand:
    # attrs.evolve introspects the fields on every call; this is the request hot path.
    return RemotingCommand(
        code=cmd.code,
        language=cmd.language,
        version=cmd.version,
        opaque=opaque,
        flag=cmd.flag,
        remark=cmd.remark,
        ext_fields=cmd.ext_fields,
        body=cmd.body,
        serialize_type=cmd.serialize_type,
    )


def _chunks(frames: list[bytes], total: int) -> Iterator[bytes]:
    """``frames`` as few buffers as copying at most ~JOIN_LIMIT bytes at a time allows."""
    if len(frames) == 1:
        yield frames[0]
    elif total <= JOIN_LIMIT:
        yield b"".join(frames)  # the common case: many small replies, one send_all
    else:
        run: list[bytes] = []
        size = 0
        for frame in frames:
            if len(frame) >= JOIN_LIMIT:
                if run:
                    yield b"".join(run)
                    run, size = [], 0
                yield frame
            else:
                run.append(frame)
                size += len(frame)
                if size >= JOIN_LIMIT:
                    yield b"".join(run)
                    run, size = [], 0
        if run:
            yield b"".join(run)


# A pending request's continuation: called exactly once with the reply or the failure.
_Resolve = Callable[[RemotingCommand | BaseException], None]


@final
@attrs.define(eq=False)
class Connection:
    """A live connection; implements the router's ``Channel`` protocol.

    Construct, then ``await nursery.start(conn.run)``; ``run`` returns when the
    connection is over, after failing every pending request and closing the stream.
    """

    stream: trio.abc.Stream
    router: Router
    peer: str
    local: str
    name: str = "conn"
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    idle_timeout: float | None = 120.0
    write_limit: int = WRITE_HIGH_WATER
    max_spawned: int = MAX_SPAWNED
    # Limits for untrusted peers (server side; 0 = none; actors/remoting/netconfig.py): frames
    # within one second, and bytes of requests held at once (decoder + unanswered bodies).
    max_frames_per_second: int = 0
    max_memory: int = 0

    _closed: bool = attrs.field(default=False, init=False)
    close_reason: str | None = attrs.field(default=None, init=False)
    # Invariant: every key is an opaque we sent a request with and whose waiter has neither
    # been resolved nor given up; whoever removes an entry resolves it (the reader with
    # the reply, the expirer with a timeout, _fail_pending with the loss) - except abort,
    # which removes it because the waiter is being cancelled anyway.
    _pending: dict[int, _Resolve] = attrs.field(factory=dict, init=False)
    _outbox: list[bytes] = attrs.field(factory=list, init=False)
    # Bytes of frames queued or being written: the send turn's holder subtracts what it
    # wrote only after send_all returns.
    _outbox_bytes: int = attrs.field(default=0, init=False)
    _spawned: int = attrs.field(default=0, init=False)
    # The most ``queued_bytes`` ever reached: what the write limit let this peer cost.
    peak_queued_bytes: int = attrs.field(default=0, init=False)
    # The send turn: True while one task (the reader after a read, or the writer) is in
    # _drain.  Invariant: whoever holds it empties the outbox before giving it up, so a
    # frame queued meanwhile needs no wake-up; frames queued without it wake the writer.
    _sending: bool = attrs.field(default=False, init=False)
    _writer_wake: trio.Event = attrs.field(factory=trio.Event, init=False)
    _room: trio.Event = attrs.field(factory=trio.Event, init=False)
    # Deadlines of requests, possibly already answered (see _expire_loop).
    _deadlines: list[tuple[float, int, float]] = attrs.field(factory=list, init=False)
    _timer: trio.CancelScope | None = attrs.field(default=None, init=False)
    _scope: trio.CancelScope | None = attrs.field(default=None, init=False)
    _nursery: trio.Nursery | None = attrs.field(default=None, init=False)
    _last_io: float = attrs.field(default=0.0, init=False)
    # Body bytes of spawned requests not yet answered (for max_memory).
    _held_bytes: int = attrs.field(default=0, init=False)
    _ctx: RequestContext = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._ctx = RequestContext(self)

    # ------------------------------------------------------------------ Channel API

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending_count(self) -> int:
        """Requests sent on this connection that still wait for their reply."""
        return len(self._pending)

    @property
    def queued_bytes(self) -> int:
        """Encoded frames not yet written: queued, or handed to a send_all still running."""
        return self._outbox_bytes

    @property
    def spawned_count(self) -> int:
        """Spawned handlers of this connection's requests still running."""
        return self._spawned

    def close(self, reason: str = "closed by this side") -> None:
        """Close the connection; pending requests fail at once.  Idempotent."""
        self._stop_writing(reason)
        if self._scope is not None:
            self._scope.cancel(reason=f"{self.name} {self.peer}: {self.close_reason}")

    def _stop_writing(self, reason: str) -> None:
        """No frame is queued any more (``closed``); tasks cut off from them go on."""
        if not self._closed:
            self._closed = True
            self.close_reason = reason
        self._room.set()

    async def send(self, cmd: RemotingCommand) -> None:
        """Queue ``cmd`` for the writer: a late reply, or a request that wants no answer.

        A request (not a response) gets a fresh opaque.  On a closed connection the frame
        is dropped, as Java's writeAndFlush on an inactive channel does: a held pull whose
        consumer went away has nobody to answer.
        """
        if not cmd.is_response:
            cmd = _with_opaque(cmd, next_opaque())
        # A checkpoint even when there is room: a loop answering many held requests must
        # not starve the other tasks (and must be cancellable).
        await trio.lowlevel.checkpoint()
        await self._wait_room()
        if self._closed:
            log.debug("%s %s: closed, dropping frame code=%d", self.name, self.peer, cmd.code)
            return
        self._enqueue(encode_command(cmd))

    async def send_oneway(self, cmd: RemotingCommand) -> None:
        """Send a request with the oneway bit and a fresh opaque; raise if closed."""
        cmd = attrs.evolve(cmd, opaque=next_opaque(), flag=(cmd.flag | FLAG_ONEWAY) & ~1)
        await trio.lowlevel.checkpoint()
        await self._wait_room()
        if self._closed:
            raise RemotingSendRequestError(self.peer, self.close_reason or "closed")
        self._enqueue(encode_command(cmd))

    async def invoke(self, cmd: RemotingCommand, timeout: float) -> RemotingCommand:
        """Send a request with a fresh opaque and wait for its reply.

        Raises RemotingTimeoutError (a TimeoutError) after ``timeout`` seconds; the reply,
        if it comes later, is dropped.  Raises RemotingSendRequestError at once when the
        connection is lost meanwhile.
        """
        await self._wait_room()
        if self._closed:
            raise RemotingSendRequestError(self.peer, self.close_reason or "closed")
        opaque = next_opaque()
        frame = encode_command(_with_opaque(cmd, opaque))
        task = trio.lowlevel.current_task()

        def resolve(result: RemotingCommand | BaseException) -> None:
            if isinstance(result, BaseException):
                trio.lowlevel.reschedule(task, outcome.Error(result))
            else:
                trio.lowlevel.reschedule(task, outcome.Value(result))

        def abort(_: Any) -> trio.lowlevel.Abort:
            # The caller's scope was cancelled: give up the entry, so a late reply finds
            # nothing and is dropped.
            self._pending.pop(opaque, None)
            return trio.lowlevel.Abort.SUCCEEDED

        self._pending[opaque] = resolve
        self._arm_timeout(trio.current_time() + timeout, opaque, timeout)
        self._enqueue(frame)
        reply: RemotingCommand = await trio.lowlevel.wait_task_rescheduled(abort)
        return reply

    # ------------------------------------------------------------------ timeouts

    # Why not ``with trio.move_on_after(timeout)`` around each wait: a cancel scope per
    # request measured about three bare checkpoints, a large share of a whole round trip.
    # Instead every request pushes (deadline, opaque) on a heap and one expirer task per
    # connection sleeps until the earliest deadline of a request still pending.  Answered
    # requests are left in the heap and skipped when the expirer passes them, so it wakes
    # about once per timeout period in steady traffic, yet fires exactly on time.

    def _arm_timeout(self, deadline: float, opaque: int, timeout: float) -> None:
        heapq.heappush(self._deadlines, (deadline, opaque, timeout))
        timer = self._timer
        if timer is not None and deadline < timer.deadline:
            timer.deadline = deadline

    async def _expire_loop(self) -> None:
        heap, pending = self._deadlines, self._pending
        while True:
            now = trio.current_time()
            while heap and (heap[0][0] <= now or heap[0][1] not in pending):
                _, opaque, timeout = heapq.heappop(heap)
                resolve = pending.pop(opaque, None)
                if resolve is not None:
                    resolve(RemotingTimeoutError(self.peer, opaque, timeout))
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as timer:
                self._timer = timer
                try:
                    await trio.sleep_forever()
                finally:
                    self._timer = None

    # ------------------------------------------------------------------ lifetime

    async def run(
        self, *, task_status: trio.TaskStatus[Connection] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._last_io = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._scope = nursery.cancel_scope
                if self._closed:
                    nursery.cancel_scope.cancel(reason=self.close_reason)
                nursery.start_soon(self._write_loop, name=f"{self.name}-writer {self.peer}")
                nursery.start_soon(self._expire_loop, name=f"{self.name}-expirer {self.peer}")
                if self.idle_timeout is not None:
                    nursery.start_soon(self._idle_watch, name=f"{self.name}-idle {self.peer}")
                async with trio.open_nursery() as handlers:
                    self._nursery = handlers
                    task_status.started(self)
                    reason = await self._read_loop()
                    # Nothing more will be read.  Spawned handlers of requests already read
                    # run to their end (a send is stored although nobody hears of it).
                    self._stop_writing(reason)
                    self._fail_pending()
                self.close(reason)
        finally:
            self.close("connection task ended")
            self._fail_pending()
            self._outbox, self._outbox_bytes = [], 0
            # The connection owns its stream: closing it is how the peer learns we are gone.
            await trio.aclose_forcefully(self.stream)
            log.info("%s %s: connection closed (%s)", self.name, self.peer, self.close_reason)

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            error = RemotingSendRequestError(self.peer, self.close_reason or "closed")
            for resolve in pending.values():
                resolve(error)

    # ------------------------------------------------------------------ reader

    async def _read_loop(self) -> str:
        """Read and dispatch until the peer is gone; return why the connection ends."""
        after_read = self.router.after_read
        if after_read is None:
            return await self._read_frames(None)
        reader_task.set(trio.lowlevel.current_task())
        try:
            return await self._read_frames(after_read)
        finally:
            after_read()  # what the last read appended, whatever ended the loop

    async def _read_frames(self, after_read: Callable[[], None] | None) -> str:
        decoder = FrameDecoder(self.max_frame_size)
        stream, router, ctx = self.stream, self.router, self._ctx
        nursery = self._nursery
        assert nursery is not None
        # Frame rate: frames counted since window_start; only when a count passes the limit is
        # the clock looked at (two local operations per read, not a token bucket's arithmetic).
        max_rate, window_start, window_frames = self.max_frames_per_second, trio.current_time(), 0
        max_memory = self.max_memory
        while True:
            if self._must_pause():
                await self._wait_readable()
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                return f"read failed: {exc!r}"
            if not data:
                return "peer closed the connection"
            self._last_io = trio.current_time()
            decoder.feed(data)
            # Unless the writer is mid-send, the reader writes this read's replies itself
            # right after dispatching them: no task switch to the writer per read, the way
            # a minimal server does it.  While it holds the send turn, frames enqueued by
            # other tasks wait for its drain instead of waking the writer.  Measured A/B
            # against a writer-task-only connection (server CPU per request, 1 KiB sends,
            # three runs): sequential 191-226 us instead of 220-280 us, pipelined (32 in
            # flight) the same 58-66 us; the CPU figure, unlike rates, holds on a busy box.
            own_turn = not self._sending
            self._sending = True
            frames = 0
            try:
                while (cmd := decoder.next_command()) is not None:
                    frames += 1
                    if cmd.is_response:
                        self._on_response(cmd)
                    elif router.is_inline(cmd.code):
                        self._reply(cmd, await router.dispatch(ctx, cmd))
                    else:
                        self._spawned += 1
                        self._held_bytes += len(cmd.body)
                        nursery.start_soon(self._serve, cmd)
                    if self._outbox_bytes > self.write_limit or self._spawned >= self.max_spawned:
                        # Over a limit in the middle of a read: write (or let the writer
                        # write) before decoding the next frame, so a read of many
                        # requests cannot queue many replies.
                        if own_turn:
                            own_turn = False
                            await self._drain()
                        if after_read is not None:
                            after_read()
                        await self._wait_readable()
                        own_turn = not self._sending
                        self._sending = True
            except RemoteProtocolError as exc:
                log.info("%s %s: closing on a bad frame: %s", self.name, self.peer, exc)
                return f"bad frame: {exc}"
            window_frames += frames
            if max_rate and window_frames > max_rate:
                if self._last_io - window_start >= 1.0:
                    window_start, window_frames = self._last_io, frames
                if window_frames > max_rate:
                    log.warning(
                        "%s %s: closing: more than %d frames within a second",
                        self.name,
                        self.peer,
                        max_rate,
                    )
                    return f"over {max_rate} frames per second"
            if max_memory and decoder.buffered + self._held_bytes > max_memory:
                log.warning(
                    "%s %s: closing: %d bytes of requests held, more than %d",
                    self.name,
                    self.peer,
                    decoder.buffered + self._held_bytes,
                    max_memory,
                )
                return f"over {max_memory} bytes of requests held"
            if own_turn:
                if not self._outbox:
                    self._sending = False  # a read of replies only: nothing to send
                else:
                    # A failed write ends writing only: what the peer sent is still served.
                    await self._drain()
            if after_read is not None:
                after_read()

    def _must_pause(self) -> bool:
        # After a failed write nothing is queued any more; the spawned bound still holds.
        return (
            self._outbox_bytes > self.write_limit and not self._closed
        ) or self._spawned >= self.max_spawned

    async def _wait_readable(self) -> None:
        """Wait until the unsent bytes and the spawned handlers are under their limits."""
        while self._must_pause():
            if self._room.is_set():
                self._room = trio.Event()
            await self._room.wait()

    def _on_response(self, cmd: RemotingCommand) -> None:
        resolve = self._pending.pop(cmd.opaque, None)
        if resolve is None:
            log.debug(
                "%s %s: reply to unknown or expired opaque %d dropped",
                self.name,
                self.peer,
                cmd.opaque,
            )
            return
        resolve(cmd)

    async def _serve(self, req: RemotingCommand) -> None:
        try:
            self._reply(req, await self.router.dispatch(self._ctx, req))
        finally:
            self._held_bytes -= len(req.body)
            self._spawned -= 1
            if self._spawned == self.max_spawned - 1:
                self._room.set()  # the reader may wait for this

    def _reply(self, req: RemotingCommand, reply: RemotingCommand | None) -> None:
        if reply is None or req.is_oneway or self._closed:
            return
        try:
            frame = encode_command(reply)
        except LocalProtocolError as exc:
            log.error(
                "%s %s: reply to code %d cannot be encoded: %s", self.name, self.peer, req.code, exc
            )
            frame = encode_command(
                req.reply(ResponseCode.SYSTEM_ERROR, f"reply not encodable: {exc}")
            )
        self._enqueue(frame)

    # ------------------------------------------------------------------ writer

    def _enqueue(self, frame: bytes) -> None:
        self._outbox.append(frame)
        self._outbox_bytes += len(frame)
        if self._outbox_bytes > self.peak_queued_bytes:
            self.peak_queued_bytes = self._outbox_bytes
        if not self._sending:
            self._writer_wake.set()

    async def _wait_room(self) -> None:
        while self._outbox_bytes > self.write_limit and not self._closed:
            if self._room.is_set():
                self._room = trio.Event()
            await self._room.wait()

    async def _drain(self) -> bool:
        """Send the outbox until it is empty, then give up the send turn.

        The caller holds the turn (``_sending``): the only task calling ``send_all``.
        Everything queued when it wakes goes out in one ``send_all``.  False if the
        stream broke (the connection is then closed).
        """
        stream = self.stream
        try:
            while self._outbox:
                outbox = self._outbox
                self._outbox = []
                for data in _chunks(outbox, self._outbox_bytes):
                    try:
                        await stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        self._write_failed(f"write failed: {exc!r}")
                        return False
                    self._outbox_bytes -= len(data)
                    self._last_io = trio.current_time()
                    if self._outbox_bytes <= self.write_limit:
                        self._room.set()
            return True
        finally:
            self._sending = False

    def _write_failed(self, reason: str) -> None:
        # The peer takes no more frames: drop what is queued (and anything queued later),
        # fail what waits for a reply; the reader still serves what the peer sent.
        self._stop_writing(reason)
        self._fail_pending()
        self._outbox, self._outbox_bytes = [], 0

    async def _write_loop(self) -> None:
        """Sends what tasks other than the reader queue (invokes, spawned handlers)."""
        while True:
            if self._sending or not self._outbox:
                self._writer_wake = trio.Event()
                await self._writer_wake.wait()
                continue
            self._sending = True
            if not await self._drain():
                return

    # ------------------------------------------------------------------ idle

    async def _idle_watch(self) -> None:
        assert self.idle_timeout is not None
        while True:
            deadline = self._last_io + self.idle_timeout
            if trio.current_time() >= deadline:
                self.close(f"idle for {self.idle_timeout:g}s")
                return
            await trio.sleep_until(deadline)


__all__ = [
    "MAX_SPAWNED",
    "RECEIVE_SIZE",
    "WRITE_HIGH_WATER",
    "Connection",
    "next_opaque",
    "stream_addresses",
]
