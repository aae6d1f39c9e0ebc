"""Remoting benchmark: codec cost per message and request/reply round trips over loopback.

    .venv/bin/python -m apps.bench_remoting [--seconds 2] [--inflight 32] [--in-process]

Prints, for a realistic SEND_MESSAGE_V2 request (1 KiB body) and its reply:

1. codec cost per message: encode and decode, JSON and ROCKETMQ header forms;
2. round trips per second and p50/p99 latency for one client, sequential and pipelined
   (N in flight), against
   - raw: a minimal trio echo server over length-prefixed frames, no codec at all (the
     base of the ratio; its client is raw too),
   - inline: remoting_server + open_remoting_client, send handler registered inline=True,
   - spawned: the same handler registered inline=False (one task per request).

The servers run in a child process by default (client and broker are separate processes
in real use, and each gets a core); ``--in-process`` runs everything on one trio loop.
Not a test: no assertions, only figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.connection import Connection
from actors.remoting.router import RequestContext, Router
from actors.remoting.server import remoting_server
from protocol.codes import RequestCode, ResponseCode, SerializeType
from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder, decode_frame, encode_command

INLINE_CODE = int(RequestCode.SEND_MESSAGE_V2)
SPAWN_CODE = 9310  # same handler, registered without inline
CPU_CODE = 9999  # the server process's CPU seconds so far, in the remark


def send_request(stype: SerializeType = SerializeType.JSON) -> RemotingCommand:
    """A SEND_MESSAGE_V2 as the C++ clients send it (clients README fact 5), 1 KiB body."""
    props = "KEYS\u0001order-42\u0002TAGS\u0001TagA\u0002UNIQ_KEY\u00017F0000014A2B18B4AAC27E5E4F3C0000\u0002WAIT\u0001true\u0002"
    ext = {
        "a": "bench_producer_group",
        "b": "BenchTopic",
        "c": "TBW102",
        "d": "4",
        "e": "3",
        "f": "0",
        "g": "1795741096560",
        "h": "0",
        "i": props,
        "j": "0",
        "k": "false",
        "l": "16",
        "m": "false",
        "n": "broker-a",
    }
    return RemotingCommand.request(
        INLINE_CODE, ext, b"x" * 1024, opaque=123456, serialize_type=stype
    )


def send_reply(req: RemotingCommand, queue_offset: int) -> RemotingCommand:
    return req.reply(
        ResponseCode.SUCCESS,
        None,
        {
            "msgId": f"7F00000100002A9F0000000000{queue_offset:06X}",
            "queueId": req.ext_fields.get("e", "0"),
            "queueOffset": str(queue_offset),
            "MSG_REGION": "DefaultRegion",
            "TRACE_ON": "true",
        },
    )


# ---------------------------------------------------------------- codec


def per_call_us(fn: Callable[[], object], seconds: float = 0.5) -> float:
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(200):
            fn()
        n += 200
    return elapsed / n * 1e6


def bench_codec() -> None:
    print("codec, per message (SEND_MESSAGE_V2 with 1 KiB body, and its reply):")
    print(f"  {'form':<9}{'message':<9}{'bytes':>7}{'encode µs':>12}{'decode µs':>12}")
    for stype in (SerializeType.JSON, SerializeType.ROCKETMQ):
        req = send_request(stype)
        for label, cmd in (("request", req), ("reply", send_reply(req, 4711))):
            frame = encode_command(cmd)
            enc = per_call_us(partial(encode_command, cmd))
            dec = per_call_us(partial(decode_frame, memoryview(frame)[4:]))
            print(f"  {stype.name:<9}{label:<9}{len(frame):>7}{enc:>12.2f}{dec:>12.2f}")
    # The decoder as the reader uses it: feed one read holding 64 requests, take them out.
    batch = encode_command(send_request()) * 64
    decoder = FrameDecoder()

    def feed_and_take() -> None:
        decoder.feed(batch)
        decoder.commands()

    print(
        f"  FrameDecoder, 64 JSON requests per feed: {per_call_us(feed_and_take) / 64:.2f} µs each"
    )


# ---------------------------------------------------------------- server path, no sockets


class CannedStream(trio.abc.Stream):
    """Hands out the same read ``reads`` times, then EOF; swallows what is sent.

    Both sides checkpoint like a socket that never blocks, so what is timed is the Python
    work per request (decode, dispatch, encode, write) without the kernel's noise.
    """

    def __init__(self, chunk: bytes, reads: int) -> None:
        self.chunk = chunk
        self.reads = reads
        self.sent = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.reads == 0:
            return b""
        self.reads -= 1
        return self.chunk

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.sent += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def minimal_loop(stream: trio.abc.Stream) -> None:
    """The body of minimal_codec_server's connection handler."""
    decoder = FrameDecoder()
    log = bytearray()
    while data := await stream.receive_some(65536):
        decoder.feed(data)
        out = []
        while (req := decoder.next_command()) is not None:
            offset = len(log)
            log.extend(req.body)
            out.append(encode_command(send_reply(req, offset)))
        if out:
            await stream.send_all(b"".join(out))


async def bench_server_path(per_read: int, requests: int = 20_000) -> None:
    print(f"server path per request, no sockets ({per_read} requests per read):")
    reads = requests // per_read
    for name, code in (("minimal loop", None), ("inline", INLINE_CODE), ("spawned", SPAWN_CODE)):
        frame = encode_command(
            RemotingCommand.request(code or INLINE_CODE, send_request().ext_fields, b"x" * 1024)
        )
        stream = CannedStream(frame * per_read, reads)
        t0 = time.process_time()
        if code is None:
            await minimal_loop(stream)
        else:
            conn = Connection(
                stream, bench_router(), peer="canned", local="canned", idle_timeout=None
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(conn.run)
        cpu = time.process_time() - t0
        print(f"  {name:<14}{cpu / (reads * per_read) * 1e6:8.1f} µs CPU per request")


# ---------------------------------------------------------------- servers


async def raw_echo_server(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Length-prefixed frames in, one canned reply frame out per frame; no codec."""
    reply = encode_command(send_reply(send_request(), 1))

    async def handle(stream: trio.SocketStream) -> None:
        buf = bytearray()
        while data := await stream.receive_some(65536):
            buf += data
            pos, out = 0, []
            while len(buf) - pos >= 4:
                (length,) = struct.unpack_from(">i", buf, pos)
                if len(buf) - pos - 4 < length:
                    break
                pos += 4 + length
                out.append(reply)
            del buf[:pos]
            if out:
                await stream.send_all(b"".join(out))

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def minimal_codec_server(
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """What the broker's send path must at least do: decode, append, encode, send."""

    async def handle(stream: trio.SocketStream) -> None:
        decoder = FrameDecoder()
        log = bytearray()
        while data := await stream.receive_some(65536):
            decoder.feed(data)
            out = []
            while (req := decoder.next_command()) is not None:
                offset = len(log)
                log.extend(req.body)
                out.append(encode_command(send_reply(req, offset)))
            if len(log) > 64 * 1024 * 1024:
                log.clear()
            if out:
                await stream.send_all(b"".join(out))

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


def bench_router() -> Router:
    log = bytearray()  # stands in for the commit log: the handler appends the body

    async def send_handler(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ext = req.ext_fields
        _topic, _queue = ext["b"], int(ext["e"])
        offset = len(log)
        log.extend(req.body)
        if len(log) > 64 * 1024 * 1024:
            log.clear()
        return send_reply(req, offset)

    async def cpu_handler(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return req.reply(ResponseCode.SUCCESS, repr(time.process_time()))

    router = Router("bench")
    router.register(CPU_CODE, cpu_handler, inline=True)
    router.register(INLINE_CODE, send_handler, inline=True)
    router.register(SPAWN_CODE, send_handler, inline=False, limit=1024)
    return router


async def start_servers(nursery: trio.Nursery) -> tuple[int, int, int]:
    raw_port = await nursery.start(raw_echo_server)
    minimal_port = await nursery.start(minimal_codec_server)
    handle = await nursery.start(
        partial(remoting_server, host="127.0.0.1", port=0, name="bench", idle_timeout=None),
        bench_router(),
    )
    return raw_port, minimal_port, handle.port


async def serve_forever() -> None:
    async with trio.open_nursery() as nursery:
        ports = await start_servers(nursery)
        print("PORTS", *ports, flush=True)
        # Exit when the parent closes our stdin (or kills us).
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel(reason="parent done")


# ---------------------------------------------------------------- clients


def summarize(
    name: str, latencies: list[float], elapsed: float, base: float | None, cpu: float | None = None
) -> float:
    rate = len(latencies) / elapsed
    q = statistics.quantiles(latencies, n=100)
    ratio = f"{rate / base:6.2f}x" if base else "   base"
    cpu_text = f"{cpu / len(latencies) * 1e6:7.1f}" if cpu is not None else "      -"
    print(
        f"  {name:<22}{rate:>8.0f}/s {ratio}  p50 {q[49] * 1e6:6.0f} µs  p99 {q[98] * 1e6:6.0f} µs"
        f"  server CPU {cpu_text} µs/req"
    )
    return rate


async def run_clients(
    inflight: int, seconds: float, call: Callable[[], Awaitable[object]]
) -> tuple[list[float], float]:
    latencies: list[float] = []
    stop_at = trio.current_time() + seconds

    async def loop() -> None:
        while trio.current_time() < stop_at:
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(inflight):
            nursery.start_soon(loop)
    return latencies, time.perf_counter() - t0


async def raw_pipelined(
    port: int, inflight: int, seconds: float, code: int = INLINE_CODE
) -> tuple[list[float], float]:
    """One raw connection, ``inflight`` frames outstanding, replies matched in order.

    The client does no decoding at all, so it measures the server alone.
    """
    frame = encode_command(
        RemotingCommand.request(code, send_request().ext_fields, b"x" * 1024, opaque=1)
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    sent_at: list[float] = []
    latencies: list[float] = []
    window = trio.Semaphore(inflight)
    stop_at = trio.current_time() + seconds

    async def sender(receiver_scope: trio.CancelScope) -> None:
        while trio.current_time() < stop_at:
            await window.acquire()
            batch = 1
            # Take every free slot at once, like a pipelining client writes what it has.
            while window.statistics().tasks_waiting == 0 and window.value > 0:
                window.acquire_nowait()
                batch += 1
            now = time.perf_counter()
            sent_at.extend([now] * batch)
            await stream.send_all(frame * batch)
        # Every outstanding reply gives back its slot: holding all slots means all arrived.
        for _ in range(inflight):
            await window.acquire()
        receiver_scope.cancel(reason="all replies received")

    async def receiver() -> None:
        buf = bytearray()
        received = 0
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise RuntimeError(f"server closed after {received} replies")
            buf += data
            pos = 0
            while len(buf) - pos >= 4:
                (length,) = struct.unpack_from(">i", buf, pos)
                if len(buf) - pos - 4 < length:
                    break
                pos += 4 + length
                latencies.append(time.perf_counter() - sent_at[received])
                received += 1
                window.release()
            del buf[:pos]

    t0 = time.perf_counter()
    with trio.move_on_after(seconds * 10 + 30) as guard:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender, nursery.cancel_scope)
            nursery.start_soon(receiver)
    elapsed = time.perf_counter() - t0
    if guard.cancelled_caught:
        print(
            f"  (stalled: sent {len(sent_at)}, received {len(latencies)}, window {window.value})",
            file=sys.stderr,
        )
    await stream.aclose()
    return latencies, elapsed


async def bench_round_trips(
    ports: tuple[int, int, int], seconds: float, inflight: int, *, server_cpu: bool
) -> None:
    """Throughput and latency per case; with ``server_cpu`` (servers in a child process)
    also the server's CPU time per request, which a loaded machine disturbs far less
    than wall-clock rates."""
    raw_port, minimal_port, port = ports
    addr = f"127.0.0.1:{port}"
    limit = seconds * 10 + 30  # a hang must not freeze the benchmark
    async with open_remoting_client(idle_timeout=None, name="bench") as client:

        async def cpu_now() -> float | None:
            if not server_cpu:
                return None
            reply = await client.invoke(addr, RemotingCommand.request(CPU_CODE), 5.0)
            return float(reply.remark or "nan")

        async def measure(
            run: Callable[[], Awaitable[tuple[list[float], float]]],
        ) -> tuple[list[float], float, float | None]:
            before = await cpu_now()
            with trio.fail_after(limit):
                lat, el = await run()
            after = await cpu_now()
            return lat, el, (after - before if after is not None and before is not None else None)

        for n in (1, inflight):
            label = "sequential" if n == 1 else f"pipelined, {n} in flight"
            print(f"round trips, one client, {label}:")
            lat, el, cpu = await measure(partial(raw_pipelined, raw_port, n, seconds))
            base = summarize("raw client, raw echo", lat, el, None, cpu)
            for name, server_port, code in (
                ("raw client, minimal", minimal_port, INLINE_CODE),
                ("raw client, inline", port, INLINE_CODE),
                ("raw client, spawned", port, SPAWN_CODE),
            ):
                lat, el, cpu = await measure(partial(raw_pipelined, server_port, n, seconds, code))
                summarize(name, lat, el, base, cpu)
            for name, code in (("client, inline", INLINE_CODE), ("client, spawned", SPAWN_CODE)):
                req = RemotingCommand.request(code, send_request().ext_fields, b"x" * 1024)
                call = partial(client.invoke, addr, req, 5.0)
                lat, el, cpu = await measure(partial(run_clients, n, seconds, call))
                summarize(name, lat, el, base, cpu)


async def main(args: argparse.Namespace) -> None:
    print(f"python {sys.version.split()[0]}, trio {trio.__version__}, pid {os.getpid()}")
    bench_codec()
    for per_read in (1, 32):
        await bench_server_path(per_read)
    if args.in_process:
        async with trio.open_nursery() as nursery:
            ports = await start_servers(nursery)
            print("servers: in this process")
            await bench_round_trips(ports, args.seconds, args.inflight, server_cpu=False)
            nursery.cancel_scope.cancel()
        return
    child = await trio.lowlevel.open_process(
        [sys.executable, "-m", "apps.bench_remoting", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await child.stdout.receive_some()
                if not chunk:
                    raise RuntimeError("benchmark server process exited early")
                line += chunk
        _, raw_port, minimal_port, port = line.split()
        print(
            f"servers: child process {child.pid}; {os.cpu_count()} cpus,"
            f" load {os.getloadavg()[0]:.1f}"
        )
        await bench_round_trips(
            (int(raw_port), int(minimal_port), int(port)),
            args.seconds,
            args.inflight,
            server_cpu=True,
        )
    finally:
        with trio.move_on_after(5, shield=True):
            if child.stdin is not None:
                await child.stdin.aclose()
            await child.wait()
        if child.returncode is None:
            child.kill()  # only the process this benchmark started
            with trio.CancelScope(shield=True):
                await child.wait()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument(
        "--inflight", type=int, default=32, help="requests in flight when pipelined"
    )
    parser.add_argument("--in-process", action="store_true", help="servers on the same trio loop")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    trio.run(serve_forever if args.serve else partial(main, args))


if __name__ == "__main__":
    cli()
