"""Apache RocketMQ's own namesrv and broker, the reference the compat tests hold ours to.

Maven Central carries rocketmq-namesrv/rocketmq-broker only up to 4.9.7 (4.9.8 was released for
client and tools alone), so the reference server is 4.9.7; the 4.9.7 -> 4.9.8 changes are
client-side and in ACL/tools.
"""

from __future__ import annotations

from pathlib import Path

from tests.compat.jvm import Jvm
from tests.compat.processes import ManagedProcess, free_port, spawn, write_properties
from tests.compat.servers import BROKER_NAME, CLUSTER, Target, broker_properties, wait_ready

NAMESRV_MAIN = "org.apache.rocketmq.namesrv.NamesrvStartup"
BROKER_MAIN = "org.apache.rocketmq.broker.BrokerStartup"
SERVER_HEAP = "256m"


def start_apache(jvm: Jvm, work_dir: Path) -> Target:
    """Start namesrv then broker under ``work_dir`` (store, logs, configs); wait until serving."""
    namesrv_port = free_port()
    broker_port = free_port(neighbours=(-2, 1))  # VIP channel and HA port
    namesrv_addr = f"127.0.0.1:{namesrv_port}"
    broker_addr = f"127.0.0.1:{broker_port}"
    logs = work_dir / "logs"
    ns_conf = write_properties(work_dir / "namesrv.conf", {"listenPort": namesrv_port})
    broker_conf = write_properties(
        work_dir / "broker.conf",
        broker_properties(
            listen_port=broker_port, namesrv_addr=namesrv_addr, store=work_dir / "store"
        ),
    )
    processes: list[ManagedProcess] = []

    def java(name: str, main: str, conf: Path) -> ManagedProcess:
        home = work_dir / name
        home.mkdir(parents=True, exist_ok=True)
        cmd = jvm.command(
            main,
            ["-c", str(conf)],
            server=True,
            work_dir=home,
            heap=SERVER_HEAP,
            extra_flags=("-XX:+UseG1GC", "-XX:-UseLargePages"),
        )
        proc = spawn(f"apache-{name}", cmd, log_dir=logs, cwd=home, env=jvm.env())
        processes.append(proc)
        return proc

    try:
        java("namesrv", NAMESRV_MAIN, ns_conf)
        java("broker", BROKER_MAIN, broker_conf)
        wait_ready(namesrv_addr, broker_addr, processes)
    except BaseException:
        for proc in reversed(processes):
            proc.stop()
        raise
    return Target(
        name="apache",
        namesrv_addr=namesrv_addr,
        broker_addr=broker_addr,
        cluster=CLUSTER,
        broker_name=BROKER_NAME,
        log_dir=work_dir,
        processes=tuple(processes),
    )
