"""Replication figures: a master + slave group of our brokers, SYNC_MASTER beside ASYNC_MASTER.

    python -m apps.bench_ha                        # 10 s per role, then a 1 GiB catch-up
    python -m apps.bench_ha --duration 5 --catchup-mib 128 -w 32 -s 1024

For each role: the producer's msgs/s and p50/p99 (apps/bench_producer.py's run, same options),
and the replication lag under that load, sampled every 20 ms from both brokers'
GET_BROKER_RUNTIME_INFO: in bytes (master end - slave end) and in ms (how long after the
master's end reached an offset the slave's did).  Then the time a new, empty slave takes to
catch up ``--catchup-mib`` MiB (the commit-log file size is set to hold it: a new slave starts
at the master's last file, §6.5).  A benchmark, not a test: it prints what it measured.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from actors.remoting.client import RemotingClient, open_remoting_client
from apps import _bench_servers, bench_producer
from apps._bench import say
from apps._bench_servers import _spawn, _write_conf, stop_quietly
from apps.demo import free_port, wait_listening
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.fastjson import loads

SAMPLE_EVERY = 0.02


async def max_offset(client: RemotingClient, addr: str) -> int:
    reply = await client.invoke(
        addr, RemotingCommand.request(RequestCode.GET_BROKER_RUNTIME_INFO, {}), 5
    )
    if reply.code != ResponseCode.SUCCESS:
        raise RuntimeError(f"runtime info from {addr}: {reply.code} {reply.remark}")
    return int(loads(reply.body.decode())["table"]["commitLogMaxOffset"])


@contextlib.asynccontextmanager
async def slave_of(home: Path, namesrv: str, file_size: int, flush: str) -> Any:
    port = free_port()
    store = home / "slave-store"
    conf = {
        "brokerClusterName": "DefaultCluster",
        "brokerName": "broker-a",
        "brokerId": "1",
        "brokerRole": "SLAVE",
        "brokerIP1": "127.0.0.1",
        "listenPort": str(port),
        "namesrvAddr": namesrv,
        "storePathRootDir": str(store),
        "mappedFileSizeCommitLog": str(file_size),
        "flushDiskType": flush,
    }
    proc = await _spawn(
        [sys.executable, "apps/broker.py", "-c", str(_write_conf(home / "slave.conf", conf))],
        None,
        home / "slave.log",
    )
    try:
        await wait_listening(port, proc, "slave")
        yield f"127.0.0.1:{port}"
    finally:
        with trio.CancelScope(shield=True):
            await stop_quietly(proc, "slave")
        shutil.rmtree(store, ignore_errors=True)


def lag_figures(master: list[tuple[float, int]], slave: list[tuple[float, int]]) -> dict[str, Any]:
    """Lag in bytes at each sample, and in ms: for each slave sample, how long before it the
    master had first reached that offset."""
    if not master or not slave:
        return {}
    m_times = [t for t, _ in master]
    m_offsets = [o for _, o in master]
    lag_bytes: list[float] = []
    lag_ms: list[float] = []
    for t, offset in slave:
        i = bisect.bisect_right(m_times, t) - 1
        if i >= 0:
            lag_bytes.append(max(0, m_offsets[i] - offset))
        j = bisect.bisect_left(m_offsets, offset)
        if j < len(m_times) and offset > 0:
            lag_ms.append(max(0.0, (t - m_times[j]) * 1000))

    def pct(values: Sequence[float], q: float) -> float:
        values = sorted(values)
        return float(values[min(len(values) - 1, int(q * len(values)))]) if values else 0.0

    return {
        "lag_bytes_p50": pct(lag_bytes, 0.5),
        "lag_bytes_max": max(lag_bytes, default=0),
        "lag_ms_p50": round(pct(lag_ms, 0.5), 1),
        "lag_ms_p99": round(pct(lag_ms, 0.99), 1),
    }


async def sample(client: RemotingClient, addr: str, out: list[tuple[float, int]]) -> None:
    while True:
        with contextlib.suppress(Exception):
            offset = await max_offset(client, addr)
            # the master's series must only grow for the search above
            if not out or offset >= out[-1][1]:
                out.append((time.perf_counter(), offset))
        await trio.sleep(SAMPLE_EVERY)


async def measure_role(role: str, args: argparse.Namespace) -> dict[str, Any]:
    file_size = max(args.catchup_mib, 64) << 20
    broker_set = [f"brokerRole={role}", f"mappedFileSizeCommitLog={file_size}", *args.broker_set]
    async with _bench_servers.local_cluster(flush=args.flush, broker_set=broker_set) as cluster:
        master_addr = await _bench_servers.ensure_topic(cluster.namesrv_addr, args.topic, 8)
        async with (
            slave_of(cluster.home, cluster.namesrv_addr, file_size, args.flush) as slave_addr,
            open_remoting_client(name="bench-ha") as client,
        ):
            # wait until the slave follows (a SYNC_MASTER answers SLAVE_NOT_AVAILABLE before)
            with trio.fail_after(30):
                while await max_offset(client, slave_addr) != await max_offset(  # noqa: ASYNC110 - remote state
                    client, master_addr
                ):
                    await trio.sleep(0.1)
            m_samples: list[tuple[float, int]] = []
            s_samples: list[tuple[float, int]] = []
            async with trio.open_nursery() as sampling:
                sampling.start_soon(sample, client, master_addr, m_samples)
                sampling.start_soon(sample, client, slave_addr, s_samples)
                result = await bench_producer.run_target(
                    role, cluster.namesrv_addr, args, cluster.procs
                )
                sampling.cancel_scope.cancel()
            result.update(lag_figures(m_samples, s_samples))
            say(
                f"{role:<13} {result['tps']:>9,.0f} msg/s  p50 {result['p50_ms']:.2f} ms  "
                f"p99 {result['p99_ms']:.2f} ms  failed {result['failed']}  "
                f"lag p50 {result.get('lag_bytes_p50', 0):,.0f} B / "
                f"{result.get('lag_ms_p50', 0)} ms, max {result.get('lag_bytes_max', 0):,} B, "
                f"p99 {result.get('lag_ms_p99', 0)} ms"
            )
        if role == "ASYNC_MASTER" and args.catchup_mib:
            result["catchup"] = await catch_up(cluster, args, file_size)
    return result


async def catch_up(cluster: Any, args: argparse.Namespace, file_size: int) -> dict[str, Any]:
    """Fill the master to ``--catchup-mib`` MiB, then time an empty slave's catch-up."""
    target = args.catchup_mib << 20
    async with open_remoting_client(name="bench-ha-fill") as client:
        master_addr = await _bench_servers.ensure_topic(cluster.namesrv_addr, args.topic, 8)
        fill = argparse.Namespace(**{**vars(args), "count": None, "duration": 3600.0})
        fill.quiet = True
        say(f"filling the master to {args.catchup_mib} MiB ...")
        async with trio.open_nursery() as filling:

            async def run() -> None:
                await bench_producer.run_target("fill", cluster.namesrv_addr, fill, [])

            filling.start_soon(run)
            while await max_offset(client, master_addr) < target - (1 << 20):  # noqa: ASYNC110
                await trio.sleep(0.2)
            filling.cancel_scope.cancel()
        end = await max_offset(client, master_addr)
        start = time.perf_counter()
        async with slave_of(cluster.home, cluster.namesrv_addr, file_size, args.flush) as slave:
            while await max_offset(client, slave) < end:  # noqa: ASYNC110 - remote state
                await trio.sleep(0.05)
            took = time.perf_counter() - start
    copied = end % file_size or file_size  # a new slave starts at the last file's start
    figures = {
        "bytes": copied,
        "seconds": round(took, 2),
        "mib_per_s": round(copied / (1 << 20) / took, 1),
    }
    say(
        f"catch-up: an empty slave copied {figures['bytes'] / (1 << 20):,.0f} MiB in "
        f"{figures['seconds']} s ({figures['mib_per_s']} MiB/s, slave start included)"
    )
    return figures


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for role in ("ASYNC_MASTER", "SYNC_MASTER"):
        results[role] = await measure_role(role, args)
    say("=== summary")
    for role, r in results.items():
        say(
            f"{role:<13} {r['tps']:>9,.0f} msg/s  p99 {r['p99_ms']:.2f} ms  "
            f"lag p50 {r.get('lag_bytes_p50', 0):,.0f} B / {r.get('lag_ms_p50', 0)} ms"
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_producer.build_parser()
    parser.prog = "bench_ha"
    parser.add_argument(
        "--catchup-mib", type=int, default=1024, help="catch-up size (0: skip), MiB"
    )
    args = parser.parse_args(argv)
    results = trio.run(bench, args)
    if args.json:
        print(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
