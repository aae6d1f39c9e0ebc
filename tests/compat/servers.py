"""What the compat tests run against: one namesrv and one broker, Apache's or ours."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
import trio

from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from tests.compat.processes import ManagedProcess, free_port, write_properties
from tests.compat.raw import connect
from tests.store_sizes import SMALL_FILES

CLUSTER = "CompatCluster"
BROKER_NAME = "compat-broker"
START_TIMEOUT = 60.0


class ServerStartError(RuntimeError):
    pass


@attrs.frozen
class Target:
    """A running namesrv + broker pair."""

    name: str  # "apache" or "ours"
    namesrv_addr: str
    broker_addr: str
    cluster: str
    broker_name: str
    log_dir: Path
    processes: tuple[ManagedProcess, ...]

    def diagnose(self) -> str:
        return "\n\n".join(p.describe() for p in self.processes)

    def stop(self, grace: float = 5.0) -> None:
        # The broker first, so it can unregister from a namesrv that is still up.
        for proc in reversed(self.processes):
            proc.stop(grace)


@attrs.frozen
class Names:
    """A test's own topic and group base names."""

    topic: str
    group: str


def broker_properties(*, listen_port: int, namesrv_addr: str, store: Path) -> dict[str, object]:
    """The broker configuration both implementations get: the same keys, RocketMQ's names."""
    return {
        "brokerClusterName": CLUSTER,
        "brokerName": BROKER_NAME,
        "brokerId": 0,
        "listenPort": listen_port,
        "namesrvAddr": namesrv_addr,
        "brokerIP1": "127.0.0.1",
        "storePathRootDir": store,
        "storePathCommitLog": store / "commitlog",
        "autoCreateTopicEnable": "true",
        "flushDiskType": "ASYNC_FLUSH",
        "mappedFileSizeCommitLog": 32 * 1024 * 1024,
        **SMALL_FILES,
        # Check an unresolved transaction 2 s after it was born, every second, instead of the
        # defaults (6 s, 60 s) that would make the transaction test wait a minute.
        "transactionTimeOut": 2000,
        "transactionCheckInterval": 1000,
    }


async def _probe(namesrv_addr: str, broker_addr: str) -> bool:
    try:
        async with connect(namesrv_addr) as ns:
            route = await ns.call(
                RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "TBW102"}),
                timeout=2.0,
            )
        if route.code != ResponseCode.SUCCESS:
            return False
        async with connect(broker_addr):
            return True
    except (OSError, ConnectionError, trio.TooSlowError):
        return False


def wait_ready(namesrv_addr: str, broker_addr: str, processes: Sequence[ManagedProcess]) -> None:
    """Until the broker is registered (TBW102 has a route) and accepts connections."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        dead = [p for p in processes if not p.alive()]
        if dead:
            raise ServerStartError("\n\n".join(p.describe() for p in processes))
        if trio.run(_probe, namesrv_addr, broker_addr):
            return
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"not ready after {START_TIMEOUT} s\n\n"
                + "\n\n".join(p.describe() for p in processes)
            )
        time.sleep(0.25)


def start_pair(
    name: str,
    work_dir: Path,
    spawn_server: Callable[[str, Path], ManagedProcess],
    broker_extra: Mapping[str, object] | None = None,
    namesrv_extra: Mapping[str, object] | None = None,
) -> Target:
    """Start a namesrv then a broker under ``work_dir`` and wait until they serve.

    ``spawn_server(role, conf)`` starts one server (``role`` is "namesrv" or "broker") from
    the properties file ``conf``; on any failure the ones already started are stopped.
    ``broker_extra``/``namesrv_extra``: more config keys (aclEnable, TLS) on top of the shared ones.
    """
    namesrv_port = free_port()
    # Apache's broker also listens on listenPort - 2 (VIP channel) and listenPort + 1 (HA).
    broker_port = free_port(neighbours=(-2, 1))
    namesrv_addr = f"127.0.0.1:{namesrv_port}"
    broker_addr = f"127.0.0.1:{broker_port}"
    confs = {
        "namesrv": write_properties(
            work_dir / "namesrv.conf", {"listenPort": namesrv_port, **(namesrv_extra or {})}
        ),
        "broker": write_properties(
            work_dir / "broker.conf",
            {
                **broker_properties(
                    listen_port=broker_port, namesrv_addr=namesrv_addr, store=work_dir / "store"
                ),
                **(broker_extra or {}),
            },
        ),
    }
    processes: list[ManagedProcess] = []
    try:
        for role, conf in confs.items():
            processes.append(spawn_server(role, conf))
        wait_ready(namesrv_addr, broker_addr, processes)
    except BaseException:
        for proc in reversed(processes):
            proc.stop()
        raise
    return Target(
        name=name,
        namesrv_addr=namesrv_addr,
        broker_addr=broker_addr,
        cluster=CLUSTER,
        broker_name=BROKER_NAME,
        log_dir=work_dir,
        processes=tuple(processes),
    )
