"""Producer benchmark, with RocketMQ's options, against our broker, Apache's, and the floor.

    python -m apps.bench_producer                         # starts our namesrv + broker
    python -m apps.bench_producer --floor --repeat 3      # + the floor server, ratios to it
    python -m apps.bench_producer -n 127.0.0.1:9876 --label apache --broker-pid 1234
    python -m apps.bench_producer --mode batch --batch-size 64 --json

Every second a line like RocketMQ's benchmark (Send TPS, Max RT, Average RT, Send Failed,
Response Failed) plus p50/p99; at the end a summary per target, where each process ran and
its CPU time, and with ``--json`` one JSON line (``tps``, ``p50_ms``, ``p99_ms``, ``sent``,
``failed``, ...; ``floor`` and ``ratio_*`` with ``--floor``).

Modes (``-w`` is the concurrency): ``sync`` - w tasks each awaiting its send; ``async`` - up
to w sends in flight through ``send_async``; ``oneway`` - w tasks, no reply; ``batch`` - w
tasks each sending ``--batch-size`` messages per request.  Latency is from the call to the
result (to the call's return for oneway).  "Send Failed" counts sends that got no answer,
"Response Failed" those the broker refused.

``--rate R`` paces all senders together to R requests/s, open loop: latency then runs from
each request's due time, so a broker stall shows in the percentiles of every request queued
behind it.  Flat out (the default) the slower side sets the pace, and a oneway send's latency
is mostly the client waiting for socket buffer room while the broker catches up.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from actors.client.errors import BrokerError, ClientError
from actors.client.message import Message, SendResult, SendStatus
from actors.client.producer import Producer, ProducerConfig
from actors.remoting.client import open_remoting_client
from apps import _bench, _bench_servers, _security
from apps._bench import CpuWatch, Meter, Proc, Ticker, say
from apps._rawsend import RawSender


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_producer",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _bench.add_common_options(parser)
    parser.add_argument("-w", "--threads", type=int, default=16, help="concurrency")
    parser.add_argument("-k", "--keys", action="store_true", help="a unique key per message")
    parser.add_argument("-c", "--tag-count", type=int, default=0, help="tags TagA0..TagA{c-1}")
    parser.add_argument("--mode", choices=("sync", "async", "oneway", "batch"), default="sync")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="requests/s in total, open loop, latency from each request's due time (0: flat out)",
    )
    parser.add_argument(
        "--client",
        choices=("producer", "raw"),
        default="producer",
        help="our Producer, or raw frames through the remoting client (apps/_rawsend.py)",
    )
    parser.add_argument("-g", "--group", default="benchmark_producer")
    parser.add_argument(
        "--topics",
        type=int,
        default=1,
        help="raw client: send round robin to this many new topics, each auto-created by its "
        "first send (use --warmup 0 to measure the creations)",
    )
    parser.add_argument("--floor", action="store_true", help="also run the floor; print ratios")
    parser.add_argument("--repeat", type=int, default=1, help="runs per target (median kept)")
    return parser


class Workload:
    """Messages as RocketMQ's benchmark builds them: a fixed body, optional keys and tags."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.topic = args.topic
        self.body = (b"RocketMQ" * (args.size // 8 + 1))[: args.size]
        self.keys = args.keys
        self.tag_count = args.tag_count
        self.counter = itertools.count()

    def message(self) -> Message:
        i = next(self.counter)
        return Message(
            self.topic,
            self.body,
            tags=f"TagA{i % self.tag_count}" if self.tag_count else None,
            keys=str(i) if self.keys else None,
        )


def _fail(meter: Meter) -> Callable[[int, bool], None]:
    def failure(n: int, response: bool) -> None:
        meter.failure(n, response=response)

    return failure


def _record(meter: Meter, began: float, result: SendResult | Exception, n: int = 1) -> None:
    if isinstance(result, SendResult):
        if result.status is SendStatus.SEND_OK:
            meter.success(time.perf_counter() - began, n)
        else:
            meter.failure(n, response=True)
    else:
        meter.failure(n, response=isinstance(result, BrokerError))


async def _send_loop(
    producer: Producer, args: argparse.Namespace, meter: Meter, wl: Workload, stop: trio.Event
) -> None:
    mode = args.mode
    pacer = args.pacer
    while not stop.is_set():
        began = time.perf_counter() if pacer is None else await pacer.next()
        try:
            if mode == "sync":
                _record(meter, began, await producer.send(wl.message()))
            elif mode == "oneway":
                await producer.send_oneway(wl.message())
                meter.success(time.perf_counter() - began)
            else:
                msgs = [wl.message() for _ in range(args.batch_size)]
                _record(meter, began, await producer.send_batch(msgs), len(msgs))
        except ClientError as exc:
            _record(meter, began, exc, args.batch_size if mode == "batch" else 1)


async def _async_loop(
    producer: Producer, meter: Meter, wl: Workload, stop: trio.Event, pacer: _bench.Pacer | None
) -> None:
    # The producer's own in-flight bound (max_async_in_flight = -w) paces this loop.
    while not stop.is_set():
        began = time.perf_counter() if pacer is None else await pacer.next()

        def done(result: SendResult | Exception, began: float = began) -> None:
            _record(meter, began, result)

        await producer.send_async(wl.message(), done)


async def run_target(
    label: str, namesrv: str, args: argparse.Namespace, procs: Sequence[Proc]
) -> dict[str, Any]:
    """One measured run against ``namesrv``; the summary fields of that run."""
    broker_addr = await _bench_servers.ensure_topic(
        namesrv, args.topic, args.queues, **_security.remoting_options(args)
    )
    wl = Workload(args)
    args.pacer = _bench.Pacer(args.rate) if args.rate > 0 else None
    meter = Meter(measuring=False)
    config = ProducerConfig(max_async_in_flight=args.threads, send_timeout=3.0)
    watch = CpuWatch([Proc("bench", os.getpid()), *procs])
    stop = trio.Event()
    measured = 0.0
    async with contextlib.AsyncExitStack() as stack:
        if args.client == "raw":
            remoting = await stack.enter_async_context(
                open_remoting_client(name="bench-raw", **_security.remoting_options(args))
            )
            raw = RawSender(
                remoting,
                broker_addr,
                topic=args.topic,
                queues=args.queues,
                body=wl.body,
                keys=args.keys,
                tag_count=args.tag_count,
                topics=args.topics,
            )
        else:
            producer = await stack.enter_async_context(
                Producer(
                    args.group, namesrv=namesrv, config=config, **_security.client_options(args)
                )
            )
        with Ticker(f"{label} {args.mode}", quiet=args.quiet) as ticker:
            async with trio.open_nursery() as nursery:
                if args.client == "raw":
                    for _ in range(args.threads):
                        nursery.start_soon(
                            functools.partial(
                                raw.loop,
                                args.mode,
                                args.batch_size,
                                stop,
                                meter.success,
                                _fail(meter),
                                pacer=args.pacer,
                            )
                        )
                elif args.mode == "async":
                    nursery.start_soon(_async_loop, producer, meter, wl, stop, args.pacer)
                else:
                    for _ in range(args.threads):
                        nursery.start_soon(_send_loop, producer, args, meter, wl, stop)
                await trio.sleep(args.warmup)
                meter.measuring = True
                meter.roll()
                watch.start()
                start = time.perf_counter()
                deadline: float = start + args.duration
                count: int | None = args.count

                def finished() -> bool:
                    if count is not None:
                        return meter.ok + meter.failed + meter.response_failed >= count
                    return time.perf_counter() >= deadline

                def progress() -> str:
                    return f"{meter.ok:,} sent, {time.perf_counter() - start:.1f} s"

                async with _bench.profiled(*_bench.profile_target(procs, args.profile)):
                    await _bench.tick_until(meter, ticker, finished, verb="Send", progress=progress)
                measured = time.perf_counter() - start
                meter.measuring = False
                watch.stop()
                stop.set()
            # In-flight async sends finish inside the producer before it closes.
    result: dict[str, Any] = {
        "label": label,
        "mode": args.mode,
        "client": args.client,
        **_bench.summary_fields(meter, measured),
        "sent": meter.ok,
        "failed": meter.failed + meter.response_failed,
        "send_failed": meter.failed,
        "response_failed": meter.response_failed,
        **_bench.cpu_fields(watch, meter.ok),
    }
    for line in _bench.placement_lines(watch):
        say(line)
    return result


def describe(result: dict[str, Any]) -> str:
    text = (
        f"{result['label']:<8} {result['mode']:<6} {result['tps']:>10,.0f} msg/s  "
        f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
        f"max {result['max_ms']:.3f} ms  sent {result['sent']:,}  failed {result['failed']}"
    )
    for name in ("broker", "floor"):
        if f"{name}_cpu_us_per_msg" in result:
            text += f"  {name} CPU {result[f'{name}_cpu_us_per_msg']:.1f} us/msg"
    return text


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    cpus = _bench.parse_cpus(args.bench_cpus)
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    say(
        f"bench_producer: mode {args.mode}, -w {args.threads}, -s {args.size}, "
        + (f"batch {args.batch_size}, " if args.mode == "batch" else "")
        + (f"{args.count:,} messages" if args.count else f"{args.duration:g} s")
        + f" per run, {args.repeat} run(s) per target"
    )
    runs: dict[str, list[dict[str, Any]]] = {}

    async def measure(label: str, namesrv: str, procs: Sequence[Proc]) -> None:
        say(f"--- {label} (namesrv {namesrv})")
        runs.setdefault(label, []).append(await run_target(label, namesrv, args, procs))
        say(describe(runs[label][-1]))

    async with contextlib.AsyncExitStack() as stack:
        label, namesrv, procs = await _bench_servers.open_target(stack, args)
        floor = None
        if args.floor:
            floor = await stack.enter_async_context(
                _bench_servers.floor_process(
                    cpus=_bench.parse_cpus(args.server_cpus), parent_dir=args.dir
                )
            )
        for _ in range(args.repeat):
            # Alternate, so drift in the machine's load hits both alike.
            if floor is not None:
                await measure("floor", floor[0], [floor[1]])
            await measure(label, namesrv, procs)
    summary = _bench.median_of(runs[label])
    if "floor" in runs:
        floor_summary = _bench.median_of(runs["floor"])
        summary["floor"] = floor_summary
        summary["ratio_tps"] = (
            round(summary["tps"] / floor_summary["tps"], 3) if floor_summary["tps"] else None
        )
        summary["ratio_p99"] = (
            round(summary["p99_ms"] / floor_summary["p99_ms"], 3)
            if floor_summary["p99_ms"]
            else None
        )
    summary["bench_peak_rss_mib"] = Proc("bench", os.getpid()).peak_rss_mib()
    summary["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    summary["calibration_us"] = round(_bench.calibrate(), 2)
    say("=== summary (median of runs)")
    if "floor" in summary:
        say(describe(summary["floor"]))
    say(describe(summary))
    if "ratio_tps" in summary:
        say(
            f"ratio to the floor: throughput {summary['ratio_tps']:.2f}x, "
            f"p99 latency {summary['ratio_p99']:.2f}x"
        )
    say(f"bench peak RSS {summary['bench_peak_rss_mib']:.0f} MiB")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1 or args.batch_size < 1 or args.size < 1 or args.repeat < 1:
        raise SystemExit("bench_producer: -w, -s, --batch-size and --repeat must be positive")
    if args.topics < 1 or (args.topics > 1 and args.client != "raw"):
        raise SystemExit("bench_producer: --topics takes a positive count, with --client raw")
    try:
        summary = trio.run(bench, args)
    except KeyboardInterrupt:
        return 130
    if args.json:
        _bench.emit_json(summary)
    return 0 if summary["sent"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
