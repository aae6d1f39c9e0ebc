"""A whole cluster in one Trio run: name servers, brokers and clients as killable nodes.

Every node runs in its own cancel scope in the simulation's nursery, with its host's
transport of the simulated network as the current one (``use_transport``), so the broker's
server, its outgoing client and the client library find it without a parameter.  A node can
be started, stopped in order, killed at whatever checkpoint the simulation is at, and
restarted:

* ``kill()`` takes the node off the network first (its connections reset; ``silent=True``:
  its peers hear nothing, as with a lost machine), then - for a broker - copies its store as
  a power loss would leave it (tests/sim/durable.py; ``power_loss=False``: as a process kill
  leaves it), then cancels its tasks.  Their cleanup still runs (trio cannot skip ``finally``),
  but it can reach neither the network (the transport belongs to a dead incarnation) nor the
  next incarnation's store (a new directory, the copy), so it changes nothing the world sees.
* ``restart()`` brings the host back (a new incarnation) and starts the node on the copy.

Virtual time: the brokers' ``now_ms`` (stored timestamps, delays) follows trio's clock from a
fixed epoch, so delays and expiry run on the autojump clock; everything random comes from the
simulation's seed (tests/sim/sim.py).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.broker.app import BrokerHandle, broker
from actors.broker.config import BrokerConfig
from actors.broker.failover import etcd_factory
from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.transport import use_transport
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from storage.config import BrokerRole, FlushDiskType, MessageStoreConfig
from tests.sim.durable import ImageStats, power_loss_copy
from tests.sim.etcd import SimEtcd
from tests.sim.history import History
from tests.sim.network import SimNetwork

log = logging.getLogger(__name__)

# 2026-01-01T00:00:00Z: virtual wall clock at trio time 0
EPOCH_MS = 1_767_225_600_000


@attrs.define(eq=False)
class Node:
    sim: Simulation
    name: str
    host: str
    generation: int = 0
    running: bool = False
    _scope: trio.CancelScope | None = None
    _done: trio.Event | None = None
    _killed: bool = False

    async def start(self) -> None:
        scope = trio.CancelScope()
        done = trio.Event()
        self._scope, self._done, self._killed = scope, done, False
        await self.sim.nursery.start(self._run, scope, done, name=f"node {self.name}")
        self.running = True

    async def _run(
        self, scope: trio.CancelScope, done: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        transport = self.sim.net.node(self.host)
        try:
            with scope, use_transport(transport):
                await self.main(task_status)
        except Exception:
            if not self._killed:
                raise
            # the cleanup of a killed node meets a dead network and closed files
            log.debug("%s: error in the cleanup of a killed incarnation", self.name, exc_info=True)
        finally:
            self.running = False
            done.set()

    async def main(self, task_status: trio.TaskStatus[None]) -> None:
        raise NotImplementedError

    async def finished(self) -> None:
        """Until the node's program returns (or it is stopped or killed)."""
        if self._done is not None:
            await self._done.wait()

    async def stop(self) -> None:
        """Cancel the node's tasks with the network up (its orderly cleanup reaches peers)."""
        if self._scope is not None and self._done is not None:
            self._scope.cancel(reason=f"{self.name} stops")
            await self._done.wait()

    def before_kill(self, power_loss: bool) -> None:
        """Capture what survives, before the tasks are cancelled (brokers: the store)."""

    async def kill(self, *, power_loss: bool = True, silent: bool = False) -> None:
        assert self._scope is not None
        assert self._done is not None
        self.sim.net.down(self.host, silent=silent)
        self.before_kill(power_loss)
        self._killed = True
        self._scope.cancel(reason=f"{self.name} killed")
        self.sim.history.membership_changed(f"kill {self.name}")
        await self._done.wait()

    async def restart(self) -> None:
        self.sim.net.up(self.host)
        self.generation += 1
        self.sim.history.membership_changed(f"restart {self.name}")
        await self.start()


@attrs.define(eq=False)
class NamesrvNode(Node):
    port: int = 9876

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    async def main(self, task_status: trio.TaskStatus[None]) -> None:
        config = NamesrvConfig.in_dir(self.sim.root / self.name, listen_port=self.port)
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(namesrv, config, host=self.host))
            task_status.started()


@attrs.define(eq=False)
class BrokerNode(Node):
    """A broker.  A slave is the same node with ``brokerId`` > 0 in ``config_overrides`` and
    ``brokerRole=SLAVE`` in ``store_settings``, of its master's ``broker_name``; it finds its
    master through the name server, and replication runs on the simulated network.  With
    ``etcdEndpoints`` in ``config_overrides`` (``Simulation.add_etcd``) the group elects its
    master through the simulation's etcd.  Every role change is recorded in the history."""

    port: int = 10911
    broker_name: str = "broker-a"
    cluster_name: str = "DefaultCluster"
    config_overrides: dict[str, Any] = attrs.Factory(dict)
    store_settings: dict[str, Any] = attrs.Factory(dict)
    handle: BrokerHandle | None = None
    last_image: ImageStats | None = None

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def store_dir(self, generation: int | None = None) -> Path:
        gen = self.generation if generation is None else generation
        return self.sim.root / self.name / f"store-{gen}"

    def config(self) -> BrokerConfig:
        return BrokerConfig(
            brokerIP1=self.host,
            brokerName=self.broker_name,
            brokerClusterName=self.cluster_name,
            listenPort=self.port,
            namesrvAddr=";".join(ns.addr for ns in self.sim.namesrvs),
            **self.config_overrides,
        )

    def store_config(self) -> MessageStoreConfig:
        settings: dict[str, Any] = {
            "storePathRootDir": str(self.store_dir()),
            "mappedFileSizeCommitLog": 1024 * 1024,
            "mappedFileSizeConsumeQueue": 1000 * 20,
            "maxHashSlotNum": 1000,
            "maxIndexNum": 4000,
            "flushDiskType": self.sim.flush,
        }
        settings.update(self.store_settings)
        return attrs.evolve(MessageStoreConfig(), **settings)

    async def main(self, task_status: trio.TaskStatus[None]) -> None:
        # the role it starts in (with failover: SLAVE until elected), from before its first
        # write (delayed deliveries may be stored while it starts)
        configured = self.store_settings.get("brokerRole", BrokerRole.ASYNC_MASTER)
        first = BrokerRole.SLAVE if "etcdEndpoints" in self.config_overrides else configured
        self.sim.history.role_changed(self.addr, BrokerRole(first).name)
        sim_etcd = self.sim.etcd
        token = None
        if sim_etcd is not None:
            host = self.host
            token = etcd_factory.set(lambda endpoints: sim_etcd.client(host))
        try:
            async with trio.open_nursery() as nursery:
                self.handle = await nursery.start(
                    functools.partial(
                        broker,
                        self.config(),
                        self.store_config(),
                        host=self.host,
                        now_ms=self.sim.now_ms,
                    )
                )
                nursery.start_soon(self._record_roles, self.handle)
                task_status.started()
        finally:
            if token is not None:
                etcd_factory.reset(token)

    async def _record_roles(self, handle: BrokerHandle) -> None:
        ctx = handle.ctx
        while True:
            role = ctx.role.value
            self.sim.history.role_changed(self.addr, role.name)
            await ctx.role.wait_value(lambda r, seen=role: r is not seen)

    @property
    def is_master(self) -> bool:
        return (
            self.running
            and self.handle is not None
            and self.handle.ctx.role.value is not BrokerRole.SLAVE
        )

    @property
    def leading(self) -> int:
        """The failover epoch this broker is master of (0: none, or no failover)."""
        if not self.running or self.handle is None or self.handle.ctx.failover is None:
            return 0
        return int(self.handle.ctx.failover.leading)

    @property
    def flushed_offset(self) -> int:
        assert self.handle is not None
        return int(self.handle.ctx.store.flushed_offset)

    def before_kill(self, power_loss: bool) -> None:
        assert self.handle is not None
        self.sim.history.role_changed(self.addr, "DOWN")
        if power_loss:
            self.sim.history.power_loss(self.addr, self.flushed_offset)
        rng = random.Random(self.sim.rng.random()) if power_loss else None
        self.last_image = power_loss_copy(
            self.store_dir(), self.store_dir(self.generation + 1), rng
        )

    async def restart(self) -> None:
        if not self.store_dir(self.generation + 1).exists():
            # stopped in order, not killed: the next incarnation opens the same files
            self.store_dir(self.generation).rename(self.store_dir(self.generation + 1))
        await super().restart()


ClientMain = Callable[["ClientNode", trio.TaskStatus[None]], Awaitable[None]]


@attrs.define(eq=False)
class ClientNode(Node):
    """A producer or consumer process: ``body(node, task_status)`` is its program."""

    body: ClientMain | None = None

    async def main(self, task_status: trio.TaskStatus[None]) -> None:
        assert self.body is not None
        await self.body(self, task_status)

    @property
    def namesrv(self) -> str:
        return ";".join(ns.addr for ns in self.sim.namesrvs)

    @property
    def instance(self) -> str:
        # a fixed name: unique_instance_name() would put the real clock into client ids,
        # and the allocation order of a rebalance follows the sorted ids
        return f"{self.name}-{self.generation}"


@attrs.define(eq=False)
class Simulation:
    """The network, the nodes, the history; one per test, inside its Trio run."""

    seed: int
    nursery: trio.Nursery
    root: Path
    flush: FlushDiskType = FlushDiskType.ASYNC_FLUSH
    rng: random.Random = attrs.field(init=False)
    net: SimNetwork = attrs.field(init=False)
    history: History = attrs.field(init=False)
    etcd: SimEtcd | None = None
    namesrvs: list[NamesrvNode] = attrs.Factory(list)
    brokers: list[BrokerNode] = attrs.Factory(list)
    clients: list[ClientNode] = attrs.Factory(list)
    # producer node -> messages it has sent, so a restarted producer goes on, not over
    sent_counter: dict[str, int] = attrs.Factory(dict)
    _hosts: int = 0

    def __attrs_post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.net = SimNetwork(random.Random(self.rng.random()))
        self.history = History(sync_flush=self.flush is FlushDiskType.SYNC_FLUSH, epoch_ms=EPOCH_MS)

    def now_ms(self) -> int:
        return EPOCH_MS + int(trio.current_time() * 1000)

    def _host(self) -> str:
        self._hosts += 1
        return f"10.0.{self._hosts // 250}.{self._hosts % 250 + 1}"

    async def add_namesrv(self, name: str | None = None) -> NamesrvNode:
        node = NamesrvNode(self, name or f"ns{len(self.namesrvs)}", self._host())
        self.namesrvs.append(node)
        await node.start()
        return node

    async def add_etcd(self) -> SimEtcd:
        """The etcd of the brokers with failover (their ``etcdEndpoints``: ``.endpoints``)."""
        self.etcd = SimEtcd(self.net)
        self.nursery.start_soon(self.etcd.run, name="sim etcd")
        return self.etcd

    async def add_broker(self, name: str | None = None, **kw: Any) -> BrokerNode:
        index = len(self.brokers)
        kw.setdefault("broker_name", f"broker-{chr(ord('a') + index)}")
        node = BrokerNode(self, name or f"b{index}", self._host(), **kw)
        self.brokers.append(node)
        self.history.groups[node.addr] = node.broker_name
        await node.start()
        self.history.membership_changed(f"start {node.name}")
        return node

    async def add_client(self, name: str, body: ClientMain, *, start: bool = True) -> ClientNode:
        node = ClientNode(self, name, self._host(), body=body)
        self.clients.append(node)
        if start:
            await node.start()
        return node

    async def admin(
        self, addr: str, request: RemotingCommand, timeout: float = 5.0
    ) -> RemotingCommand:
        """One request from an operator's host (its own connection)."""
        from actors.remoting.client import open_remoting_client

        with use_transport(self.net.node("10.255.0.3")):
            async with open_remoting_client(name="sim-operator") as client:
                return await client.invoke(addr, request, timeout)

    async def wait_route(self, topic: str, timeout: float = 60.0) -> None:
        """Until every running master has the topic and a name server routes every running
        broker group."""
        from actors.remoting.client import open_remoting_client

        with trio.fail_after(timeout), use_transport(self.net.node("10.255.0.1")):
            async with open_remoting_client(name="sim-admin") as client:
                for b in self.brokers:
                    if b.is_master:
                        req = RemotingCommand.request(
                            RequestCode.UPDATE_AND_CREATE_TOPIC,
                            {
                                "topic": topic,
                                "defaultTopic": "TBW102",
                                "readQueueNums": "4",
                                "writeQueueNums": "4",
                                "perm": "6",
                                "topicFilterType": "SINGLE_TAG",
                            },
                        )
                        reply = await client.invoke(b.addr, req, 5)
                        assert reply.code == ResponseCode.SUCCESS, reply.remark
                wanted = {b.broker_name for b in self.brokers if b.running}
                while True:
                    req = RemotingCommand.request(
                        RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic}
                    )
                    found: RemotingCommand | None
                    try:
                        found = await client.invoke(self.namesrvs[0].addr, req, 5)
                    except Exception:
                        found = None
                    if found is not None and found.code == ResponseCode.SUCCESS:
                        names = {d["brokerName"] for d in _json(found.body).get("brokerDatas", [])}
                        if wanted <= names:
                            return
                    await trio.sleep(1)


def _json(body: bytes | None) -> dict[str, Any]:
    import json

    return json.loads(body or b"{}") if body else {}
