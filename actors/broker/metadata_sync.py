"""A slave copies its master's metadata every 10 s, first after 3 s (reference §6.6; Java's
SlaveSynchronize): topics and subscription groups when their data version differs, consumer
offsets and delay-level offsets always.

It runs in the slave's role scope and asks the master address learnt from REGISTER_BROKER
replies.  A failed round is logged and retried on the next one: a slave keeps serving what it
has while its master is away.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from actors.remoting.client import RemotingClient, open_remoting_client
from actors.remoting.errors import RemotingError
from protocol.bodies.config import SubscriptionGroupWrapper
from protocol.bodies.topic import TopicConfigSerializeWrapper
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body
from protocol.errors import ProtocolError
from storage.consumer_offsets import ConsumerOffsetTable
from storage.delay_offsets import DelayOffsetTable

log = logging.getLogger(__name__)

FIRST_DELAY = 3.0
PERIOD = 10.0
TIMEOUT = 3.0


async def metadata_sync(
    ctx: Any,  # actors.broker.context.BrokerContext
    *,
    period: float = PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with open_remoting_client(name="slave-sync") as client:
        task_status.started()
        await trio.sleep(FIRST_DELAY)
        while True:
            master = ctx.master_addr
            if master and master != ctx.broker_addr:
                try:
                    await sync_once(ctx, client, master)
                except (RemotingError, ProtocolError, ValueError) as exc:
                    log.warning("metadata sync from master %s failed: %s", master, exc)
            await trio.sleep(period)


async def _fetch(client: RemotingClient, addr: str, code: RequestCode) -> bytes:
    reply = await client.invoke(addr, RemotingCommand.request(code, {}), TIMEOUT)
    if reply.code != ResponseCode.SUCCESS:
        raise ValueError(f"{code.name}: {reply.code} {reply.remark}")
    return reply.body


async def sync_once(ctx: Any, client: RemotingClient, master: str) -> None:
    now = ctx.now_ms()
    topics = decode_body(
        TopicConfigSerializeWrapper, await _fetch(client, master, RequestCode.GET_ALL_TOPIC_CONFIG)
    )
    if topics.data_version != ctx.topics.data_version:
        table = ctx.topics
        wanted = {
            name: cfg if cfg.topic_name else attrs.evolve(cfg, topic_name=name)
            for name, cfg in topics.topic_config_table.items()
        }
        for name in set(table.all()) - set(wanted) - set(table.system):
            table.delete(name, now)
        for cfg in wanted.values():
            table.put(cfg, now)
        table.data_version = topics.data_version
        ctx.topic_table_changed()

    offsets = ConsumerOffsetTable.from_json(
        (await _fetch(client, master, RequestCode.GET_ALL_CONSUMER_OFFSET)).decode()
    )
    for group, topic, queue_id, offset in offsets.entries():
        ctx.offsets.commit(group, topic, queue_id, offset)

    delay = (await _fetch(client, master, RequestCode.GET_ALL_DELAY_OFFSET)).decode()
    if delay:
        for level, offset in DelayOffsetTable.from_json(delay).as_dict().items():
            ctx.delay_offsets.update(level, offset)

    groups = decode_body(
        SubscriptionGroupWrapper,
        await _fetch(client, master, RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG),
    )
    if groups.data_version != ctx.groups.data_version:
        wanted_groups = groups.subscription_group_table
        for name in set(ctx.groups.all()) - set(wanted_groups):
            ctx.groups.delete(name, now)
        for group_cfg in wanted_groups.values():
            ctx.groups.put(group_cfg, now)
        ctx.groups.data_version = groups.data_version
    ctx.config_table_changed()
