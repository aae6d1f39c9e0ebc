"""Apache RocketMQ's own namesrv and broker, the reference the compat tests hold ours to.

Maven Central carries rocketmq-namesrv/rocketmq-broker only up to 4.9.7 (4.9.8 was released for
client and tools alone), so the reference server is 4.9.7; the 4.9.7 -> 4.9.8 changes are
client-side and in ACL/tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.compat.jvm import Jvm
from tests.compat.processes import ManagedProcess, spawn
from tests.compat.servers import Target, start_pair

MAINS = {
    "namesrv": "org.apache.rocketmq.namesrv.NamesrvStartup",
    "broker": "org.apache.rocketmq.broker.BrokerStartup",
}
SERVER_HEAP = "256m"


def start_apache(
    jvm: Jvm, work_dir: Path, broker_extra: Mapping[str, object] | None = None
) -> Target:
    """Start namesrv then broker under ``work_dir`` (store, logs, configs); wait until serving."""

    def java(role: str, conf: Path) -> ManagedProcess:
        home = work_dir / role
        home.mkdir(parents=True, exist_ok=True)
        cmd = jvm.command(
            MAINS[role],
            ["-c", str(conf)],
            server=True,
            work_dir=home,
            heap=SERVER_HEAP,
            extra_flags=("-XX:+UseG1GC", "-XX:-UseLargePages"),
        )
        return spawn(f"apache-{role}", cmd, log_dir=work_dir / "logs", cwd=home, env=jvm.env())

    return start_pair("apache", work_dir, java, broker_extra)
