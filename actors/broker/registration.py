"""Registration with every name server (reference §7.10).

At start and every ``registerNameServerPeriod`` (clamped to 10..60 s) the whole topic table goes
to every configured name server in parallel, and at once after a topic change the changed topics
do; at shutdown an UNREGISTER_BROKER goes to each.  One unreachable name server never delays the others.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Collection

import attrs
import trio

from actors.broker.context import BrokerContext
from actors.remoting.client import RemotingClient
from actors.remoting.errors import RemotingError
from protocol.bodies.common import KVTable
from protocol.bodies.topic import (
    RegisterBrokerBody,
    TopicConfigSerializeWrapper,
    body_crc32,
    encode_register_broker_body,
)
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, decode_header, encode_header
from protocol.errors import ProtocolError
from protocol.headers.namesrv import (
    RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader,
    UnRegisterBrokerRequestHeader,
)

log = logging.getLogger(__name__)


def namesrv_addresses(text: str) -> list[str]:
    return [addr.strip() for addr in text.split(";") if addr.strip()]


def register_period(config_ms: int) -> float:
    return max(10_000, min(config_ms, 60_000)) / 1000


def register_request(ctx: BrokerContext, only: Collection[str] | None = None) -> RemotingCommand:
    """REGISTER_BROKER with the whole topic table, or with the topics in ``only``."""
    config = ctx.config
    wrapper = ctx.topics.wrapper(only)
    if not ctx.writeable or not ctx.readable:
        # A broker without full permission advertises every topic with its own permission.
        table = {
            name: attrs.evolve(topic, perm=config.brokerPermission)
            for name, topic in wrapper.topic_config_table.items()
        }
        wrapper = TopicConfigSerializeWrapper(
            topic_config_table=table, data_version=wrapper.data_version
        )
    body = encode_register_broker_body(
        RegisterBrokerBody(topic_config_serialize_wrapper=wrapper),
        compressed=config.compressedRegister,
    )
    header = RegisterBrokerRequestHeader(
        broker_name=config.brokerName,
        broker_addr=ctx.broker_addr,
        cluster_name=config.brokerClusterName,
        ha_server_addr=f"{config.brokerIP2}:{ctx.store_config.haListenPort}",
        broker_id=config.brokerId,
        compressed=config.compressedRegister,
        body_crc32=body_crc32(body),
    )
    return RemotingCommand.request(RequestCode.REGISTER_BROKER, encode_header(header), body)


def _identity(ctx: BrokerContext) -> tuple[object, ...]:
    """What a registration says of the broker besides its topics."""
    config = ctx.config
    return (
        config.brokerName,
        config.brokerClusterName,
        config.brokerId,
        config.brokerPermission,
        ctx.broker_addr,
        ctx.writeable,
        ctx.readable,
    )


async def register_once(
    ctx: BrokerContext,
    client: RemotingClient,
    addr: str,
    request: RemotingCommand | None = None,
) -> bool:
    timeout = ctx.config.registerBrokerTimeoutMills / 1000
    if request is None:
        request = register_request(ctx)
    try:
        reply = await client.invoke(addr, request, timeout)
    except (RemotingError, ValueError) as exc:  # unreachable or not host:port: retried next round
        log.warning("register to namesrv %s failed: %s", addr, exc)
        return False
    if reply.code != ResponseCode.SUCCESS:
        log.warning("namesrv %s refused registration: %s %s", addr, reply.code, reply.remark)
        return False
    ctx.ops.registered_ms[addr] = ctx.now_ms()
    try:
        answer = decode_header(RegisterBrokerResponseHeader, reply.ext_fields)
        # Only name servers with orderMessageEnable send their ORDER_TOPIC_CONFIG (§7.10).
        order_topics = decode_body(KVTable, reply.body).table if reply.body else None
    except ProtocolError as exc:
        # A garbled answer must not take the broker down; the registration itself went through.
        log.warning("namesrv %s answered registration with a malformed reply: %s", addr, exc)
        return True
    ctx.master_addr = answer.master_addr
    ctx.master_ha_addr = answer.ha_server_addr
    if order_topics is not None and ctx.topics.update_order_topics(set(order_topics), ctx.now_ms()):
        ctx.config_table_changed()
    return True


async def register_all(
    ctx: BrokerContext,
    client: RemotingClient,
    addrs: list[str],
    only: Collection[str] | None = None,
) -> None:
    """One round: the same request (encoded once) to every name server in parallel."""
    request = register_request(ctx, only)
    async with trio.open_nursery() as nursery:
        for addr in addrs:
            nursery.start_soon(register_once, ctx, client, addr, request)


async def unregister_all(ctx: BrokerContext, client: RemotingClient, addrs: list[str]) -> None:
    config = ctx.config
    header = encode_header(
        UnRegisterBrokerRequestHeader(
            broker_name=config.brokerName,
            broker_addr=ctx.broker_addr,
            cluster_name=config.brokerClusterName,
            broker_id=config.brokerId,
        )
    )

    async def one(addr: str) -> None:
        try:
            await client.invoke(
                addr,
                RemotingCommand.request(RequestCode.UNREGISTER_BROKER, header),
                config.registerBrokerTimeoutMills / 1000,
            )
        except (RemotingError, ValueError) as exc:
            log.warning("unregister from namesrv %s failed: %s", addr, exc)

    async with trio.open_nursery() as nursery:
        for addr in addrs:
            nursery.start_soon(one, addr)


async def broker_registrar(
    ctx: BrokerContext,
    client: RemotingClient,
    addrs: list[str],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Register now, then periodically and on every topic change (the app unregisters)."""
    period = register_period(ctx.config.registerNameServerPeriod)
    seen = ctx.topic_changes.value
    ctx.topics.take_unregistered()  # the first round carries the whole table
    registered_as = _identity(ctx)
    await register_all(ctx, client, addrs)
    ctx.registered.advance(seen)
    task_status.started()
    while True:
        changed = False
        with trio.move_on_after(period):
            await ctx.topic_changes.wait_value(functools.partial(operator.ne, seen))
            changed = True
        seen = ctx.topic_changes.value
        fresh = ctx.topics.take_unregistered()
        identity = _identity(ctx)
        # After a topic change, only the changed topics (Java's registerIncrementBrokerData):
        # the whole table is O(topics) to encode here and to decode at every name server, and
        # with topics being created it was most of the broker's time.  A name server adds what
        # a registration lists and drops nothing; the periodic round still carries everything
        # (it also restores a name server that restarted meanwhile).  A round asked for with no
        # topic changed, or after the broker's id or permission changed (a role switch, a
        # brokerPermission update), carries the whole table: the name server must see every
        # topic under the new id or permission.
        incremental = changed and fresh and identity == registered_as
        registered_as = identity
        await register_all(ctx, client, addrs, fresh if incremental else None)
        # tried, whatever the outcome: requests held for it go on (Java answers the send
        # even when registerBrokerAll fails)
        ctx.registered.advance(seen)
