"""Consumer benchmark: consume TPS and end-to-end latency (born timestamp to consume).

    python -m apps.bench_consumer --backlog 200000        # fill, then drain with one consumer
    python -m apps.bench_consumer                         # live: bench_producer feeds it
    python -m apps.bench_consumer -n 127.0.0.1:9876 --label apache --backlog 100000

Without ``-n`` it starts our namesrv + broker.  ``--backlog N`` first stores N messages (batch
sends) and then measures one consumer draining them from the first offset; the run ends when
all N arrived (``--count`` defaults to N).  Without it the consumer starts at the last offset
and a ``bench_producer`` child process (``--producer-args``) sends for the whole run.

Every second: Consume TPS, born-to-consume (B2C) max/average/p50/p99; at the end a summary,
the store-to-consume (S2C) average, where each process ran, and with ``--json`` one JSON line
(``tps``, ``p50_ms``, ``p99_ms`` of B2C, ``received``, ``failed``...).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import operator
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import trio

from actors.client.consume_service import ConsumeContext, ConsumeStatus
from actors.client.consumer import ConsumerSettings
from actors.client.message import Message, MessageExt
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere, PushConsumer
from apps import _bench, _bench_servers, _security
from apps._bench import CpuWatch, Histogram, Meter, Proc, Ticker, say

PREFILL_BATCH = 64
PREFILL_SENDERS = 4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_consumer",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _bench.add_common_options(parser)
    parser.add_argument("-g", "--group", help="consumer group (default: a fresh one per run)")
    parser.add_argument("--backlog", type=int, default=0, help="store N messages, then drain")
    parser.add_argument("--client", choices=("push", "lite"), default="push")
    parser.add_argument("--pull-batch", type=int, default=32, help="pullBatchSize")
    parser.add_argument(
        "--consume-batch",
        type=int,
        default=1,
        help="consumeMessageBatchMaxSize: messages per push listener call (Java's default 1)",
    )
    parser.add_argument(
        "--client-profile",
        metavar="FILE",
        help="cProfile this process (the consumer) while it drains; pstats written to FILE",
    )
    parser.add_argument(
        "--producer-args",
        default="--mode async -w 64",
        help="extra bench_producer options for the live feed",
    )
    return parser


class Receiver:
    """Counts what arrives; B2C latencies in the meter, S2C beside it.

    Its own time is kept apart (``cpu_s``), so the report can give the consumer's cost per
    message without the bench's bookkeeping: wall time, which equals CPU time for this code
    that never blocks, because reading the thread's CPU clock is a system call here (~0.8 us,
    twice per push listener call).  Timestamps are whole milliseconds and a
    batch shares one "now", so each distinct timestamp of a batch is recorded once with its
    count: the same histogram, without a Python call per message.
    """

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.s2c = Histogram()
        self.received = 0
        self.cpu_s = 0.0
        self.last_at = 0.0  # perf_counter when the latest batch arrived

    def on_messages(self, msgs: Sequence[MessageExt]) -> None:
        if not msgs:
            return
        began = self.last_at = time.perf_counter()
        now_ms = time.time() * 1000
        meter = self.meter
        self.received += len(msgs)
        if len(msgs) == 1:  # a push listener's usual batch: no Counter for one message
            born_counts: Iterable[tuple[int, int]] = ((msgs[0].born_timestamp, 1),)
            store_counts: Iterable[tuple[int, int]] = ((msgs[0].store_timestamp, 1),)
        else:
            born_counts = Counter(map(_BORN, msgs)).items()
            store_counts = Counter(map(_STORED, msgs)).items()
        for born, n in born_counts:
            meter.success(max(0.0, now_ms - born) / 1000, n)
        if meter.measuring:
            for stored, n in store_counts:
                self.s2c.record(int(max(0.0, now_ms - stored) * 1000), n)
            self.cpu_s += time.perf_counter() - began


_BORN = operator.attrgetter("born_timestamp")
_STORED = operator.attrgetter("store_timestamp")


async def prefill(namesrv: str, args: argparse.Namespace) -> float:
    """Store ``--backlog`` messages with batch sends; messages/s it took."""
    body = (b"RocketMQ" * (args.size // 8 + 1))[: args.size]
    batches = -(-args.backlog // PREFILL_BATCH)
    todo = iter(range(batches))
    start = time.perf_counter()
    async with Producer(
        "benchmark_prefill", namesrv=namesrv, **_security.client_options(args)
    ) as producer:

        async def sender() -> None:
            for i in todo:
                n = min(PREFILL_BATCH, args.backlog - i * PREFILL_BATCH)
                await producer.send_batch([Message(args.topic, body) for _ in range(n)])

        async with trio.open_nursery() as nursery:
            for _ in range(PREFILL_SENDERS):
                nursery.start_soon(sender)
    backlog: int = args.backlog
    return backlog / (time.perf_counter() - start)


async def _consume_push(
    namesrv: str, group: str, args: argparse.Namespace, receiver: Receiver, stop: trio.Event
) -> None:
    async def listener(msgs: list[MessageExt], ctx: ConsumeContext) -> ConsumeStatus:
        receiver.on_messages(msgs)
        return ConsumeStatus.CONSUME_SUCCESS

    settings = ConsumerSettings(
        pull_batch_size=args.pull_batch, consume_batch_size=args.consume_batch
    )
    consumer = PushConsumer(
        group,
        namesrv=namesrv,
        listener=listener,  # type: ignore[arg-type]
        consume_from_where=_from_where(args),
        settings=settings,
        **_security.client_options(args),
    )
    consumer.subscribe(args.topic, "*")
    async with consumer:
        await stop.wait()


async def _consume_lite(
    namesrv: str, group: str, args: argparse.Namespace, receiver: Receiver, stop: trio.Event
) -> None:
    async with LitePullConsumer(
        group,
        namesrv=namesrv,
        consume_from_where=_from_where(args),
        pull_batch_size=args.pull_batch,
        **_security.client_options(args),
    ) as consumer:
        await consumer.subscribe(args.topic, "*")
        while not stop.is_set():
            receiver.on_messages(await consumer.poll(timeout=0.2))


@contextlib.contextmanager
def client_profiled(path: str | None) -> Any:
    """cProfile of this process meanwhile: deterministic call counts of the consumer's hot
    path (py-spy samples the broker; here the consumer shares the process with the bench)."""
    if path is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)
        say(f"profile of the consumer written to {path}")


def _from_where(args: argparse.Namespace) -> ConsumeFromWhere:
    if args.backlog:
        return ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
    return ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET


@contextlib.asynccontextmanager
async def live_feed(namesrv: str, args: argparse.Namespace, seconds: float) -> Any:
    """bench_producer as a child process for ``seconds``; its output is discarded."""
    cmd = [
        sys.executable,
        "-m",
        "apps.bench_producer",
        "-n",
        namesrv,
        "-t",
        args.topic,
        "-s",
        str(args.size),
        "--duration",
        f"{seconds:g}",
        "--warmup",
        "0",
        "--quiet",
        *_security.forwarded(args),
        *shlex.split(args.producer_args),
    ]
    proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.DEVNULL, cwd=_bench.ROOT)
    try:
        yield Proc("producer", proc.pid)
    finally:
        with trio.CancelScope(shield=True):
            await _bench_servers.stop_quietly(proc, "producer")


async def run_target(
    label: str, namesrv: str, args: argparse.Namespace, procs: Sequence[Proc]
) -> dict[str, Any]:
    await _bench_servers.ensure_topic(
        namesrv, args.topic, args.queues, **_security.remoting_options(args)
    )
    result: dict[str, Any] = {"label": label, "client": args.client}
    if args.backlog:
        rate = await prefill(namesrv, args)
        say(f"stored a backlog of {args.backlog:,} messages ({rate:,.0f} msg/s, batch sends)")
        result["prefill_tps"] = round(rate, 1)
    count: int | None = args.count if args.count is not None else (args.backlog or None)
    meter = Meter(measuring=False)
    receiver = Receiver(meter)
    group = args.group or f"benchmark_consumer_{uuid.uuid4().hex[:8]}"
    stop = trio.Event()
    consume = _consume_push if args.client == "push" else _consume_lite
    watch = CpuWatch([Proc("bench", os.getpid()), *procs])
    feed_seconds = args.warmup + args.duration + 2
    async with contextlib.AsyncExitStack() as stack:
        if not args.backlog:
            feeder = await stack.enter_async_context(live_feed(namesrv, args, feed_seconds))
            watch.procs = [*watch.procs, feeder]
        with Ticker(f"{label} consume", quiet=args.quiet) as ticker:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume, namesrv, group, args, receiver, stop)
                if not args.backlog:
                    await trio.sleep(args.warmup)
                meter.measuring = True
                meter.roll()
                watch.start()
                start = time.perf_counter()
                deadline: float = start + args.duration

                def finished() -> bool:
                    if count is not None:
                        return meter.ok >= count
                    return time.perf_counter() >= deadline

                def progress() -> str:
                    return f"{meter.ok:,} received, {time.perf_counter() - start:.1f} s"

                async with _bench.profiled(*_bench.profile_target(procs, args.profile)):
                    with client_profiled(args.client_profile):
                        await _bench.tick_until(
                            meter, ticker, finished, verb="Consume", progress=progress
                        )
                measured = time.perf_counter() - start
                if count and receiver.last_at > start:
                    # The drain ended when the last message arrived; the tick loop only
                    # notices at its next check, a quarter of a second later at worst.
                    measured = receiver.last_at - start
                meter.measuring = False
                watch.stop()
                stop.set()
        # Read while the live feeder still exists: its affinity and peak RSS go with it.
        placement = _bench.placement_lines(watch)
        result.update(_bench.cpu_fields(watch, meter.ok))
    if "bench_cpu_s" in result and meter.ok:
        # The consumer's own cost: the bench process minus the receiver's bookkeeping.
        client_s = result["bench_cpu_s"] - receiver.cpu_s
        result["receiver_cpu_s"] = round(receiver.cpu_s, 3)
        result["client_cpu_us_per_msg"] = round(client_s * 1e6 / meter.ok, 2)
    result.update(_bench.summary_fields(meter, measured))
    result["received"] = meter.ok
    result["failed"] = 0
    result["s2c_avg_ms"] = round(receiver.s2c.mean_us / 1000, 3)
    result["s2c_p99_ms"] = round(receiver.s2c.percentile(99) / 1000, 3)
    for line in placement:
        say(line)
    return result


def describe(r: dict[str, Any]) -> str:
    text = (
        f"{r['label']:<8} {r['client']:<5} {r['tps']:>10,.0f} msg/s  B2C p50 {r['p50_ms']:.3f} ms"
        f"  p99 {r['p99_ms']:.3f} ms  max {r['max_ms']:.3f} ms  S2C avg {r['s2c_avg_ms']:.3f} ms"
        f"  received {r['received']:,}"
    )
    if "client_cpu_us_per_msg" in r:
        text += f"  client CPU {r['client_cpu_us_per_msg']:.1f} us/msg"
    if "broker_cpu_us_per_msg" in r:
        text += f"  broker CPU {r['broker_cpu_us_per_msg']:.1f} us/msg"
    return text


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cpus = _bench.parse_cpus(args.bench_cpus)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    say(
        f"bench_consumer: {args.client} consumer, pull batch {args.pull_batch}"
        + (f", consume batch {args.consume_batch}" if args.client == "push" else "")
        + f", -s {args.size}, "
        + (f"drain a backlog of {args.backlog:,}" if args.backlog else f"live {args.duration:g} s")
    )
    results = []
    async with contextlib.AsyncExitStack() as stack:
        label, namesrv, procs = await _bench_servers.open_target(stack, args)
        say(f"--- {label} (namesrv {namesrv})")
        results.append(await run_target(label, namesrv, args, procs))
        say(describe(results[-1]))
    summary = _bench.median_of(results)
    summary["bench_peak_rss_mib"] = Proc("bench", os.getpid()).peak_rss_mib()
    summary["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    summary["calibration_us"] = round(_bench.calibrate(), 2)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.pull_batch < 1 or args.consume_batch < 1 or args.size < 1 or args.backlog < 0:
        raise SystemExit("bench_consumer: --pull-batch, --consume-batch and -s must be positive")
    try:
        summary = trio.run(bench, args)
    except KeyboardInterrupt:
        return 130
    if args.json:
        _bench.emit_json(summary)
    return 0 if summary["received"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
