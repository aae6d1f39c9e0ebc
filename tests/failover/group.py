"""A broker group with failover as a user runs it: etcd, apps/namesrv.py and three
apps/broker.py processes with etcdEndpoints; kill -9 and restarts by pid.  Used by the
checker test (test_failover_checker.py) and scripts/failover_time.py.

A killed broker gets a standby process at once (tests/failover/standby.py: Python's imports,
then it waits for its config on stdin); the restart wakes it, so a restart does not wait the
seconds those imports take on a loaded machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import attrs
import trio

from actors.failover.election import GroupKeys, MasterRecord, group_prefix
from actors.failover.etcd import EtcdClient, EtcdError, EtcdUnavailable, parse_endpoints
from tests.compat.processes import ManagedProcess, child_env, spawn, write_properties
from tests.failover.etcd_proc import EtcdCluster, free_port, start_etcd
from tests.store_sizes import SMALL_FILES

REPO = Path(__file__).resolve().parents[2]
CLUSTER = "FoCluster"
BROKER_NAME = "broker-fo"


@attrs.define
class BrokerProc:
    index: int  # 0: configured SYNC_MASTER; others configured SLAVE with brokerId = index
    port: int
    conf: Path
    proc: ManagedProcess | None = None
    host: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()  # ("ip", "netns", "exec", ns) for a broker on its own host
    standby: ManagedProcess | None = None  # imported, waiting for its config on stdin

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


@attrs.define
class Group:
    work: Path
    etcd: EtcdCluster
    namesrv_addr: str
    namesrv: ManagedProcess
    brokers: list[BrokerProc]
    client: EtcdClient
    keys: GroupKeys

    def _standby(self, b: BrokerProc) -> ManagedProcess:
        return spawn(
            f"broker{b.index}-{os.urandom(2).hex()}",
            [*b.prefix, sys.executable, "-m", "tests.failover.standby"],
            log_dir=self.work / "logs",
            cwd=REPO,
            env=child_env(HOME=str(self.work)),
            stdin=subprocess.PIPE,
        )

    def start(self, i: int) -> None:
        b = self.brokers[i]
        assert b.proc is None or not b.proc.alive(), f"broker {i} is running"
        proc = b.standby if b.standby is not None and b.standby.alive() else self._standby(b)
        assert proc.popen.stdin is not None
        proc.popen.stdin.write(f"{b.conf}\n".encode())
        proc.popen.stdin.close()
        b.proc, b.standby = proc, None

    def kill(self, i: int) -> None:
        b = self.brokers[i]
        if b.proc is not None and b.proc.alive():
            os.kill(b.proc.pid, signal.SIGKILL)
            b.proc.popen.wait(10)
        b.proc = None
        if b.standby is None:
            b.standby = self._standby(b)

    def alive(self, i: int) -> bool:
        p = self.brokers[i].proc
        return p is not None and p.alive()

    async def master(self) -> MasterRecord | None:
        try:
            _, kvs = await self.client.range(self.keys.master)
        except (EtcdUnavailable, EtcdError):
            return None
        return MasterRecord.decode(kvs[0].value, kvs[0].lease) if kvs else None

    def index_of(self, record: MasterRecord) -> int:
        return next(b.index for b in self.brokers if b.addr == record.addr)

    def stop(self) -> None:
        for b in self.brokers:
            if b.proc is not None:
                b.proc.stop()
            if b.standby is not None:
                b.standby.stop()
        self.namesrv.stop()
        self.etcd.stop()


def start_group(
    work: Path,
    *,
    etcd_nodes: int = 1,
    brokers: int = 3,
    ttl: int = 2,
    slave_timeout_ms: int = 1000,
    hosts: list[tuple[str, tuple[str, ...]]] | None = None,  # per broker: (IP, exec prefix)
    etcd_host: tuple[str, tuple[str, ...]] = ("127.0.0.1", ()),
    namesrv_ip: str = "127.0.0.1",
) -> Group:
    work.mkdir(parents=True, exist_ok=True)
    etcd = start_etcd(etcd_nodes, host=etcd_host[0], prefix=etcd_host[1])
    ns_port = free_port()
    ns_addr = f"{namesrv_ip}:{ns_port}"
    ns_conf = write_properties(
        work / "namesrv.conf", {"listenPort": ns_port, "kvConfigPath": work / "kv.json"}
    )
    namesrv = spawn(
        "namesrv",
        [sys.executable, "apps/namesrv.py", "-c", str(ns_conf)],
        log_dir=work / "logs",
        cwd=REPO,
        env=child_env(HOME=str(work)),
    )
    procs = []
    for i in range(brokers):
        port = free_port(neighbours=(-2, 1))  # the VIP channel and the HA server
        conf = write_properties(
            work / f"broker{i}.conf",
            {
                "brokerClusterName": CLUSTER,
                "brokerName": BROKER_NAME,
                "brokerId": i,
                "brokerRole": "SYNC_MASTER" if i == 0 else "SLAVE",
                "brokerIP1": hosts[i][0] if hosts else "127.0.0.1",
                "listenPort": port,
                "namesrvAddr": ns_addr,
                "storePathRootDir": work / f"store{i}",
                "mappedFileSizeCommitLog": 4 * 1024 * 1024,
                **SMALL_FILES,
                "mappedFileSizeConsumeQueue": 6000 * 20,
                "etcdEndpoints": etcd.endpoints,
                "etcdLeaseTtlSeconds": ttl,
                "slaveTimeout": slave_timeout_ms,
                # a slave connects to a new master at once, and a dead one is noticed in time
                "haHousekeepingInterval": 5000,
                "haSendHeartbeatInterval": 500,
                "registerNameServerPeriod": 10000,
            },
        )
        host, prefix = hosts[i] if hosts else ("127.0.0.1", ())
        procs.append(BrokerProc(i, port, conf, host=host, prefix=prefix))
    client = EtcdClient(parse_endpoints(etcd.endpoints), timeout=1.0)
    group = Group(
        work,
        etcd,
        ns_addr,
        namesrv,
        procs,
        client,
        GroupKeys(group_prefix("/rocketmq", CLUSTER, BROKER_NAME)),
    )
    for i in range(brokers):
        group.start(i)
    return group


async def wait_master(
    group: Group, timeout: float, *, not_index: int | None = None
) -> MasterRecord:
    with trio.fail_after(timeout):
        while True:
            m = await group.master()
            if m is not None and (not_index is None or group.index_of(m) != not_index):
                return m
            await trio.sleep(0.05)
