"""The client instance (Java's MQClientInstance): one per client id.

It owns the remoting client, the route cache and the broker address table, and runs the
instance-wide timers (§8.1) under one supervisor: route refresh (30 s), heartbeat to every
broker (30 s, also drops brokers no route mentions any more) and consumer offset
persistence (5 s).  Producers and consumers register with it by group (one of each per
group), and its heartbeat carries all of them; server-to-client requests
(NOTIFY_CONSUMER_IDS_CHANGED, RESET_CONSUMER_CLIENT_OFFSET, CHECK_TRANSACTION_STATE) are
routed to the consumer or producer of the named group.  ``open_client_instance`` runs one for
the duration of a block; clients get theirs from manager.py, which shares one per client id.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import attrs
import trio

from actors.client import api
from actors.client.errors import BrokerError, ClientError, NoRouteError
from actors.client.route import (
    TopicPublishInfo,
    broker_addrs,
    pick_addr,
    publish_info,
    route_signature,
    subscribe_queues,
)
from actors.remoting.client import RemotingClient, open_remoting_client
from actors.remoting.router import Channel, RequestContext, Router
from actors.supervisor import RestartPolicy, supervise
from protocol.acl import SessionCredentials, sign_request
from protocol.bodies.admin import ResetOffsetBody
from protocol.bodies.common import MessageQueue
from protocol.bodies.heartbeat import ConsumerData, HeartbeatData, ProducerData
from protocol.bodies.route import TopicRouteData
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, decode_header, encode_body
from protocol.errors import ProtocolError
from protocol.headers.client import (
    NotifyConsumerIdsChangedRequestHeader,
    ResetOffsetRequestHeader,
    UnregisterClientRequestHeader,
)
from protocol.headers.transaction import CheckTransactionStateRequestHeader
from protocol.message import MessageConst, MessageExt, decode_record

log = logging.getLogger(__name__)

AUTO_CREATE_TOPIC = "TBW102"
DEFAULT_TOPIC_QUEUE_NUMS = 4
CLIENT_INNER_PRODUCER_GROUP = "CLIENT_INNER_PRODUCER"
FIRST_HEARTBEAT_DELAY = 1.0
FIRST_PERSIST_DELAY = 10.0
LOOP_POLICY = RestartPolicy(max_restarts=10, within_seconds=60, backoff_initial=0.5, backoff_max=5)


def parse_namesrv(value: str | Sequence[str]) -> list[str]:
    """``"a:9876;b:9876"`` or a list -> addresses; a clear error if there is none."""
    items = value.split(";") if isinstance(value, str) else list(value)
    addrs = [a.strip() for a in items if a and a.strip()]
    if not addrs:
        raise ClientError("no name server address given")
    return addrs


def local_ip() -> str:
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return ip


def unique_instance_name() -> str:
    # Java replaces DEFAULT with pid#nanoTime so two clients in one process never share an id.
    return f"{os.getpid()}#{time.monotonic_ns()}"


@attrs.define(eq=False)
class ClientConfig:
    namesrv_addrs: list[str]
    client_ip: str = attrs.Factory(local_ip)
    instance_name: str = "DEFAULT"
    poll_namesrv_interval: float = 30.0
    heartbeat_interval: float = 30.0
    persist_offset_interval: float = 5.0
    api_timeout: float = 3.0
    # Signs every request as Java's AclClientRPCHook (for brokers with aclEnable=true).
    credentials: SessionCredentials | None = None
    # TLS to name servers and brokers (actors/remoting/tls.py client_context); None = plain.
    tls: ssl.SSLContext | None = None

    @property
    def client_id(self) -> str:
        return f"{self.client_ip}@{self.instance_name}"


# (the connection the check came on, its header, the half message) -> None; must not block
TransactionChecker = Callable[[Channel, CheckTransactionStateRequestHeader, MessageExt], None]


class ConsumerHooks(Protocol):
    """What the instance needs from a consumer registered with it."""

    @property
    def group(self) -> str: ...

    def topics(self) -> set[str]: ...

    def consumer_data(self) -> ConsumerData: ...

    def on_ids_changed(self) -> None: ...

    async def persist_offsets(self) -> None: ...

    async def reset_offsets(self, topic: str, offsets: dict[MessageQueue, int]) -> None: ...


@attrs.define(eq=False)
class ClientInstance:
    config: ClientConfig
    remoting: RemotingClient
    nursery: trio.Nursery
    routes: dict[str, TopicRouteData] = attrs.Factory(dict)
    publish: dict[str, TopicPublishInfo] = attrs.Factory(dict)
    brokers: dict[str, dict[int, str]] = attrs.Factory(dict)
    producer_groups: set[str] = attrs.Factory(set)
    producer_topics: set[str] = attrs.Factory(set)
    consumers: dict[str, ConsumerHooks] = attrs.Factory(dict)
    # producer group -> what answers the broker's CHECK_TRANSACTION_STATE for it
    transaction_checkers: dict[str, TransactionChecker] = attrs.Factory(dict)
    _ns_index: int = 0
    _route_locks: dict[str, trio.Lock] = attrs.Factory(dict)
    _heartbeat_lock: trio.Lock = attrs.Factory(trio.Lock)

    @property
    def client_id(self) -> str:
        return self.config.client_id

    @property
    def timeout(self) -> float:
        return self.config.api_timeout

    # ------------------------------------------------------------ name server

    async def _route_from_namesrv(self, topic: str) -> TopicRouteData | None:
        """Ask the name servers in turn (starting with the last good one)."""
        addrs = self.config.namesrv_addrs
        last: ClientError | None = None
        for i in range(len(addrs)):
            index = (self._ns_index + i) % len(addrs)
            try:
                route = await api.get_route(self.remoting, addrs[index], topic, self.timeout)
            except ClientError as exc:
                last = exc
                continue
            self._ns_index = index
            return route
        assert last is not None
        raise last

    async def update_route(self, topic: str, *, use_default: bool = False) -> TopicRouteData | None:
        """Refresh one topic's route; the (possibly unchanged) cached route or None.

        ``use_default``: when the topic does not exist yet, build a route from TBW102 so the
        broker can auto-create the topic on the first send (§8.3).
        """
        lock = self._route_locks.setdefault(topic, trio.Lock())
        async with lock:
            route = await self._route_from_namesrv(topic)
            if route is None and use_default:
                default = await self._route_from_namesrv(AUTO_CREATE_TOPIC)
                if default is not None:
                    # Both counts from the read count, as Java's MQClientInstance does.
                    route = attrs.evolve(
                        default,
                        queue_datas=tuple(
                            attrs.evolve(
                                qd,
                                read_queue_nums=min(DEFAULT_TOPIC_QUEUE_NUMS, qd.read_queue_nums),
                                write_queue_nums=min(DEFAULT_TOPIC_QUEUE_NUMS, qd.read_queue_nums),
                            )
                            for qd in default.queue_datas
                        ),
                    )
            if route is None:
                return self.routes.get(topic)
            old = self.routes.get(topic)
            if old is None or route_signature(old) != route_signature(route):
                self.routes[topic] = route
                self.brokers.update(broker_addrs(route))
                info = publish_info(topic, route)
                if topic in self.publish and info.ok():
                    # Keep the round-robin position, as Java keeps the TopicPublishInfo's index.
                    info.next_index()
                self.publish[topic] = info
            return self.routes[topic]

    async def publish_info(self, topic: str) -> TopicPublishInfo:
        info = self.publish.get(topic)
        if info is None or not info.ok():
            self.producer_topics.add(topic)
            try:
                await self.update_route(topic)
                info = self.publish.get(topic)
                if info is None or not info.ok():
                    await self.update_route(topic, use_default=True)
                    info = self.publish.get(topic)
            except ClientError as exc:
                raise NoRouteError(topic, f"the name servers could not be asked: {exc}") from exc
        if info is None or not info.ok():
            raise NoRouteError(topic, "no writeable queue; is the topic created and a broker up?")
        return info

    async def subscribe_queues(self, topic: str) -> list[MessageQueue]:
        route = self.routes.get(topic)
        if route is None:
            route = await self.update_route(topic)
        if route is None:
            raise NoRouteError(topic)
        return subscribe_queues(topic, route)

    def broker_addr(self, broker_name: str, *, only_master: bool = True) -> str | None:
        return pick_addr(self.brokers.get(broker_name, {}), only_master=only_master)

    async def find_broker_addr(
        self, broker_name: str, topic: str, *, only_master: bool = True
    ) -> str:
        """The broker's address, refreshing the topic's route once if it is not known yet."""
        addr = self.broker_addr(broker_name, only_master=only_master)
        if addr is None:
            await self.update_route(topic)
            addr = self.broker_addr(broker_name, only_master=only_master)
        if addr is None:
            raise ClientError(f"the broker[{broker_name}] not exist")
        return addr

    def interesting_topics(self) -> set[str]:
        topics = set(self.producer_topics)
        for consumer in self.consumers.values():
            topics |= consumer.topics()
        return topics

    # ------------------------------------------------------------ members

    def register_producer(self, group: str) -> None:
        """A producer of ``group`` joins; one per group and instance, as Java's
        registerProducer (two would answer each other's transaction checks)."""
        if group in self.producer_groups:
            raise ClientError(
                f"The producer group[{group}] has been created before, specify another name "
                f"please (or another instance_name: client id {self.client_id})"
            )
        self.producer_groups.add(group)

    def register_consumer(self, consumer: ConsumerHooks) -> None:
        """A consumer joins; one per group and instance, as Java's registerConsumer (the
        broker sees one member per client id, so two would share one allocation)."""
        if consumer.group in self.consumers:
            raise ClientError(
                f"The consumer group[{consumer.group}] has been created before, specify another "
                f"name please (or another instance_name: client id {self.client_id})"
            )
        self.consumers[consumer.group] = consumer

    def unregister_consumer(self, consumer: ConsumerHooks) -> None:
        if self.consumers.get(consumer.group) is consumer:
            del self.consumers[consumer.group]

    # ------------------------------------------------------------ heartbeat

    def heartbeat_data(self) -> HeartbeatData:
        producers = [ProducerData(group_name=g) for g in sorted(self.producer_groups)]
        if self.producer_groups or self.consumers:
            producers.append(ProducerData(group_name=CLIENT_INNER_PRODUCER_GROUP))
        return HeartbeatData(
            client_id=self.client_id,
            producer_data_set=tuple(producers),
            consumer_data_set=tuple(c.consumer_data() for c in self.consumers.values()),
        )

    def _heartbeat_targets(self) -> list[str]:
        with_slaves = bool(self.consumers)
        targets = []
        for addrs in self.brokers.values():
            for broker_id, addr in sorted(addrs.items()):
                if broker_id == 0 or with_slaves:
                    targets.append(addr)
        return targets

    async def heartbeat_all(self, *, raise_refusal: bool = False) -> None:
        """HEART_BEAT to every known broker; failures are logged.

        ``raise_refusal`` (a subscription the caller awaits): a broker that answered with
        an error code (say NO_PERMISSION under ACL) is raised as ``BrokerError`` after
        every broker was tried; one that cannot be reached is only logged, as the periodic
        heartbeat and the pull loops retry it.
        """
        refused: BrokerError | None = None
        async with self._heartbeat_lock:
            body = encode_body(self.heartbeat_data())
            for addr in self._heartbeat_targets():
                cmd = api.request(RequestCode.HEART_BEAT, None, body)
                try:
                    reply = await api.invoke(self.remoting, addr, cmd, self.timeout)
                except ClientError as exc:
                    log.info("heartbeat to %s failed: %s", addr, exc)
                    continue
                if reply.code != ResponseCode.SUCCESS:
                    # Java's sendHearbeat throws MQBrokerException here; the timer logs it.
                    log.warning("heartbeat to %s refused: %d %s", addr, reply.code, reply.remark)
                    refused = refused or BrokerError(reply.code, reply.remark, addr)
        if refused is not None and raise_refusal:
            raise refused

    def drop_offline_brokers(self) -> None:
        """Forget brokers no cached route mentions any more (Java's cleanOfflineBroker)."""
        live: set[str] = set()
        for route in self.routes.values():
            for bd in route.broker_datas:
                live |= set(dict(bd.broker_addrs).values())
        for name in list(self.brokers):
            addrs = {i: a for i, a in self.brokers[name].items() if a in live}
            if addrs:
                self.brokers[name] = addrs
            else:
                del self.brokers[name]

    async def unregister(self, *, producer_group: str | None, consumer_group: str | None) -> None:
        header = UnregisterClientRequestHeader(
            client_id=self.client_id, producer_group=producer_group, consumer_group=consumer_group
        )
        for addrs in list(self.brokers.values()):
            for addr in addrs.values():
                try:
                    await api.invoke(
                        self.remoting,
                        addr,
                        api.request(RequestCode.UNREGISTER_CLIENT, header),
                        self.timeout,
                    )
                except ClientError as exc:
                    log.info("unregister from %s failed: %s", addr, exc)

    # ------------------------------------------------------------ server -> client

    async def _on_notify_ids_changed(
        self, ctx: RequestContext, req: RemotingCommand
    ) -> RemotingCommand | None:
        try:
            header = decode_header(NotifyConsumerIdsChangedRequestHeader, req.ext_fields)
        except ProtocolError as exc:
            log.info("bad NOTIFY_CONSUMER_IDS_CHANGED from %s: %s", ctx.peer, exc)
            return None
        consumer = self.consumers.get(header.consumer_group)
        if consumer is not None:
            consumer.on_ids_changed()
        return None

    async def _on_reset_offset(
        self, ctx: RequestContext, req: RemotingCommand
    ) -> RemotingCommand | None:
        """RESET_CONSUMER_CLIENT_OFFSET (resetOffsetByTime): the broker names each queue's new
        offset; the group's consumer moves there (in the background: this is oneway)."""
        try:
            header = decode_header(ResetOffsetRequestHeader, req.ext_fields)
            body = decode_body(ResetOffsetBody, req.body)
        except ProtocolError as exc:
            log.info("bad RESET_CONSUMER_CLIENT_OFFSET from %s: %s", ctx.peer, exc)
            return None
        consumer = self.consumers.get(header.group)
        if consumer is None:
            log.info("RESET_CONSUMER_CLIENT_OFFSET for group %s, not consuming here", header.group)
            return None
        log.info(
            "resetting offsets of %s on %s to %s",
            header.group,
            header.topic,
            {mq.queue_id: offset for mq, offset in body.offset_table.items()},
        )
        self.nursery.start_soon(consumer.reset_offsets, header.topic, dict(body.offset_table))
        return None

    async def _on_check_transaction(
        self, ctx: RequestContext, req: RemotingCommand
    ) -> RemotingCommand | None:
        """CHECK_TRANSACTION_STATE (oneway): hand it to the producer of the message's group."""
        try:
            header = decode_header(CheckTransactionStateRequestHeader, req.ext_fields)
            msg = decode_record(req.body)
        except ProtocolError as exc:
            log.warning("bad CHECK_TRANSACTION_STATE from %s: %s", ctx.peer, exc)
            return None
        group = msg.properties.get(MessageConst.PGROUP, "")
        checker = self.transaction_checkers.get(group)
        if checker is None:
            log.warning("CHECK_TRANSACTION_STATE for group %r: no transaction producer", group)
            return None
        checker(ctx.channel, header, msg)
        return None


# ---------------------------------------------------------------- actors


async def route_refresher(
    inst: ClientInstance, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    while True:
        await trio.sleep(inst.config.poll_namesrv_interval)
        for topic in sorted(inst.interesting_topics()):
            try:
                await inst.update_route(topic)
            except ClientError as exc:
                log.info("route refresh of %s failed: %s", topic, exc)


async def heartbeat_sender(
    inst: ClientInstance, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    # First after 1 s (§8.1): by then a producer has usually looked up its first route.
    await trio.sleep(FIRST_HEARTBEAT_DELAY)
    while True:
        inst.drop_offline_brokers()
        await inst.heartbeat_all()
        await trio.sleep(inst.config.heartbeat_interval)


async def offset_persister(
    inst: ClientInstance, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    await trio.sleep(FIRST_PERSIST_DELAY)
    while True:
        for consumer in list(inst.consumers.values()):
            await consumer.persist_offsets()
        await trio.sleep(inst.config.persist_offset_interval)


@asynccontextmanager
async def collapse_single() -> AsyncIterator[None]:
    """Re-raise a lone exception out of the nursery groups it crossed.

    Users of ``async with Producer(...)`` expect the exception their own block raised, not
    an ExceptionGroup from nurseries that are an implementation detail (tractor's
    ``collapse_eg``).  Groups with several real errors stay groups.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


@asynccontextmanager
async def open_client_instance(config: ClientConfig) -> AsyncIterator[ClientInstance]:
    """An instance and its timers for the duration of the block."""
    router = Router(f"client {config.client_id}")
    credentials = config.credentials
    hook = None if credentials is None else functools.partial(sign_request, credentials=credentials)
    async with (
        collapse_single(),
        open_remoting_client(
            router, name=f"client {config.client_id}", request_hook=hook, ssl_context=config.tls
        ) as remoting,
        trio.open_nursery() as nursery,
    ):
        inst = ClientInstance(config, remoting, nursery)
        router.register(
            RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, inst._on_notify_ids_changed, limit=4
        )
        router.register(
            RequestCode.CHECK_TRANSACTION_STATE, inst._on_check_transaction, inline=True
        )
        router.register(RequestCode.RESET_CONSUMER_CLIENT_OFFSET, inst._on_reset_offset, limit=4)
        for name, actor in (
            ("route_refresher", route_refresher),
            ("heartbeat_sender", heartbeat_sender),
            ("offset_persister", offset_persister),
        ):
            await nursery.start(functools.partial(supervise, name, actor, inst, policy=LOOP_POLICY))
        try:
            yield inst
        finally:
            nursery.cancel_scope.cancel(reason="client instance closed")


__all__ = [
    "CLIENT_INNER_PRODUCER_GROUP",
    "ClientConfig",
    "ClientInstance",
    "ConsumerHooks",
    "open_client_instance",
    "parse_namesrv",
    "unique_instance_name",
]
