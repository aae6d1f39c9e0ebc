"""Store benchmark: append rates under ASYNC_FLUSH and SYNC_FLUSH beside the raw disk limits.

    .venv/bin/python -m apps.bench_store [--dir DIR] [--seconds S] [--size 1024] [--no-recovery]

Prints appends/s of 1 KiB records:
  * ASYNC_FLUSH, one writer, with the periodic flusher running;
  * SYNC_FLUSH with 1, 16 and 64 concurrent writers (group commit through the real actors);
  * raw limits measured in the same run on the same file system: a plain write + fdatasync
    loop (one record per sync) and a group of 64 records per fdatasync;
  * recovery time of a 1 GiB commit log (normal and abnormal, CRC checked).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import attrs
import trio

from actors.store import FlushWake, commit_log_flusher
from actors.waiters import OffsetWaiters
from storage.config import FlushDiskType, MessageStoreConfig
from storage.message_store import MessageInner, MessageStore

GIB = 1 << 30


def _config(root: str, flush: FlushDiskType, file_size: int) -> MessageStoreConfig:
    return MessageStoreConfig(
        storePathRootDir=root,
        flushDiskType=flush,
        mappedFileSizeCommitLog=file_size,
        maxHashSlotNum=50_000,
        maxIndexNum=200_000,
    )


def _message(size: int) -> MessageInner:
    return MessageInner(
        "BenchTopic",
        0,
        os.urandom(size),
        {"UNIQ_KEY": "C0A8000900002A9F0000000000000000", "TAGS": "TagA"},
        born_timestamp=1_700_000_000_000,
        born_host="127.0.0.1:50000",
    )


async def bench_async(root: str, seconds: float, size: int) -> tuple[float, float]:
    """(appends/s wall clock, appends per CPU-second of the event-loop thread)."""
    store = MessageStore(
        _config(root, FlushDiskType.ASYNC_FLUSH, GIB), store_host="127.0.0.1:10911"
    )
    store.load()
    msg = _message(size)
    put = store.put_message
    n = 0
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                commit_log_flusher, store, store.config, OffsetWaiters(), FlushWake()
            )
            start = time.perf_counter()
            cpu_start = time.thread_time()
            deadline = start + seconds
            while time.perf_counter() < deadline:
                for _ in range(1000):
                    put(msg)
                n += 1000
                await trio.lowlevel.checkpoint()
            elapsed = time.perf_counter() - start
            cpu = time.thread_time() - cpu_start
            nursery.cancel_scope.cancel()
    finally:
        store.shutdown()
    return n / elapsed, n / cpu


async def bench_sync(
    root: str, seconds: float, size: int, writers: int
) -> tuple[float, float, float]:
    """(acknowledged appends/s, mean group size per fdatasync, event-loop CPU µs per append)."""
    store = MessageStore(_config(root, FlushDiskType.SYNC_FLUSH, GIB), store_host="127.0.0.1:10911")
    store.load()
    msg = _message(size)
    waiters = OffsetWaiters()
    wake = FlushWake()
    acked = 0
    syncs = 0
    real_flush = store.flush_commit_log

    def counting_flush(least_pages: int = 0) -> int:
        nonlocal syncs
        syncs += 1
        return real_flush(least_pages)

    store.flush_commit_log = counting_flush  # type: ignore[method-assign]

    async def writer(deadline: float) -> None:
        nonlocal acked
        while time.perf_counter() < deadline:
            result = store.put_message(msg)
            assert result.append is not None
            wake.set()
            if await waiters.wait_for(result.append.end_offset, timeout=5.0):
                acked += 1

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(commit_log_flusher, store, store.config, waiters, wake)
            start = time.perf_counter()
            cpu_start = time.thread_time()
            async with trio.open_nursery() as group:
                for _ in range(writers):
                    group.start_soon(writer, start + seconds)
            elapsed = time.perf_counter() - start
            cpu = time.thread_time() - cpu_start
            nursery.cancel_scope.cancel()
    finally:
        store.shutdown()
    return acked / elapsed, acked / max(syncs, 1), cpu / max(acked, 1) * 1e6


def raw_fdatasync(root: str, seconds: float, size: int, group: int) -> float:
    """Records/s of a plain append + fdatasync loop, ``group`` records per sync."""
    path = os.path.join(root, "raw")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, 256 << 20)
    chunk = os.urandom(size * group)
    n = 0
    pos = 0
    try:
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            os.pwrite(fd, chunk, pos)
            os.fdatasync(fd)
            pos = (pos + len(chunk)) % (255 << 20)
            n += group
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        os.unlink(path)
    return n / elapsed


def bench_recovery(root: str, size: int) -> tuple[int, float, float, float]:
    """(records, fill seconds, normal recovery s, abnormal recovery s) for a 1 GiB commit log."""
    config = attrs.evolve(_config(root, FlushDiskType.ASYNC_FLUSH, GIB), messageIndexEnable=False)
    store = MessageStore(config, store_host="127.0.0.1:10911")
    store.load()
    msg = _message(size)
    n = 0
    start = time.perf_counter()
    while store.max_phy_offset < GIB - 4 * size:
        store.put_message(msg)
        n += 1
    fill = time.perf_counter() - start
    store.shutdown()

    start = time.perf_counter()
    store = MessageStore(config, store_host="127.0.0.1:10911")
    store.load()
    normal = time.perf_counter() - start
    store.abandon()  # leave the abort file: the next load recovers abnormally

    start = time.perf_counter()
    store = MessageStore(config, store_host="127.0.0.1:10911")
    store.load()
    abnormal = time.perf_counter() - start
    assert store.max_offset_in_queue("BenchTopic", 0) == n
    store.shutdown()
    return n, fill, normal, abnormal


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--dir", default=None, help="directory on the disk to measure (default: a temp dir)"
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=1024, help="body bytes per record")
    parser.add_argument("--no-recovery", action="store_true")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench_store_", dir=args.dir)
    try:

        def fresh(name: str) -> str:
            path = os.path.join(base, name)
            shutil.rmtree(path, ignore_errors=True)
            return path

        raw1 = raw_fdatasync(base, args.seconds, args.size, 1)
        raw64 = raw_fdatasync(base, args.seconds, args.size, 64)
        print(f"raw disk limit, append + fdatasync per record  : {raw1:>10,.0f} records/s")
        print(f"raw disk limit, 64 records per fdatasync        : {raw64:>10,.0f} records/s")
        print(
            f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs;"
            " CPU figures are for the event-loop thread)"
        )
        rate, per_cpu = trio.run(bench_async, fresh("async"), args.seconds, args.size)
        print(
            f"ASYNC_FLUSH, 1 writer                           : {rate:>10,.0f} appends/s"
            f"  ({per_cpu:,.0f} per CPU-second)"
        )
        for writers in (1, 16, 64):
            rate, group, cpu_us = trio.run(
                bench_sync, fresh(f"sync{writers}"), args.seconds, args.size, writers
            )
            limit = raw1 if writers == 1 else raw64
            print(
                f"SYNC_FLUSH, {writers:>2} writers                         : {rate:>10,.0f} appends/s"
                f"  ({rate / limit:.2f}x raw {'1' if writers == 1 else '64'}-per-sync,"
                f" {group:.1f} per fdatasync, {cpu_us:.0f} µs CPU per append)"
            )
        loop_start = time.thread_time()
        x = 0
        for i in range(10_000_000):
            x += i
        print(
            f"calibration: a 10M-iteration Python loop takes {time.thread_time() - loop_start:.2f}"
            " CPU-s here"
        )
        if not args.no_recovery:
            n, fill, normal, abnormal = bench_recovery(fresh("recovery"), args.size)
            print(f"1 GiB commit log ({n:,} records, filled in {fill:.1f} s = {n / fill:,.0f}/s):")
            print(f"  normal recovery   : {normal:.2f} s")
            print(
                f"  abnormal recovery : {abnormal:.2f} s (CRC checked, each record checked against its consume queue)"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
