"""Failover time: master killed (kill -9) -> first successful send through the new master, for
Apache's Java client (4.9.8) and ours, sending side by side through the same failovers;
prints each round, then median and max per client.

    .venv/bin/python scripts/failover_time.py [--rounds 10] [--ttl 2] [--poll-namesrv 30 1]
                                              [--no-java]

Starts its own etcd, name server and a group of three brokers (tests/failover/group.py) in a
temporary directory, with ``etcdLeaseTtlSeconds`` = ``--ttl`` (2 s by default, to keep the run
short: the election waits for the dead master's lease to lapse, so the figure grows with the
TTL; the brokers' default is 10).  ``--poll-namesrv`` is the clients' route refresh period
(Java's pollNameServerInterval, 30 s by default): a client learns the new master's address from
the name server only then, so it bounds the figure; each value given is measured in turn.

Each round waits until both clients sent through the master and a slave is in the in-sync set,
then a random 0..poll seconds, so the kill falls anywhere in the clients' refresh cycles (a
loop that killed right after the previous round would always hit the same phase), then kills
the master; the killed broker restarts afterwards and rejoins as a slave.  The Java client is
tests/compat/java (compat.Main failover-probe), built with Maven if needed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.client.message import Message, SendStatus
from actors.client.producer import Producer, ProducerConfig
from actors.failover.election import SyncSet
from protocol.msgid import decode_offset_msg_id
from tests.compat.jvm import Jvm, build
from tests.failover.group import Group, start_group, wait_master

TOPIC = "FoTime"
SEND_PAUSE = 0.01  # s between one client's sends (both clients)
LIMIT = 300.0  # s: a round that takes longer fails the run


@attrs.define
class Probe:
    """One client's sends as seen from outside: the successes that follow a failure or go to
    another broker than the previous success (wall-clock times)."""

    name: str
    last_ok: tuple[float, str] | None = None
    failing: bool = True
    changes: list[tuple[float, str]] = attrs.Factory(list)

    def ok(self, t: float, addr: str) -> None:
        if self.failing or self.last_ok is None or addr != self.last_ok[1]:
            self.changes.append((t, addr))
        self.last_ok, self.failing = (t, addr), False

    def err(self) -> None:
        self.failing = True

    def sends_through(self, addr: str, within: float) -> bool:
        return (
            not self.failing
            and self.last_ok is not None
            and self.last_ok[1] == addr
            and time.time() - self.last_ok[0] < within
        )

    def first_ok_after(self, t0: float, not_addr: str) -> float | None:
        return next((t for t, a in self.changes if t >= t0 and a != not_addr), None)


async def our_client(namesrv: str, poll: float, probe: Probe, ready: trio.Event) -> None:
    producer = Producer("fo-time", namesrv=namesrv, config=ProducerConfig(send_timeout=2.0))
    producer.client_config.poll_namesrv_interval = poll
    async with producer:
        while True:
            try:
                r = await producer.send(Message(TOPIC, b"x"))
            except Exception:
                probe.err()
            else:
                if r.status is SendStatus.SEND_OK:
                    probe.ok(time.time(), decode_offset_msg_id(r.offset_msg_id)[0])
                    ready.set()
                else:
                    probe.err()
            await trio.sleep(SEND_PAUSE)


async def java_client(jvm: Jvm, work: Path, namesrv: str, poll: float, probe: Probe) -> None:
    cmd = jvm.command(
        "compat.Main",
        ["failover-probe", "--namesrv", namesrv, "--topic", TOPIC, "--group", "fo_time_java",
         "--poll", str(int(poll * 1000)), "--interval", str(int(SEND_PAUSE * 1000)),
         "--timeout", "86400"],
        server=False,
        work_dir=work,
        heap="192m",
        extra_flags=("-XX:+UseSerialGC",),
    )  # fmt: skip
    proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.PIPE, env=jvm.env(), cwd=work)
    assert proc.stdout is not None
    try:
        buf = b""
        while True:
            data = await proc.stdout.receive_some(65536)
            if not data:
                raise RuntimeError(f"the Java client exited with {await proc.wait()}")
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                parts = line.decode(errors="replace").split(" ", 2)
                if parts[0] == "OK" and len(parts) == 3:
                    probe.ok(int(parts[1]) / 1000, parts[2])
                elif parts[0] == "ERR":
                    probe.err()
                elif parts[0] == "FAIL":
                    raise RuntimeError(f"the Java client failed: {line!r}")
    finally:
        proc.kill()
        with trio.CancelScope(shield=True):
            await proc.wait()


async def in_sync_slave(group: Group, epoch: int) -> bool:
    _, kvs = await group.client.range(group.keys.syncset)
    if not kvs:
        return False
    ss = SyncSet.decode(kvs[0].value)
    return ss.epoch == epoch and bool(ss.members)


async def rounds(
    group: Group, probes: list[Probe], poll: float, n: int, rnd: random.Random
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {p.name: [] for p in probes}
    while len(times[probes[0].name]) < n:
        m = await wait_master(group, LIMIT)
        with trio.fail_after(LIMIT):
            # the clients and etcd are polled (other tasks and processes change them)
            while not (  # noqa: ASYNC110
                all(p.sends_through(m.addr, 1.5) for p in probes)
                and await in_sync_slave(group, m.epoch)
            ):
                await trio.sleep(0.05)
        await trio.sleep(rnd.uniform(0, poll))
        now = await wait_master(group, LIMIT)
        if now != m or not all(p.sends_through(m.addr, 1.5) for p in probes):
            continue  # the group changed meanwhile: not a clean round
        victim = group.index_of(m)
        killed = time.time()
        group.kill(victim)
        with trio.fail_after(LIMIT):
            while not all(p.first_ok_after(killed, m.addr) is not None for p in probes):  # noqa: ASYNC110
                await trio.sleep(0.05)
        took = {p.name: p.first_ok_after(killed, m.addr) - killed for p in probes}  # type: ignore[operator]
        for name, t in took.items():
            times[name].append(t)
        shown = ", ".join(f"{name} {t:.2f} s" for name, t in took.items())
        print(
            f"  round {len(times[probes[0].name])}: broker {victim} (epoch {m.epoch}) killed; first send through the new master: {shown}",
            flush=True,
        )
        group.start(victim)  # it returns as a slave
    return times


async def measure(args: argparse.Namespace) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="failover-time-"))
    jvm = None if args.no_java else await trio.to_thread.run_sync(build, work / "java-home")
    group = start_group(work, ttl=args.ttl)
    rnd = random.Random(args.seed)
    summary = []
    try:
        await wait_master(group, 60)
        for poll in args.poll_namesrv:
            print(f"route refresh {poll:g} s:", flush=True)
            probes = [Probe("ours")] + ([Probe("java")] if jvm is not None else [])
            async with trio.open_nursery() as nursery:
                ready = trio.Event()
                nursery.start_soon(our_client, group.namesrv_addr, poll, probes[0], ready)
                await ready.wait()  # the topic exists before the Java client asks for its route
                if jvm is not None:
                    (work / f"java-{poll:g}").mkdir()
                    nursery.start_soon(
                        java_client,
                        jvm,
                        work / f"java-{poll:g}",
                        group.namesrv_addr,
                        poll,
                        probes[1],
                    )
                times = await rounds(group, probes, poll, args.rounds, rnd)
                nursery.cancel_scope.cancel()
            for name, ts in times.items():
                summary.append(
                    f"{name} client, etcdLeaseTtlSeconds={args.ttl}, route refresh {poll:g} s: failover time "
                    f"median {statistics.median(ts):.2f} s, max {max(ts):.2f} s over {len(ts)} rounds"
                )
    finally:
        group.stop()
        shutil.rmtree(work, ignore_errors=True)
    return summary


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--ttl", type=int, default=2, help="etcdLeaseTtlSeconds of the brokers")
    parser.add_argument(
        "--poll-namesrv", type=float, nargs="+", default=[30.0], help="client route refresh, s"
    )
    parser.add_argument("--no-java", action="store_true", help="our client only")
    parser.add_argument(
        "--seed", type=int, default=None, help="of the random wait before each kill"
    )
    args = parser.parse_args()
    print(f"load average before: {loadavg()}", flush=True)
    summary = trio.run(measure, args)
    print(f"load average after: {loadavg()}")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
