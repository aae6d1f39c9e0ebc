"""Our namesrv and broker (apps/namesrv.py, apps/broker.py) as a user starts them."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.compat.processes import ManagedProcess, child_env, free_port, spawn, write_properties
from tests.compat.servers import BROKER_NAME, CLUSTER, Target, broker_properties, wait_ready

REPO = Path(__file__).resolve().parents[2]


def start_ours(work_dir: Path) -> Target:
    namesrv_port = free_port()
    broker_port = free_port(neighbours=(-2, 1))  # same shape as Apache's, in case we add them
    namesrv_addr = f"127.0.0.1:{namesrv_port}"
    broker_addr = f"127.0.0.1:{broker_port}"
    ns_conf = write_properties(work_dir / "namesrv.conf", {"listenPort": namesrv_port})
    broker_conf = write_properties(
        work_dir / "broker.conf",
        broker_properties(
            listen_port=broker_port, namesrv_addr=namesrv_addr, store=work_dir / "store"
        ),
    )
    # Defaults such as kvConfigPath live under ~; keep them in the test's folder.
    env = child_env(HOME=str(work_dir))
    processes: list[ManagedProcess] = []
    try:
        for name, conf in (("namesrv", ns_conf), ("broker", broker_conf)):
            argv = [sys.executable, f"apps/{name}.py", "-c", str(conf)]
            processes.append(
                spawn(f"ours-{name}", argv, log_dir=work_dir / "logs", cwd=REPO, env=env)
            )
        wait_ready(namesrv_addr, broker_addr, processes)
    except BaseException:
        for proc in reversed(processes):
            proc.stop()
        raise
    return Target(
        name="ours",
        namesrv_addr=namesrv_addr,
        broker_addr=broker_addr,
        cluster=CLUSTER,
        broker_name=BROKER_NAME,
        log_dir=work_dir,
        processes=tuple(processes),
    )
