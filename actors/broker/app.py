"""The broker's supervision tree (anchors §2.5) and its orderly shutdown.

    broker
    ├─ store layer ........... commit-log flusher, consume-queue flusher, checkpointer, cleaner,
    │                          reput dispatcher (started = caught up with the commit log)
    └─ service layer ......... long polling, client housekeeping, config persister,
                               role scope, ops (stats sampling, /metrics), remoting server,
                               then the name-server registrar

The registrar starts after the server listens, so a name server never routes clients to a
port nobody answers.  Stopping (``BrokerHandle.stop`` or cancellation) runs in this order:
stop accepting, unregister from every name server, answer held pulls, give in-flight requests
``shutdownGraceMillis``, flush, persist the tables, shut the store (which removes the abort
file).
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable
from typing import Any

import attrs
import trio

from actors.broker.acl import AclGuard, acl_file_path, acl_file_watcher
from actors.broker.config import BrokerConfig, resolve_defaults
from actors.broker.context import BrokerContext
from actors.broker.delivery import ArrivalTee, DelayedDelivery
from actors.broker.failover import FailoverIdentity, broker_failover, failover_configs
from actors.broker.handlers.admin import AdminHandlers
from actors.broker.handlers.client_manage import ClientHandlers, channel_closed
from actors.broker.handlers.end_transaction import EndTransactionHandler
from actors.broker.handlers.ha_status import HAStatusHandler
from actors.broker.handlers.lock import LockHandlers
from actors.broker.handlers.offsets import OffsetHandlers
from actors.broker.handlers.ops import OpsHandlers
from actors.broker.handlers.pull import PullHandler
from actors.broker.handlers.query import QueryHandlers
from actors.broker.handlers.send import SendHandler
from actors.broker.handlers.send_back import SendBackHandler
from actors.broker.housekeeping import client_housekeeping
from actors.broker.long_polling import HeldOnly, long_polling
from actors.broker.observe import ops_services
from actors.broker.persist import config_persister
from actors.broker.registration import broker_registrar, namesrv_addresses, unregister_all
from actors.broker.role import role_supervisor
from actors.broker.role_switch import RoleSwitchHandler, send_mode_follows_role
from actors.broker.vip import vip_channel
from actors.remoting.client import RemotingClient, open_remoting_client
from actors.remoting.netconfig import ServerNetConfig
from actors.remoting.router import Channel, RequestContext, Router
from actors.remoting.server import ServerHandle, remoting_server
from actors.remoting.tls import outgoing_context
from actors.store import commit_log_flusher, reput_dispatcher, store_services
from actors.store.reput import InlineDispatch
from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from storage.config import BrokerRole, MessageStoreConfig
from storage.message_store import MessageStore
from storage.timer_wheel import TimerConfig

log = logging.getLogger(__name__)

ARRIVALS_BUFFER = 1024
# how long a request that changed a table waits for the config journal's fsync
CONFIG_DURABLE_TIMEOUT = 10.0  # s
# answers held back for a config change by tasks of their own; past this, the reader waits
MAX_DEFERRED = 10_000


class BrokerRouter(Router):
    """The broker's router: counts requests in flight so shutdown can wait for them, and holds
    back the answer to a request that changed the topic or group tables until the change is
    durable (the config journal) and, for topics, sent to the name servers (as Java registers
    an auto-created topic before answering the send).  One place, so no handler that creates
    a topic or group (send, send-back, heartbeat, pull, admin, ...) can answer early.

    A held-back answer to a request the connection's reader runs itself (a send) is sent
    later by a task of its own (``defer``): waiting on the reader held every request behind
    it on that connection for a journal fsync and a name-server round trip, ~5 ms per new
    topic, so a sender round robin over new topics ran at ~200 msg/s.
    """

    def __init__(self, broker: BrokerContext) -> None:
        super().__init__("broker")
        self.broker = broker
        self.in_flight = 0
        # made only while someone waits: an Event per request cost ~2 us on the send path
        self._idle: trio.Event | None = None
        # starts a task that sends a held-back answer; None (before the broker's services
        # run, and in tests) waits on the caller instead
        self.defer: Callable[..., object] | None = None
        self.deferred = 0

    async def dispatch(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand | None:
        self.in_flight += 1
        answered = True
        try:
            reply = await super().dispatch(ctx, req)
            broker = self.broker
            if (
                broker.topics.version + broker.groups.version > broker.config_durable.current
                or broker.topic_changes.value > broker.registered.current
            ) and reply is not None:
                defer = self.defer
                if defer is not None and self.deferred < MAX_DEFERRED and self.is_inline(req.code):
                    self.deferred += 1
                    answered = False
                    defer(self._answer_later, ctx.channel, req, reply)
                    return None
                reply = await self._after_config_change(req, reply)
            return reply
        finally:
            if answered:
                self._done()

    def _done(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def _answer_later(
        self, channel: Channel, req: RemotingCommand, reply: RemotingCommand
    ) -> None:
        try:
            reply = await self._after_config_change(req, reply)
            if not channel.closed:
                await channel.send(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("held-back answer's connection is gone: %s", exc)
        finally:
            self.deferred -= 1
            self._done()

    async def _after_config_change(
        self, req: RemotingCommand, reply: RemotingCommand
    ) -> RemotingCommand:
        broker = self.broker
        version = broker.config_version
        if version > broker.config_durable.current:
            broker.config_changes.value += 1  # the persister journals it now
            if not await broker.config_durable.wait_for(version, CONFIG_DURABLE_TIMEOUT):
                return req.reply(
                    ResponseCode.SYSTEM_ERROR,
                    "the topic or subscription group change could not be made durable "
                    f"within {CONFIG_DURABLE_TIMEOUT:g} s; see the broker's log",
                )
        changes = broker.topic_changes.value
        if changes > broker.registered.current:
            # a name server that does not answer must not hold sends for longer than one
            # registration attempt; the periodic registration retries
            timeout = broker.config.registerBrokerTimeoutMills / 1000
            await broker.registered.wait_for(changes, timeout)
        return reply

    async def wait_idle(self) -> None:
        # always a checkpoint, idle or not: replies just queued (resumed held pulls) get
        # their writers' turn before the caller closes the connections
        await trio.lowlevel.checkpoint()
        while self.in_flight:
            if self._idle is None:
                self._idle = trio.Event()
            await self._idle.wait()


def build_router(ctx: BrokerContext, pull: PullHandler) -> BrokerRouter:
    router = BrokerRouter(ctx)
    SendHandler(ctx).register(router)
    pull.register(router)
    OffsetHandlers(ctx).register(router)
    ClientHandlers(ctx).register(router)
    LockHandlers(ctx).register(router)
    QueryHandlers(ctx).register(router)
    AdminHandlers(ctx).register(router)
    SendBackHandler(ctx).register(router)
    RoleSwitchHandler(ctx).register(router)
    HAStatusHandler(ctx).register(router)
    EndTransactionHandler(ctx).register(router)
    OpsHandlers(ctx).register(router)
    return router


@attrs.define(eq=False)
class BrokerHandle:
    """What the ``broker`` actor reports once it serves."""

    ctx: BrokerContext
    server: ServerHandle
    _stop: trio.Event
    # Set when the broker has shut down completely (store closed, abort file removed).
    stopped: trio.Event

    @property
    def address(self) -> str:
        return self.ctx.broker_addr

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        """Begin the orderly shutdown; the ``broker`` actor returns when it is done."""
        self._stop.set()


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str) -> int:
    """A port to listen on when config says 0: it must be known before the store opens,
    because every stored message carries the broker's address (offset msgIds).  Its
    neighbours must be free too: the VIP channel takes port - 2, the HA server port + 1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if 2 < port < 65535 and _bindable(host, port - 2) and _bindable(host, port + 1):
            return port
    return port


def prepare_configs(
    config: BrokerConfig, store_config: MessageStoreConfig, host: str
) -> tuple[BrokerConfig, MessageStoreConfig]:
    """Startup-time adjustments Java's BrokerStartup makes (§6.6, §0)."""
    config = resolve_defaults(config)
    if config.listenPort == 0:
        config = attrs.evolve(config, listenPort=pick_free_port(host))
    if store_config.brokerRole is not BrokerRole.SLAVE and config.brokerId != 0:
        log.warning(
            "brokerRole %s forces brokerId 0 (was %d)",
            store_config.brokerRole.name,
            config.brokerId,
        )
        config = attrs.evolve(config, brokerId=0)
    if store_config.brokerRole is BrokerRole.SLAVE and config.brokerId <= 0:
        raise ValueError("a SLAVE broker needs brokerId > 0")
    store_config = attrs.evolve(store_config, haListenPort=config.listenPort + 1)
    return config, store_config


async def broker(
    config: BrokerConfig,
    store_config: MessageStoreConfig,
    *,
    host: str | None = None,
    net: ServerNetConfig | None = None,
    now_ms: Any = None,
    timer_config: TimerConfig | None = None,
    task_status: trio.TaskStatus[BrokerHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a broker until ``BrokerHandle.stop()`` or cancellation; report a BrokerHandle.

    ``host`` (default: ``net.bindAddress``, else all interfaces) is where it listens; ``net``
    also brings TLS and the limits for untrusted peers."""
    if host is None:
        host = net.bindAddress if net is not None else "0.0.0.0"
    config, store_config, ident = failover_configs(config, store_config)
    config, store_config = prepare_configs(config, store_config, host)
    extra = {"now_ms": now_ms} if now_ms is not None else {}
    # one clock for stored timestamps and the delay services, so a simulated clock (tests/sim)
    # moves both: a delayed message's due time is its store timestamp plus the level's delay
    store = MessageStore(store_config, store_host=config.broker_addr, **extra)
    await trio.to_thread.run_sync(store.load)
    stopped = trio.Event()
    try:
        ctx = await BrokerContext.load(config, store_config, store, listen_host=host, **extra)
        ctx.delivery = DelayedDelivery.for_broker(ctx, timer_config)
        await _serve(ctx, host, net, stopped, task_status, ident)
    finally:
        with trio.move_on_after(30, shield=True):
            await trio.to_thread.run_sync(store.shutdown)
        stopped.set()
        log.info("broker %s stopped", config.broker_addr)


async def _serve(
    ctx: BrokerContext,
    host: str,
    net: ServerNetConfig | None,
    stopped: trio.Event,
    task_status: trio.TaskStatus[BrokerHandle],
    ident: FailoverIdentity | None = None,
) -> None:
    store, config = ctx.store, ctx.config
    delivery = ctx.delivery
    if delivery is None:
        raise RuntimeError("the broker's delayed delivery was not set up")
    addrs = namesrv_addresses(config.namesrvAddr)
    arrivals_send, arrivals_recv = trio.open_memory_channel[Any](ARRIVALS_BUFFER)
    async with trio.open_nursery() as store_layer:
        await store_layer.start(store_services, store, ctx.store_config)
        await store_layer.start(
            functools.partial(
                commit_log_flusher, store, ctx.store_config, ctx.flushed, wake=ctx.flush_wake
            )
        )
        arrivals = ArrivalTee(HeldOnly(arrivals_send, ctx.holds), delivery)
        inline = InlineDispatch(store, arrivals, ctx.reput_wake)
        await store_layer.start(
            functools.partial(reput_dispatcher, store, arrivals, wake=ctx.reput_wake, inline=inline)
        )
        pull = PullHandler(ctx)
        router = build_router(ctx, pull)
        router.after_read = inline.run
        acl: AclGuard | None = None
        if config.aclEnable:
            path = acl_file_path(config.rocketmqHome, config.plainAclFile)
            acl = await trio.to_thread.run_sync(AclGuard.load, path)
            router.guard = acl
        stop = trio.Event()
        async with (
            trio.open_nursery() as services,
            open_remoting_client(
                name="broker-outer", ssl_context=outgoing_context(net) if net else None
            ) as client,
        ):
            ctx.spawn = services.start_soon
            router.defer = services.start_soon
            await services.start(
                functools.partial(
                    long_polling,
                    ctx.holds,
                    arrivals_recv,
                    pull.resume,
                    store.max_offset_in_queue,
                    abandoned=pull.abandoned,
                )
            )
            await services.start(client_housekeeping, ctx)
            await services.start(config_persister, ctx)
            await services.start(role_supervisor, ctx)
            await services.start(send_mode_follows_role, ctx, router)
            if ident is not None:
                await services.start(broker_failover, ctx, ident)
            await services.start(ops_services, ctx)
            if acl is not None:
                await services.start(acl_file_watcher, acl)
            server: ServerHandle = await services.start(
                functools.partial(
                    remoting_server,
                    router,
                    host=host,
                    port=config.listenPort,
                    name="broker",
                    idle_timeout=config.serverChannelMaxIdleTimeSeconds,
                    on_close=lambda channel: channel_closed(ctx, channel),
                    net=net,
                )
            )
            if config.listenPort > 2:
                await services.start(
                    functools.partial(
                        vip_channel,
                        router,
                        host=host,
                        listen_port=config.listenPort,
                        idle_timeout=config.serverChannelMaxIdleTimeSeconds,
                        on_close=lambda channel: channel_closed(ctx, channel),
                        net=net,
                    )
                )
            registrar_scope = trio.CancelScope()
            await services.start(_in_scope, registrar_scope, broker_registrar, ctx, client, addrs)
            log.info(
                "broker %s (%s, %s) serving on %s, namesrv %s",
                config.brokerName,
                config.brokerClusterName,
                ctx.role.value.name,
                ctx.broker_addr,
                addrs or "none",
            )
            task_status.started(BrokerHandle(ctx, server, stop, stopped))
            try:
                await stop.wait()
            finally:
                with trio.move_on_after(config.shutdownGraceMillis / 1000 + 15, shield=True):
                    await _drain(ctx, server, router, pull, client, addrs, registrar_scope)
                services.cancel_scope.cancel(reason="broker stopping")
        store_layer.cancel_scope.cancel(reason="broker stopping")


async def _drain(
    ctx: BrokerContext,
    server: ServerHandle,
    router: BrokerRouter,
    pull: PullHandler,
    client: RemotingClient,
    addrs: list[str],
    registrar_scope: trio.CancelScope,
) -> None:
    server.stop_accepting()
    registrar_scope.cancel(reason="broker stopping")
    with trio.move_on_after(ctx.config.registerBrokerTimeoutMills / 1000):
        await unregister_all(ctx, client, addrs)
    # Held pulls would otherwise keep their connections busy until their own timeout.
    async with trio.open_nursery() as answers:
        for held in ctx.holds.drain():
            answers.start_soon(pull.resume, held)
    with trio.move_on_after(ctx.config.shutdownGraceMillis / 1000):
        await router.wait_idle()
    server.shutdown(0)
    ctx.stopping = True


async def _in_scope(
    scope: trio.CancelScope, actor: Any, *args: Any, task_status: trio.TaskStatus[Any]
) -> None:
    with scope:
        await actor(*args, task_status=task_status)
