"""The servers a bench run starts and the topic it sets up.

* ``local_cluster``: our namesrv + broker as child processes (free ports, a temporary store,
  optional CPU pinning), for runs not pointed at a name server with ``-n``; a server that
  fails shows the end of its log before its folder is removed.
* ``floor_process``: apps/bench_floor.py as a child process, the reference for ratios.
* ``ensure_topic``: create the bench topic on every master the name server knows and wait for
  its route, so our broker, Apache's and the floor are set up the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.remoting.client import RemotingClient, RequestHook, open_remoting_client
from actors.remoting.errors import RemotingError
from apps._bench import ROOT, Proc, parse_cpus
from apps.demo import free_port, stop, wait_listening
from protocol.bodies.common import TopicFilterType
from protocol.bodies.route import ClusterInfo, TopicRouteData
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, encode_header
from protocol.errors import ProtocolError
from protocol.headers.admin import CreateTopicRequestHeader
from protocol.headers.namesrv import GetRouteInfoRequestHeader

# ---------------------------------------------------------------- servers we start

NAMESRV_CONF = {"listenPort": "{namesrv_port}", "kvConfigPath": "{home}/namesrv/kvConfig.json"}
BROKER_CONF = {
    "brokerClusterName": "DefaultCluster",
    "brokerName": "broker-a",
    "brokerId": "0",
    "brokerRole": "ASYNC_MASTER",
    "brokerIP1": "127.0.0.1",
    "listenPort": "{broker_port}",
    "namesrvAddr": "127.0.0.1:{namesrv_port}",
    "autoCreateTopicEnable": "true",
    "storePathRootDir": "{home}/store",
}


@attrs.define(eq=False)
class LocalCluster:
    namesrv_addr: str
    procs: list[Proc]
    home: Path

    @property
    def broker(self) -> Proc | None:
        return next((p for p in self.procs if p.name == "broker"), None)


def _write_conf(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


async def _spawn(cmd: list[str], cpus: set[int] | None, log: Path) -> trio.Process:
    with open(log, "wb") as out:  # noqa: ASYNC230 - opening a log file, once per run
        proc = await trio.lowlevel.open_process(cmd, stdout=out, stderr=out, cwd=ROOT)
    if cpus is not None:
        os.sched_setaffinity(proc.pid, cpus)
    return proc


@contextlib.asynccontextmanager
async def local_cluster(
    *,
    flush: str = "ASYNC_FLUSH",
    broker_set: Sequence[str] = (),
    cpus: set[int] | None = None,
    parent_dir: str | None = None,
) -> AsyncIterator[LocalCluster]:
    """Our namesrv + broker as child processes, stopped (SIGTERM) on exit.

    Their logs are in the store folder, which is removed afterwards.
    """
    home = Path(tempfile.mkdtemp(prefix="bench-", dir=parent_dir))
    namesrv_port, broker_port = free_port(), free_port()
    values = {"namesrv_port": namesrv_port, "broker_port": broker_port, "home": home}
    broker_conf = {k: v.format(**values) for k, v in BROKER_CONF.items()}
    broker_conf["flushDiskType"] = flush
    for item in broker_set:
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--broker-set wants KEY=VALUE, got {item!r}")
        broker_conf[key] = value
    ns_conf = {k: v.format(**values) for k, v in NAMESRV_CONF.items()}
    python = sys.executable
    started: list[tuple[str, trio.Process]] = []
    try:
        ns = await _spawn(
            [python, "apps/namesrv.py", "-c", str(_write_conf(home / "namesrv.conf", ns_conf))],
            cpus,
            home / "namesrv.log",
        )
        started.append(("namesrv", ns))
        await wait_listening(namesrv_port, ns, "namesrv")
        broker = await _spawn(
            [python, "apps/broker.py", "-c", str(_write_conf(home / "broker.conf", broker_conf))],
            cpus,
            home / "broker.log",
        )
        started.append(("broker", broker))
        await wait_listening(broker_port, broker, "broker")
    except BaseException:
        for name, _ in started:
            _show_log(home / f"{name}.log", name)
        with trio.CancelScope(shield=True):
            for name, proc in reversed(started):
                await stop_quietly(proc, name)
        shutil.rmtree(home, ignore_errors=True)
        raise
    try:
        yield LocalCluster(
            f"127.0.0.1:{namesrv_port}", [Proc(name, p.pid) for name, p in started], home
        )
    finally:
        with trio.CancelScope(shield=True):
            for name, proc in reversed(started):
                if await stop_quietly(proc, name) != 0:
                    _show_log(home / f"{name}.log", name)
        shutil.rmtree(home, ignore_errors=True)


async def open_target(stack: contextlib.AsyncExitStack, args: Any) -> tuple[str, str, list[Proc]]:
    """The target of a bench run: ``-n`` names one, else our own namesrv + broker are started.

    Returns (label, namesrv address, processes whose CPU and RSS are reported); a started
    cluster lives as long as ``stack``.
    """
    if args.namesrv:
        procs = [Proc("broker", args.broker_pid)] if args.broker_pid else []
        return args.label or "target", args.namesrv, procs
    cluster = await stack.enter_async_context(
        local_cluster(
            flush=args.flush,
            broker_set=args.broker_set,
            cpus=parse_cpus(args.server_cpus),
            parent_dir=args.dir,
        )
    )
    procs = [p for p in cluster.procs if p.name == "broker"]
    return args.label or "ours", cluster.namesrv_addr, procs


def _show_log(path: Path, name: str, lines: int = 15) -> None:
    """The end of a server's log on stderr: it failed, and its folder is about to go."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    sys.stderr.write(f"--- {name} log (last lines)\n" + "\n".join(tail) + "\n")


@contextlib.asynccontextmanager
async def floor_process(
    *, cpus: set[int] | None = None, parent_dir: str | None = None
) -> AsyncIterator[tuple[str, Proc]]:
    """apps/bench_floor.py as a child process: (its address, the process)."""
    home = Path(tempfile.mkdtemp(prefix="bench-floor-", dir=parent_dir))
    port = free_port()
    cmd = [sys.executable, "-m", "apps.bench_floor", "--port", str(port), "--dir", str(home)]
    proc = await _spawn(cmd, cpus, home / "floor.log")
    try:
        await wait_listening(port, proc, "floor")
        yield f"127.0.0.1:{port}", Proc("floor", proc.pid)
    finally:
        with trio.CancelScope(shield=True):
            await stop_quietly(proc, "floor")
        shutil.rmtree(home, ignore_errors=True)


async def stop_quietly(proc: trio.Process, name: str) -> int:
    """SIGTERM, then SIGKILL after 20 s (apps/demo.py's stop); its exit status."""
    with contextlib.redirect_stdout(sys.stderr):
        return await stop(proc, name)


# ---------------------------------------------------------------- topic set-up


async def _call(
    client: RemotingClient, addr: str, code: int, header: Any = None, timeout: float = 5.0
) -> RemotingCommand:
    ext = encode_header(header) if header is not None else {}
    return await client.invoke(addr, RemotingCommand.request(code, ext), timeout)


async def ensure_topic(
    namesrv: str,
    topic: str,
    queues: int,
    *,
    timeout: float = 30.0,
    request_hook: RequestHook | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """Create ``topic`` on every master the name server knows; wait for its route.

    Returns the first master's address.  Works against our broker, Apache's and the floor.
    """
    ns = namesrv.split(";")[0]
    async with open_remoting_client(
        name="bench-admin", request_hook=request_hook, ssl_context=ssl_context
    ) as client:
        with _deadline(timeout, f"no broker with topic {topic} at name server {ns}"):
            while True:
                try:
                    reply = await _call(client, ns, RequestCode.GET_BROKER_CLUSTER_INFO)
                    if reply.code == ResponseCode.SUCCESS:
                        info = decode_body(ClusterInfo, reply.body)
                        masters = [
                            b.master_addr for b in info.broker_addr_table.values() if b.master_addr
                        ]
                        if masters:
                            break
                except (RemotingError, ProtocolError):
                    pass
                await trio.sleep(0.2)
            header = CreateTopicRequestHeader(
                topic=topic,
                default_topic="TBW102",
                read_queue_nums=queues,
                write_queue_nums=queues,
                perm=6,
                topic_filter_type=TopicFilterType.SINGLE_TAG,
                topic_sys_flag=0,
            )
            for addr in masters:
                reply = await _call(client, addr, RequestCode.UPDATE_AND_CREATE_TOPIC, header)
                if reply.code != ResponseCode.SUCCESS:
                    raise SystemExit(f"creating {topic} on {addr} failed: {reply.remark}")
            route_header = GetRouteInfoRequestHeader(topic=topic)
            while True:
                reply = await _call(client, ns, RequestCode.GET_ROUTEINFO_BY_TOPIC, route_header)
                if reply.code == ResponseCode.SUCCESS:
                    route = decode_body(TopicRouteData, reply.body)
                    if route.queue_datas:
                        return sorted(masters)[0]
                await trio.sleep(0.2)


@contextlib.contextmanager
def _deadline(seconds: float, what: str) -> Iterator[None]:
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise SystemExit(f"bench: {what} after {seconds:g} s") from None
