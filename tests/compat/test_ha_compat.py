"""Replication against Apache RocketMQ 4.9.7 itself (reference §6.5): an Apache slave follows
our master, and our slave follows an Apache master.  After a mixed workload (single, batch,
delayed, orderly sends) the two commit logs are byte-identical; then the master is stopped and
Apache's Java client (a push consumer, tests/compat/java ``consume-stored``) consumes every
message from the slave alone: its route, pulls, offset queries and commits all go there.

One name server (ours) serves both brokers: it is the registry the slave learns its master's
HA address from.  Brokers run as the subprocesses users start.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import trio

from actors.client.message import Message
from actors.client.producer import Producer
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.fastjson import loads
from tests.compat.apache import MAINS, SERVER_HEAP
from tests.compat.jvm import Jvm, check_program
from tests.compat.processes import ManagedProcess, child_env, free_port, spawn, write_properties
from tests.compat.raw import connect
from tests.compat.servers import broker_properties, wait_ready

pytestmark = [pytest.mark.compat, pytest.mark.java]

REPO = Path(__file__).resolve().parents[2]
FILE_SIZE = 32 * 1024 * 1024
TOPIC = "HaCompatTopic"
BROKER_NAME = "ha-compat"


def _props(port: int, namesrv: str, store: Path, *, slave: bool) -> dict[str, object]:
    props = broker_properties(listen_port=port, namesrv_addr=namesrv, store=store)
    props.update(
        brokerName=BROKER_NAME,
        brokerId=1 if slave else 0,
        brokerRole="SLAVE" if slave else "ASYNC_MASTER",
        slaveReadEnable="true",
        mappedFileSizeCommitLog=FILE_SIZE,
        messageDelayLevel="1s 2s",
    )
    props.pop("transactionTimeOut", None)
    props.pop("transactionCheckInterval", None)
    return props


def _ours(name: str, role: str, conf: Path, work: Path) -> ManagedProcess:
    argv = [sys.executable, f"apps/{role}.py", "-c", str(conf)]
    env = child_env(HOME=str(work))
    return spawn(name, argv, log_dir=work / "logs", cwd=REPO, env=env)


def _apache_broker(jvm: Jvm, conf: Path, work: Path) -> ManagedProcess:
    home = work / "apache-broker"
    home.mkdir(parents=True, exist_ok=True)
    cmd = jvm.command(
        MAINS["broker"],
        ["-c", str(conf)],
        server=True,
        work_dir=home,
        heap=SERVER_HEAP,
        extra_flags=("-XX:+UseG1GC", "-XX:-UseLargePages"),
    )
    return spawn("apache-broker", cmd, log_dir=work / "logs", cwd=home, env=jvm.env())


@attrs.frozen
class Group:
    namesrv: str
    master: str
    slave: str
    master_store: Path
    slave_store: Path
    master_proc: ManagedProcess


@pytest.fixture(params=["apache-slave", "apache-master"])
def group(request: pytest.FixtureRequest, jvm: Jvm, tmp_path: Path) -> Iterator[Group]:
    """A master and its slave, one side Apache's, and our name server."""
    apache_is_slave = request.param == "apache-slave"
    ns_port = free_port()
    namesrv = f"127.0.0.1:{ns_port}"
    procs: list[ManagedProcess] = []
    try:
        procs.append(
            _ours("ours-namesrv", "namesrv",
                  write_properties(tmp_path / "namesrv.conf", {"listenPort": ns_port}), tmp_path)
        )  # fmt: skip
        addrs, stores = {}, {}
        for slave in (False, True):
            side = "slave" if slave else "master"
            port = free_port(neighbours=(-2, 1))
            store = tmp_path / f"{side}-store"
            conf = write_properties(
                tmp_path / f"{side}.conf", _props(port, namesrv, store, slave=slave)
            )
            apache = apache_is_slave == slave
            proc = (
                _apache_broker(jvm, conf, tmp_path)
                if apache
                else _ours(f"ours-{side}", "broker", conf, tmp_path)
            )
            procs.append(proc)
            addrs[side], stores[side] = f"127.0.0.1:{port}", store
            wait_ready(namesrv, addrs[side], procs)
        yield Group(
            namesrv, addrs["master"], addrs["slave"], stores["master"], stores["slave"], procs[1]
        )
    except BaseException:
        print("\n\n".join(p.describe() for p in procs))
        raise
    finally:
        for proc in reversed(procs):
            proc.stop(5.0)


async def _runtime(addr: str) -> dict[str, str]:
    async with connect(addr) as conn:
        reply = await conn.call(
            RemotingCommand.request(RequestCode.GET_BROKER_RUNTIME_INFO, {}), timeout=5.0
        )
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    table = loads(reply.body.decode())["table"]
    return {str(k): str(v) for k, v in table.items()}


async def _workload(namesrv: str) -> list[str]:
    """Sends a mixed workload; returns every body (each distinct)."""
    bodies: list[str] = []

    def msg(body: str, tags: str | None = None, keys: str | None = None, delay: int = 0) -> Message:
        bodies.append(body)
        return Message(TOPIC, body.encode(), tags=tags, keys=keys, delay_level=delay)

    async with Producer("pg_ha_compat", namesrv=namesrv) as producer:
        for i in range(30):
            await producer.send(msg(f"single-{i}", tags="A", keys=f"k{i}"))
        for b in range(3):
            await producer.send_batch([msg(f"batch-{b}-{i}") for i in range(5)])
        for i in range(5):
            await producer.send(msg(f"delayed-{i}", delay=1))
        for i in range(10):
            await producer.send_orderly(msg(f"orderly-{i}"), sharding_key=f"o{i % 3}")
    return bodies


async def _route_brokers(namesrv: str) -> list[dict[str, str]]:
    """The brokerAddrs of every broker data in the topic's route."""
    async with connect(namesrv) as conn:
        reply = await conn.call(
            RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": TOPIC}),
            timeout=5.0,
        )
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    route = loads(reply.body.decode())
    return [{str(k): str(v) for k, v in b["brokerAddrs"].items()} for b in route["brokerDatas"]]


def _log_bytes(store: Path, length: int) -> bytes:
    files = sorted((store / "commitlog").iterdir())
    data = b"".join(f.read_bytes() for f in files)
    return data[:length]


def test_commit_logs_byte_identical(group: Group, jvm: Jvm, tmp_path: Path) -> None:
    bodies = trio.run(_workload, group.namesrv)
    time.sleep(3.0)  # the delayed messages come back (level 1: 1 s) as new records
    deadline = time.monotonic() + 60
    while True:
        m_max = int(trio.run(_runtime, group.master)["commitLogMaxOffset"])
        s_max = int(trio.run(_runtime, group.slave)["commitLogMaxOffset"])
        if m_max == s_max:
            break
        assert time.monotonic() < deadline, f"slave at {s_max}, master at {m_max}"
        time.sleep(0.5)
    assert _log_bytes(group.slave_store, m_max) == _log_bytes(group.master_store, m_max)
    # the master goes away: a real client finds only the slave, and gets every message there
    group.master_proc.stop(10.0)
    deadline = time.monotonic() + 30
    while (route := trio.run(_route_brokers, group.namesrv)) != [{"1": group.slave}]:
        assert time.monotonic() < deadline, f"the route still has {route}"
        time.sleep(0.2)
    done = jvm.run_client(
        "consume-stored",
        {"namesrv": group.namesrv, "topic": TOPIC, "group": "cg_ha_compat"},
        work_dir=tmp_path / "client",
        stdin="".join(f"{body}\n" for body in bodies),
    )
    check_program(done, f"consume-stored from slave {group.slave}")
