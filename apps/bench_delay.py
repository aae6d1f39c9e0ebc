"""Benchmark: delayed and timed messages scheduled and delivered per second, N pending.

    .venv/bin/python -m apps.bench_delay                 # 1,000,000 level-2 messages
    .venv/bin/python -m apps.bench_delay --mode timer    # 1,000,000 exact-time timers
    .venv/bin/python -m apps.bench_delay --count 100000 --dir /tmp/bench

A real MessageStore in a scratch directory, the real actors (ScheduleService / TimerService),
trio on a virtual clock (``MockClock(autojump_threshold=0)``) so nobody waits for the delays:

* **scheduled/s**: the send path's part, ``rewrite_on_put`` + ``store.put_message`` + the
  reput dispatch that makes each parked message visible, for all N messages;
* **enqueued/s** (timer mode): the timer actor filing N parked messages in the on-disk wheel;
* **delivered/s**: with all N pending and due, the actor reading the schedule queue (or wheel
  chains), rebuilding each message, putting it into its real topic and dispatching it.

Rates are wall-clock; the numbers are for one core of whatever runs this.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio
import trio.testing
import trio_util

from actors.broker.delay import DelayLevels, TimerConst, rewrite_on_put
from actors.broker.schedule import ScheduleService
from actors.broker.timer import TimerService
from protocol.message import MessageConst
from storage.config import MessageStoreConfig
from storage.delay_offsets import DelayOffsetTable
from storage.message_store import MessageInner, MessageStore
from storage.timer_wheel import TimerConfig, TimerWheel

T0 = 1_700_000_000_000
REPUT_EVERY = 512  # puts between two reput passes while scheduling


def virtual_ms() -> int:
    return T0 + round(trio.current_time() * 1000)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f}/s  ({count:,} in {seconds:.1f} s)"


def make_store(root: Path) -> MessageStore:
    config = MessageStoreConfig(
        storePathRootDir=str(root),
        mappedFileSizeCommitLog=256 * 1024 * 1024,
        messageIndexEnable=False,  # the index is the same cost for every message; not ours
    )
    store = MessageStore(config, store_host="127.0.0.1:10911", now_ms=virtual_ms)
    store.load()
    return store


def schedule_all(
    store: MessageStore,
    levels: DelayLevels,
    timer: TimerConfig,
    props_of: Callable[[int], dict[str, str]],
    count: int,
) -> float:
    body = b"x" * 100
    started = time.perf_counter()
    for i in range(count):
        msg = MessageInner(
            topic="BenchDelay",
            queue_id=i % 8,
            body=body,
            properties=props_of(i),
            born_timestamp=T0,
            born_host="127.0.0.1:5555",
        )
        result = store.put_message(rewrite_on_put(msg, levels, timer, virtual_ms()))
        if not result.ok:
            raise SystemExit(f"put failed: {result.status.name}")
        if i % REPUT_EVERY == 0:
            store.reput()
    while store.reput():
        pass
    return time.perf_counter() - started


async def bench(args: argparse.Namespace, root: Path) -> None:
    store = make_store(root)
    levels = DelayLevels.parse(store.config.messageDelayLevel)
    timer = TimerConfig()
    n = args.count
    wake = trio_util.RepeatedEvent()
    finished = trio.Event()

    def on_put() -> None:
        wake.set()

    async def reputter() -> None:
        while True:
            await wake.wait()
            store.reput()
            if svc.delivered >= n:
                finished.set()

    if args.mode == "level":
        print(f"scheduling {n:,} messages with delay level {args.level} ...")
        elapsed = schedule_all(
            store,
            levels,
            timer,
            lambda i: {MessageConst.DELAY: str(args.level), MessageConst.KEYS: f"k{i}"},
            n,
        )
        print(f"scheduled   {rate(n, elapsed)}")
        svc: ScheduleService | TimerService = ScheduleService(
            store,
            levels,
            DelayOffsetTable(),
            Path(store.config.config_dir),
            virtual_ms,
            on_put=on_put,
            idle_poll=3600,
        )
    else:
        spread = args.spread * 1000
        print(f"scheduling {n:,} timers over {args.spread} s ...")
        elapsed = schedule_all(
            store,
            levels,
            timer,
            lambda i: {TimerConst.TIMER_DELIVER_MS: str(T0 + 10_000 + i * spread // n)},
            n,
        )
        print(f"scheduled   {rate(n, elapsed)}")
        wheel = TimerWheel(root / "timer", timer)
        svc = TimerService(
            store, wheel, virtual_ms, on_put=on_put, idle_poll=3600, flush_interval=5.0
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reputter)
        started = time.perf_counter()
        await nursery.start(svc.run)
        if isinstance(svc, TimerService):
            while svc.wheel.enqueue_offset < n:
                await trio.lowlevel.checkpoint()
            enqueued = time.perf_counter() - started
            print(f"enqueued    {rate(n, enqueued)}  (into the on-disk wheel)")
            started = time.perf_counter()
        print(f"delivering with {n:,} pending ...")
        await finished.wait()
        delivered = time.perf_counter() - started
        print(f"delivered   {rate(n, delivered)}")
        nursery.cancel_scope.cancel()
    store.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench_delay", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["level", "timer"], default="level")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--level", type=int, default=2, help="delay level (level mode)")
    parser.add_argument("--spread", type=int, default=600, help="seconds the timers spread over")
    parser.add_argument("--dir", type=Path, help="store directory (default: a temporary one)")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_delay_"))
    try:
        trio.run(bench, args, root, clock=trio.testing.MockClock(autojump_threshold=0))
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
