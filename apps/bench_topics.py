"""Topic-creation benchmark: UPDATE_AND_CREATE_TOPIC one after another, against our broker or
Apache's, and whether a creation gets slower as the table grows (issue 17).

    python -m apps.bench_topics --count 1000              # starts our namesrv + broker
    python -m apps.bench_topics -n 127.0.0.1:9876 --label apache --count 1000

Each creation is timed from the request to its answer (for ours that includes making the change
durable in the config journal and registering it with the name servers, as an acknowledged
creation must be).  The run is cut into ``--windows`` equal parts; each part's median and p99
are printed, and ``growth`` is the last part's median over the first's: about 1 when a creation
costs the same however many topics exist.  ``broker_cpu_us_per_msg`` in the JSON line is per
creation.  Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import trio

from actors.remoting.client import open_remoting_client
from apps import _bench, _bench_servers, _security
from apps._bench import CpuWatch, say
from protocol.bodies.common import TopicFilterType
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import encode_header
from protocol.headers.admin import CreateTopicRequestHeader


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench_topics",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _bench.add_common_options(parser)
    parser.set_defaults(count=1000)
    parser.add_argument("--windows", type=int, default=5, help="parts the run is cut into")
    parser.add_argument("--prefix", help="topic names' prefix (default: a fresh one per run)")
    return parser


def window_figures(millis: Sequence[float], windows: int) -> list[dict[str, Any]]:
    """Median, p99 and mean of each of ``windows`` consecutive parts of ``millis``."""
    size = max(1, len(millis) // windows)
    out = []
    for start in range(0, len(millis) - len(millis) % size if len(millis) >= size else 0, size):
        part = sorted(millis[start : start + size])
        out.append(
            {
                "from": start,
                "to": start + len(part),
                "median_ms": round(statistics.median(part), 3),
                "p99_ms": round(part[min(len(part) - 1, len(part) * 99 // 100)], 3),
                "mean_ms": round(statistics.fmean(part), 3),
            }
        )
    return out


async def create_topics(args: argparse.Namespace, namesrv: str) -> list[float]:
    """Create ``args.count`` topics on the first master, one after another; each one's ms."""
    first = f"{args.prefix}0"
    broker = await _bench_servers.ensure_topic(
        namesrv, first, args.queues, **_security.remoting_options(args)
    )
    millis: list[float] = []
    async with open_remoting_client(
        name="bench-topics", **_security.remoting_options(args)
    ) as client:
        for i in range(1, args.count + 1):
            header = CreateTopicRequestHeader(
                topic=f"{args.prefix}{i}",
                default_topic="TBW102",
                read_queue_nums=args.queues,
                write_queue_nums=args.queues,
                perm=6,
                topic_filter_type=TopicFilterType.SINGLE_TAG,
                topic_sys_flag=0,
            )
            request = RemotingCommand.request(
                RequestCode.UPDATE_AND_CREATE_TOPIC, encode_header(header)
            )
            began = time.perf_counter()
            reply = await client.invoke(broker, request, 30)
            millis.append((time.perf_counter() - began) * 1000)
            if reply.code != ResponseCode.SUCCESS:
                raise SystemExit(f"creating {header.topic} failed: {reply.code} {reply.remark}")
            if not args.quiet and i % max(1, args.count // 10) == 0:
                say(f"{i:,} topics, last {millis[-1]:.2f} ms")
    return millis


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        label, namesrv, procs = await _bench_servers.open_target(stack, args)
        say(f"bench_topics: {args.count:,} topics of {args.queues} queues on {label}")
        watch = CpuWatch(procs)
        watch.start()
        began = time.perf_counter()
        async with _bench.profiled(*_bench.profile_target(procs, args.profile)):
            millis = await create_topics(args, namesrv)
        seconds = time.perf_counter() - began
        watch.stop()
        parts = window_figures(millis, args.windows)
        cpu = _bench.cpu_fields(watch, len(millis))
        placement = _bench.placement_lines(watch)
    for part in parts:
        say(
            f"topics {part['from']:>6,}-{part['to']:<6,} median {part['median_ms']:7.2f} ms"
            f"  p99 {part['p99_ms']:7.2f} ms  mean {part['mean_ms']:7.2f} ms"
        )
    growth = None
    if parts and parts[0]["median_ms"]:
        growth = parts[-1]["median_ms"] / parts[0]["median_ms"]
    summary: dict[str, Any] = {
        "label": label,
        "topics": len(millis),
        "queues": args.queues,
        "per_second": round(len(millis) / seconds, 1) if seconds > 0 else 0.0,
        "median_ms": round(statistics.median(millis), 3) if millis else None,
        "windows": parts,
        "growth": round(growth, 3) if growth is not None else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        **cpu,
    }
    say(
        f"{label}: {summary['per_second']:,} creations/s, median {summary['median_ms']} ms,"
        f" growth (last part / first) {summary['growth']}"
    )
    for line in placement:
        say(line)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 1 or args.windows < 1:
        raise SystemExit("bench_topics: --count and --windows must be positive")
    args.prefix = args.prefix or f"BenchTopic{uuid.uuid4().hex[:8]}_"
    try:
        summary = trio.run(bench, args)
    except KeyboardInterrupt:
        return 130
    if args.json:
        _bench.emit_json(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
