"""Real etcd servers for the tests: one node or a cluster on loopback, on free ports, with data
directories in a temp dir; stopped by pid (never by name)."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import attrs

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def etcd_available() -> bool:
    return Path(ETCD).exists()


# Listening ports come from below Linux's ephemeral range (32768-60999 by default): a port
# the OS picked could later be the source port of one of the many short etcd and HA
# connections, and a broker restarted on it would fail to bind its HA port.
_LISTEN_RANGE = (20000, 32000)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, neighbours: tuple[int, ...] = ()) -> int:
    """A free loopback port below the ephemeral range (with ``port + d`` free for each d)."""
    for _ in range(500):
        port = random.randrange(*_LISTEN_RANGE)
        if _bindable(port) and all(_bindable(port + d) for d in neighbours):
            return port
    raise RuntimeError("no free port below the ephemeral range")


@attrs.define
class EtcdNode:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    host: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()  # e.g. ("ip", "netns", "exec", ns): run it on another "host"

    def start(self, initial_cluster: str, state: str = "new") -> None:
        with open(self.data_dir.with_suffix(".log"), "ab") as log:
            self._popen(initial_cluster, state, self.host, log)

    def _popen(self, initial_cluster: str, state: str, host: str, log: Any) -> None:
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                ETCD,
                "--name",
                self.name,
                "--data-dir",
                str(self.data_dir),
                "--listen-client-urls",
                f"http://{host}:{self.client_port}",
                "--advertise-client-urls",
                f"http://{host}:{self.client_port}",
                "--listen-peer-urls",
                f"http://{host}:{self.peer_port}",
                "--initial-advertise-peer-urls",
                f"http://{host}:{self.peer_port}",
                "--initial-cluster",
                initial_cluster,
                "--initial-cluster-state",
                state,
                "--initial-cluster-token",
                "fo-test",
                # quick elections on loopback
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@attrs.define
class EtcdCluster:
    nodes: list[EtcdNode]
    tmp: Path

    @property
    def endpoints(self) -> str:
        return ",".join(n.endpoint for n in self.nodes)

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{n.name}=http://{n.host}:{n.peer_port}" for n in self.nodes)

    def stop(self) -> None:
        for n in self.nodes:
            n.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_etcd(
    size: int = 1, timeout: float = 20.0, *, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()
) -> EtcdCluster:
    tmp = Path(tempfile.mkdtemp(prefix="failover-etcd-"))
    nodes = [
        EtcdNode(f"fo{i}", free_port(), free_port(), tmp / f"fo{i}.etcd", host=host, prefix=prefix)
        for i in range(size)
    ]
    cluster = EtcdCluster(nodes, tmp)
    for n in nodes:
        n.start(cluster.initial_cluster)
    try:
        wait_healthy(cluster, timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_healthy(cluster: EtcdCluster, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for n in cluster.nodes:
        while True:
            try:
                with urllib.request.urlopen(f"http://{n.endpoint}/health", timeout=1) as r:
                    if b"true" in r.read():
                        break
            except OSError:
                pass
            if n.proc is not None and n.proc.poll() is not None:
                raise RuntimeError(f"etcd {n.name} exited: see {n.data_dir.with_suffix('.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd {n.name} not healthy within {timeout} s")
            time.sleep(0.05)
