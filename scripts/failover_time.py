"""Failover time: master killed (kill -9) -> first successful send through the new master, as
our client sees it, over several rounds; prints each round, then median and max.

    .venv/bin/python scripts/failover_time.py [--rounds 10] [--ttl 2] [--poll-namesrv 30]

Starts its own etcd, name server and a group of three brokers (tests/failover/group.py) in a
temporary directory.  ``--poll-namesrv`` is the client's route refresh period (Java's
pollNameServerInterval, 30 s by default): a client learns the new master's address from the
name server only then, so it bounds the figure.  The Java client is not measured yet.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from actors.client.message import Message, SendStatus
from actors.client.producer import Producer, ProducerConfig
from actors.failover.election import SyncSet
from protocol.msgid import decode_offset_msg_id
from tests.failover.group import Group, start_group, wait_master

TOPIC = "FoTime"


async def in_sync_slave(group: Group, epoch: int) -> bool:
    _, kvs = await group.client.range(group.keys.syncset)
    if not kvs:
        return False
    ss = SyncSet.decode(kvs[0].value)
    return ss.epoch == epoch and bool(ss.members)


async def measure(args: argparse.Namespace) -> list[float]:
    work = Path(tempfile.mkdtemp(prefix="failover-time-"))
    group = start_group(work, ttl=args.ttl)
    times: list[float] = []
    try:
        await wait_master(group, 30)
        producer = Producer("fo-time", namesrv=group.namesrv_addr, config=ProducerConfig(send_timeout=2.0))
        producer.client_config.poll_namesrv_interval = args.poll_namesrv
        async with producer:
            async def send_once() -> str | None:
                try:
                    r = await producer.send(Message(TOPIC, b"x"))
                except Exception:
                    return None
                if r.status is not SendStatus.SEND_OK:
                    return None
                return decode_offset_msg_id(r.offset_msg_id)[0]

            for rnd in range(args.rounds):
                m = await wait_master(group, 60)
                # a send through this master first (route known, topic created)
                with trio.fail_after(120):
                    while (await send_once()) != m.addr:  # noqa: ASYNC110 - sends are the probe
                        await trio.sleep(0.05)
                victim = group.index_of(m)
                # only a failover with an in-sync slave is measured (without one the group waits
                # for the old master, by design)
                with trio.fail_after(120):
                    while not await in_sync_slave(group, m.epoch):
                        await send_once()
                killed = trio.current_time()
                group.kill(victim)
                with trio.fail_after(300):
                    while True:
                        addr = await send_once()
                        if addr is not None and addr != m.addr:
                            break
                        await trio.sleep(0.01)
                took = trio.current_time() - killed
                times.append(took)
                print(f"round {rnd + 1}: master {victim} killed, first send through {addr} after {took:.2f} s", flush=True)
                group.start(victim)  # it returns as a slave
                await trio.sleep(2 * args.ttl)
    finally:
        group.stop()
        shutil.rmtree(work, ignore_errors=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--ttl", type=int, default=2, help="etcdLeaseTtlSeconds of the brokers")
    parser.add_argument("--poll-namesrv", type=float, default=30.0, help="client route refresh, s")
    args = parser.parse_args()
    times = trio.run(measure, args)
    print(
        f"our client, etcdLeaseTtlSeconds={args.ttl}, route refresh {args.poll_namesrv:g} s: "
        f"failover time median {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} rounds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
