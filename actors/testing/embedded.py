"""A name server and a broker in the caller's Trio run, for tests of RocketMQ client code.

``open_embedded_cluster(store_dir)`` starts both on loopback, on ports the OS picks, with the
store under ``store_dir``, and yields an ``EmbeddedCluster`` with their addresses and client
factories; leaving the block stops them in order.  ``ThreadedCluster`` runs the same in a
background thread with its own Trio run, for test suites that are not Trio (or that drive
the Java, C++ or Go clients): ``with ThreadedCluster(path) as c: ... c.namesrv_addr``.

The store is small (1 MiB commit-log files, messages up to the default 4 MiB are still
accepted as files roll) and flushed asynchronously; topics are created on first send, as
with a default RocketMQ broker, or up front with ``create_topic``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.broker.app import BrokerHandle, broker
from actors.broker.config import BrokerConfig
from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.client import open_remoting_client
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from storage.config import MessageStoreConfig

log = logging.getLogger(__name__)

STORE_DEFAULTS: dict[str, Any] = {
    "mappedFileSizeCommitLog": 8 * 1024 * 1024,
    "mappedFileSizeConsumeQueue": 20 * 10_000,
    "maxHashSlotNum": 10_000,
    "maxIndexNum": 40_000,
}


class EmbeddedClusterError(RuntimeError):
    pass


@attrs.define(eq=False)
class EmbeddedCluster:
    """Addresses of a running name server and broker, and clients configured for them."""

    namesrv_addr: str
    broker_addr: str
    broker_name: str
    cluster_name: str
    startup_seconds: float
    _broker: BrokerHandle | None = attrs.field(default=None, repr=False)

    def producer(self, group: str = "test-producer", **kw: Any) -> Any:
        """A ``Producer`` for this cluster: ``async with cluster.producer() as p: ...``."""
        from actors.client.producer import Producer

        return Producer(group, namesrv=self.namesrv_addr, **kw)

    def push_consumer(self, group: str, **kw: Any) -> Any:
        """A ``PushConsumer`` for this cluster (subscribe, then ``async with``)."""
        from actors.client.push_consumer import PushConsumer

        return PushConsumer(group, namesrv=self.namesrv_addr, **kw)

    def lite_pull_consumer(self, group: str, **kw: Any) -> Any:
        from actors.client.pull_consumer import LitePullConsumer

        return LitePullConsumer(group, namesrv=self.namesrv_addr, **kw)

    async def create_topic(self, topic: str, queues: int = 4, *, timeout: float = 5.0) -> None:
        """Create ``topic`` on the broker and wait until the name server routes it."""
        fields = {
            "topic": topic,
            "defaultTopic": "TBW102",
            "readQueueNums": str(queues),
            "writeQueueNums": str(queues),
            "perm": "6",
            "topicFilterType": "SINGLE_TAG",
        }
        with trio.fail_after(timeout):
            async with open_remoting_client(name="embedded-admin") as client:
                reply = await client.invoke(
                    self.broker_addr,
                    RemotingCommand.request(RequestCode.UPDATE_AND_CREATE_TOPIC, fields),
                    timeout,
                )
                if reply.code != ResponseCode.SUCCESS:
                    raise EmbeddedClusterError(f"create topic {topic}: {reply.remark}")
                query = RemotingCommand.request(
                    RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic}
                )
                while True:
                    reply = await client.invoke(self.namesrv_addr, query, timeout)
                    if reply.code == ResponseCode.SUCCESS:
                        return
                    await trio.sleep(0.05)


@asynccontextmanager
async def open_embedded_cluster(
    store_dir: Path | str,
    *,
    host: str = "127.0.0.1",
    broker_name: str = "embedded-broker",
    cluster_name: str = "DefaultCluster",
    broker_settings: dict[str, Any] | None = None,
    store_settings: dict[str, Any] | None = None,
) -> AsyncIterator[EmbeddedCluster]:
    """A name server and a broker for the duration of the block (see the module doc)."""
    began = time.perf_counter()
    root = Path(store_dir)
    async with trio.open_nursery() as nursery:
        ns_addr: str = await nursery.start(
            functools.partial(namesrv, NamesrvConfig.in_dir(root / "namesrv"), host=host)
        )
        config = BrokerConfig(
            brokerIP1=host,
            brokerName=broker_name,
            brokerClusterName=cluster_name,
            listenPort=0,
            namesrvAddr=ns_addr,
            **(broker_settings or {}),
        )
        store = attrs.evolve(
            MessageStoreConfig(),
            storePathRootDir=str(root / "store"),
            **{**STORE_DEFAULTS, **(store_settings or {})},
        )
        handle: BrokerHandle = await nursery.start(
            functools.partial(broker, config, store, host=host)
        )
        cluster = EmbeddedCluster(
            namesrv_addr=ns_addr,
            broker_addr=handle.address,
            broker_name=broker_name,
            cluster_name=cluster_name,
            startup_seconds=time.perf_counter() - began,
            broker=handle,
        )
        log.info(
            "embedded RocketMQ: namesrv %s, broker %s, up in %.3f s",
            ns_addr,
            handle.address,
            cluster.startup_seconds,
        )
        try:
            yield cluster
        finally:
            # the broker's orderly stop (unregister, answer held pulls, flush), then the rest
            handle.stop()
            with trio.move_on_after(30):
                await handle.stopped.wait()
            nursery.cancel_scope.cancel(reason="embedded cluster closed")


class ThreadedCluster:
    """The embedded cluster in a background thread, for code that is not Trio.

    ``namesrv_addr``/``broker_addr`` are set once ``__enter__`` returns; ``create_topic``
    blocks until the topic is routable; ``__exit__`` stops the broker in order and joins.
    """

    def __init__(self, store_dir: Path | str, *, start_timeout: float = 30.0, **kw: Any):
        self._store_dir = store_dir
        self._kw = kw
        self._start_timeout = start_timeout
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self.cluster: EmbeddedCluster | None = None

    @property
    def namesrv_addr(self) -> str:
        return self._running().namesrv_addr

    @property
    def broker_addr(self) -> str:
        return self._running().broker_addr

    @property
    def startup_seconds(self) -> float:
        return self._running().startup_seconds

    def _running(self) -> EmbeddedCluster:
        if self.cluster is None:
            raise EmbeddedClusterError("the cluster is not running")
        return self.cluster

    def create_topic(self, topic: str, queues: int = 4) -> None:
        assert self._token is not None
        trio.from_thread.run(self._running().create_topic, topic, queues, trio_token=self._token)

    def __enter__(self) -> ThreadedCluster:
        self._thread = threading.Thread(target=self._main, name="embedded-rocketmq", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise EmbeddedClusterError(f"not started within {self._start_timeout} s")
        if self._error is not None:
            raise EmbeddedClusterError(f"failed to start: {self._error!r}") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._stop is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        if self._thread is not None:
            self._thread.join(60)
        self.cluster = None

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with open_embedded_cluster(self._store_dir, **self._kw) as cluster:
            self.cluster = cluster
            self._ready.set()
            await self._stop.wait()


__all__ = ["EmbeddedCluster", "EmbeddedClusterError", "ThreadedCluster", "open_embedded_cluster"]
