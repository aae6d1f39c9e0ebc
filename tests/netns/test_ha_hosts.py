"""A broker group as separate machines (reference §6.5): name server, master and slave each in
its own network namespace; a real partition of the slave's cable and a real machine loss
(kill -9 of the master, its store deleted).  Where namespaces are unavailable (not root, no
``ip netns``) the same group runs on loopback, without the partition step.

SYNC_MASTER with short HA timeouts: while the slave is cut off, sends are answered
FLUSH_SLAVE_TIMEOUT (the connection still looks alive), then SLAVE_NOT_AVAILABLE once either
side gave the silent connection up; after healing, the slave catches up by itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from actors.remoting.client import RemotingClient, open_remoting_client
from protocol.codes import SWITCH_BROKER_ROLE, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from tests.actors.broker.wire import pull_all_bodies, send_v2
from tests.compat.processes import ManagedProcess, child_env, free_port, spawn, write_properties
from tests.netns.hosts import Network, available
from tests.store_sizes import SMALL_FILES

pytestmark = pytest.mark.crash

REPO = Path(__file__).resolve().parents[2]
TOPIC = "HostsTopic"
QUEUES = 4


class Group:
    """Where each machine is and how to start a process on it."""

    def __init__(self, net: Network | None) -> None:
        self.net = net
        self.addrs: dict[str, str] = {}
        if net is not None:
            for name in ("namesrv", "master", "slave"):
                self.addrs[name] = net.add_host(name)
        else:
            self.addrs = dict.fromkeys(("namesrv", "master", "slave"), "127.0.0.1")

    def port(self, name: str) -> int:
        # each namespace has its own ports; on loopback they must not collide
        if self.net is not None:
            return {"namesrv": 9876, "master": 10911, "slave": 10911}[name]
        return free_port(neighbours=(-2, 1))

    def spawn(self, work: Path, name: str, app: str, props: dict[str, object]) -> ManagedProcess:
        conf = write_properties(work / f"{name}.conf", props)
        prefix = self.net.exec_prefix(name) if self.net is not None else []
        argv = [*prefix, sys.executable, f"apps/{app}.py", "-c", str(conf)]
        return spawn(name, argv, log_dir=work / "logs", cwd=REPO, env=child_env(HOME=str(work)))


@pytest.fixture(params=["hosts"])
def group(request: pytest.FixtureRequest) -> Iterator[Group]:
    # HA_HOSTS_LOOPBACK=1 runs the loopback variant where namespaces would work too
    use_netns = available() and not os.environ.get("HA_HOSTS_LOOPBACK")
    net = Network().open() if use_netns else None
    try:
        yield Group(net)
    finally:
        if net is not None:
            net.close()


async def _until_listening(addr: str, proc: ManagedProcess, limit: float = 30) -> None:
    host, port = addr.rsplit(":", 1)
    with trio.fail_after(limit):
        while True:
            assert proc.alive(), proc.describe()
            try:
                stream = await trio.open_tcp_stream(host, int(port))
            except OSError:
                await trio.sleep(0.1)
                continue
            await stream.aclose()
            return


async def _read_all(client: RemotingClient, addr: str) -> set[bytes]:
    return await pull_all_bodies(client, addr, TOPIC, QUEUES)


async def test_partition_and_machine_loss(group: Group, tmp_path: Path) -> None:
    ports = {name: group.port(name) for name in ("namesrv", "master", "slave")}
    addr = {name: f"{group.addrs[name]}:{ports[name]}" for name in ports}
    procs = [group.spawn(tmp_path, "namesrv", "namesrv", {"listenPort": ports["namesrv"]})]

    def broker(name: str, **extra: object) -> ManagedProcess:
        proc = group.spawn(
            tmp_path,
            name,
            "broker",
            {
                "brokerClusterName": "HostsCluster",
                "brokerName": "broker-hosts",
                "brokerIP1": group.addrs[name],
                "brokerIP2": group.addrs[name],
                "listenPort": ports[name],
                "namesrvAddr": addr["namesrv"],
                "storePathRootDir": tmp_path / f"{name}-store",
                "flushDiskType": "SYNC_FLUSH",
                "mappedFileSizeCommitLog": 1024 * 1024,
                **SMALL_FILES,
                "mappedFileSizeConsumeQueue": 600 * 20,
                "slaveReadEnable": "true",
                "slaveTimeout": 1000,
                "haHousekeepingInterval": 4000,
                "haSendHeartbeatInterval": 1000,
                **extra,
            },
        )
        procs.append(proc)
        return proc

    acked: set[bytes] = set()
    try:
        await _until_listening(addr["namesrv"], procs[0])
        master = broker("master", brokerRole="SYNC_MASTER")
        await _until_listening(addr["master"], master)
        slave = broker("slave", brokerRole="SLAVE", brokerId=1)
        await _until_listening(addr["slave"], slave)
        async with open_remoting_client(name="hosts-client") as client:

            async def send(body: bytes) -> int:
                reply = await client.invoke(
                    addr["master"], send_v2(TOPIC, body, queue_id=len(acked) % QUEUES), 10
                )
                if reply.code == ResponseCode.SUCCESS:
                    acked.add(body)
                return reply.code

            async def send_until(code: int, label: str, limit: float = 30) -> None:
                with trio.fail_after(limit):
                    n = 0
                    while await send(b"%s-%d" % (label.encode(), n)) != code:
                        n += 1
                        await trio.sleep(0.1)

            await send_until(ResponseCode.SUCCESS, "first")  # the slave connected
            # and knows the topic (its metadata sync runs every 10 s)
            with trio.fail_after(30):
                while True:
                    cfg = await client.invoke(
                        addr["slave"],
                        RemotingCommand.request(RequestCode.GET_ALL_TOPIC_CONFIG, {}),
                        5,
                    )
                    if TOPIC.encode() in cfg.body:
                        break
                    await trio.sleep(0.5)
            for i in range(50):
                assert await send(b"ok-%d" % i) == ResponseCode.SUCCESS

            if group.net is not None:
                group.net.partition("slave")
                # the master still has a connection, but no ack comes back
                assert await send(b"cut-0") == ResponseCode.FLUSH_SLAVE_TIMEOUT
                # once the silent connection is given up: no slave at all
                await send_until(ResponseCode.SLAVE_NOT_AVAILABLE, "cut")
                group.net.heal("slave")
                await send_until(ResponseCode.SUCCESS, "healed", limit=60)
                for i in range(20):
                    assert await send(b"after-heal-%d" % i) == ResponseCode.SUCCESS

            # the master's machine is lost: kill -9, its disk gone
            os.kill(master.pid, signal.SIGKILL)
            master.popen.wait(10)
            shutil.rmtree(tmp_path / "master-store")
            with trio.fail_after(30):
                while not acked <= await _read_all(client, addr["slave"]):  # noqa: ASYNC110
                    await trio.sleep(0.2)
            promoted = await client.invoke(
                addr["slave"],
                RemotingCommand.request(SWITCH_BROKER_ROLE, {"brokerRole": "ASYNC_MASTER"}),
                5,
            )
            assert promoted.code == ResponseCode.SUCCESS, promoted.remark
            after = await client.invoke(addr["slave"], send_v2(TOPIC, b"after-loss"), 5)
            assert after.code == ResponseCode.SUCCESS, after.remark
            found = await _read_all(client, addr["slave"])
        assert acked <= found
        assert b"after-loss" in found
    finally:
        for proc in reversed(procs):
            proc.stop()
