"""Losing the master's machine under SYNC_MASTER + SYNC_FLUSH while clients send: kill -9 of the
master and its store deleted; the slave serves reads meanwhile, is promoted at run time
(SWITCH_BROKER_ROLE), and every acknowledged message is there.

Name server, master and slave run as the subprocesses users start.  A SUCCESS reply from a
SYNC_MASTER means a slave acknowledged the bytes, so nothing acknowledged may be missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
import trio

from actors.remoting.client import RemotingClient, open_remoting_client
from protocol.codes import SWITCH_BROKER_ROLE, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from tests.actors.broker.wire import pull_all_bodies, send_v2
from tests.compat.processes import ManagedProcess, child_env, free_port, spawn, write_properties
from tests.crash.test_broker_crash import wait_listening
from tests.store_sizes import SMALL_FILES

pytestmark = pytest.mark.crash

REPO = Path(__file__).resolve().parents[2]
TOPIC = "FailoverTopic"
QUEUES = 4
SENDERS = 8
KILL_AFTER_ACKS = 600


def _spawn(work: Path, name: str, app: str, props: dict[str, object]) -> ManagedProcess:
    conf = write_properties(work / f"{name}.conf", props)
    argv = [sys.executable, f"apps/{app}.py", "-c", str(conf)]
    return spawn(name, argv, log_dir=work / "logs", cwd=REPO, env=child_env(HOME=str(work)))


def _broker(work: Path, name: str, port: int, namesrv: str, **extra: object) -> ManagedProcess:
    props: dict[str, object] = {
        "brokerClusterName": "HaCluster",
        "brokerName": "broker-ha",
        "brokerIP1": "127.0.0.1",
        "listenPort": port,
        "namesrvAddr": namesrv,
        "storePathRootDir": work / f"{name}-store",
        "flushDiskType": "SYNC_FLUSH",
        "mappedFileSizeCommitLog": 256 * 1024,
        **SMALL_FILES,
        "mappedFileSizeConsumeQueue": 600 * 20,
        "slaveReadEnable": "true",
        **extra,
    }
    return _spawn(work, name, "broker", props)


async def _read_all(client: RemotingClient, addr: str) -> set[bytes]:
    return await pull_all_bodies(client, addr, TOPIC, QUEUES)


async def test_promoted_slave_has_every_acknowledged_message(tmp_path: Path) -> None:
    ns_port = free_port()
    namesrv = f"127.0.0.1:{ns_port}"
    m_port, s_port = free_port(neighbours=(-2, 1)), free_port(neighbours=(-2, 1))
    master_addr, slave_addr = f"127.0.0.1:{m_port}", f"127.0.0.1:{s_port}"
    procs = [_spawn(tmp_path, "namesrv", "namesrv", {"listenPort": ns_port})]
    acked: set[bytes] = set()
    not_available = 0
    killed = trio.Event()
    knows_topic = trio.Event()
    try:
        await wait_listening(ns_port, procs[0])
        master = _broker(tmp_path, "master", m_port, namesrv, brokerRole="SYNC_MASTER")
        procs.append(master)
        await wait_listening(m_port, master)
        procs.append(_broker(tmp_path, "slave", s_port, namesrv, brokerRole="SLAVE", brokerId=1))
        await wait_listening(s_port, procs[-1])
        async with open_remoting_client(name="failover-client") as client:

            async def sender(n: int) -> None:
                nonlocal not_available
                i = 0
                while not killed.is_set():
                    body = f"s{n}-{i}-".encode().ljust(600, b"x")
                    try:
                        reply = await client.invoke(
                            master_addr, send_v2(TOPIC, body, queue_id=i % QUEUES), 5
                        )
                    except Exception:
                        return  # the master is gone
                    if reply.code == ResponseCode.SUCCESS:
                        acked.add(body)
                    elif reply.code == ResponseCode.SLAVE_NOT_AVAILABLE:
                        not_available += 1  # the slave is not connected yet
                        await trio.sleep(0.05)
                    i += 1
                    if (
                        len(acked) >= KILL_AFTER_ACKS
                        and knows_topic.is_set()
                        and not killed.is_set()
                    ):
                        os.kill(master.pid, signal.SIGKILL)
                        killed.set()

            async def slave_learns_topic() -> None:
                # the slave copies topic configs every 10 s, as Apache's: one created just
                # before the crash would be unknown to it (its messages are there all the same)
                while True:
                    reply = await client.invoke(
                        slave_addr, RemotingCommand.request(RequestCode.GET_ALL_TOPIC_CONFIG, {}), 5
                    )
                    if TOPIC.encode() in reply.body:
                        knows_topic.set()
                        return
                    await trio.sleep(0.5)

            with trio.fail_after(90):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(slave_learns_topic)
                    for n in range(SENDERS):
                        nursery.start_soon(sender, n)
            master.popen.wait(10)
            shutil.rmtree(tmp_path / "master-store")  # the machine is lost with its disk

            # the slave keeps serving reads while nobody is master
            with trio.move_on_after(30):
                while not acked <= await _read_all(client, slave_addr):  # noqa: ASYNC110
                    await trio.sleep(0.2)
            lost = acked - await _read_all(client, slave_addr)
            assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages not on the slave"
            refused = await client.invoke(slave_addr, send_v2(TOPIC, b"not-yet"), 5)
            assert refused.code == ResponseCode.SERVICE_NOT_AVAILABLE

            promoted = await client.invoke(
                slave_addr,
                RemotingCommand.request(SWITCH_BROKER_ROLE, {"brokerRole": "ASYNC_MASTER"}),
                5,
            )
            assert promoted.code == ResponseCode.SUCCESS, promoted.remark
            after = await client.invoke(slave_addr, send_v2(TOPIC, b"after-failover"), 5)
            assert after.code == ResponseCode.SUCCESS, after.remark
            found = await _read_all(client, slave_addr)
        missing = acked - found
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost"
        assert b"after-failover" in found
    finally:
        for proc in reversed(procs):
            proc.stop()
