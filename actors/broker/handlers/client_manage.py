"""HEART_BEAT, UNREGISTER_CLIENT, CHECK_CLIENT_CONFIG, GET_CONSUMER_LIST_BY_GROUP (reference §7.8).

The broker's version in every reply (409) is what the Java client records per broker; the
router's replies carry it by default.  Connection close is handled by ``channel_closed``, which
the app hands to the remoting server.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.broker.clients import ClientChannelInfo, build_subscription
from actors.broker.context import BrokerContext
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.bodies.common import PermName, TopicSysFlag
from protocol.bodies.heartbeat import (
    CheckClientRequestBody,
    GetConsumerListByGroupResponseBody,
    HeartbeatData,
)
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, decode_header, encode_body
from protocol.headers.client import (
    GetConsumerListByGroupRequestHeader,
    UnregisterClientRequestHeader,
)
from storage.topic_config import retry_topic

log = logging.getLogger(__name__)

RW = int(PermName.PERM_READ | PermName.PERM_WRITE)


class ClientHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        # These never await: the connection's reader runs them itself, no task per request.
        router.register(RequestCode.HEART_BEAT, self.heartbeat, inline=True)
        router.register(RequestCode.UNREGISTER_CLIENT, self.unregister_client, inline=True)
        router.register(RequestCode.CHECK_CLIENT_CONFIG, self.check_client_config, inline=True)
        router.register(RequestCode.GET_CONSUMER_LIST_BY_GROUP, self.consumer_list, inline=True)

    async def heartbeat(self, rctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ctx = self.ctx
        data = decode_body(HeartbeatData, req.body)
        now_ms = ctx.now_ms()
        info = ClientChannelInfo(
            channel=rctx.channel,
            client_id=data.client_id,
            language=req.language.name,
            version=req.version,
            last_update_ms=now_ms,
        )
        for consumer in data.consumer_data_set:
            group = consumer.group_name
            group_config = ctx.groups.find(
                group, auto_create=ctx.config.autoCreateSubscriptionGroup, now_ms=now_ms
            )
            if group_config is None:
                continue
            sys_flag = int(TopicSysFlag.FLAG_UNIT_SUB) if consumer.unit_mode else 0
            _, created = ctx.topics.create_if_absent(
                retry_topic(group), group_config.retry_queue_nums, RW, sys_flag, now_ms
            )
            if created:
                ctx.topic_table_changed()
            # The expression is re-parsed: C++ clients send a wrong codeSet (README fact 7).
            subscriptions = [
                build_subscription(
                    sub.topic,
                    sub.sub_string,
                    sub_version=sub.sub_version,
                    expression_type=str(sub.expression_type or "TAG"),
                )
                for sub in consumer.subscription_data_set
            ]
            changed = ctx.consumers.register(
                group,
                info,
                consume_type=consumer.consume_type.name,
                message_model=consumer.message_model.name,
                consume_from_where=consumer.consume_from_where.name,
                subscriptions=subscriptions,
            )
            if changed:
                log.info("consumer group %s changed: %s from %s", group, data.client_id, rctx.peer)
                ctx.notify_consumer_ids_changed(group)
        for producer in data.producer_data_set:
            ctx.producers.register(producer.group_name, info)
        return req.reply(ResponseCode.SUCCESS)

    async def unregister_client(
        self, rctx: RequestContext, req: RemotingCommand
    ) -> RemotingCommand:
        ctx = self.ctx
        h = decode_header(UnregisterClientRequestHeader, req.ext_fields)
        if h.producer_group:
            ctx.producers.unregister(h.producer_group, rctx.channel)
        if h.consumer_group and ctx.consumers.unregister(h.consumer_group, rctx.channel):
            ctx.notify_consumer_ids_changed(h.consumer_group)
        return req.reply(ResponseCode.SUCCESS)

    async def check_client_config(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        body = decode_body(CheckClientRequestBody, req.body)
        sub = body.subscription_data
        if sub is not None and str(sub.expression_type).upper() != "TAG":
            if not self.ctx.config.enablePropertyFilter:
                raise RequestError(
                    ResponseCode.SYSTEM_ERROR,
                    "The broker does not support consumer to filter message by SQL92",
                )
            raise RequestError(
                ResponseCode.SUBSCRIPTION_PARSE_FAILED, "SQL92 filtering is not supported"
            )
        return req.reply(ResponseCode.SUCCESS)

    async def consumer_list(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(GetConsumerListByGroupRequestHeader, req.ext_fields)
        entry = self.ctx.consumers.get(h.consumer_group)
        if entry is None or not entry.channels:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"no consumer for this group, {h.consumer_group}"
            )
        body = GetConsumerListByGroupResponseBody(consumer_id_list=tuple(entry.client_ids()))
        return req.reply(ResponseCode.SUCCESS, None, None, encode_body(body))


def channel_closed(ctx: BrokerContext, channel: Any) -> None:
    """A client connection ended: drop its registrations, tell its groups to rebalance."""
    ctx.producers.channel_closed(channel)
    for group in ctx.consumers.channel_closed(channel):
        log.info(
            "consumer group %s lost %s (connection closed)",
            group,
            getattr(channel, "peer", channel),
        )
        ctx.notify_consumer_ids_changed(group)


def expire_silent_channels(ctx: BrokerContext, timeout_ms: int) -> int:
    """Close and drop every client channel silent for more than ``timeout_ms`` (§7.8)."""
    now_ms = ctx.now_ms()
    expired = ctx.consumers.expired_channels(now_ms, timeout_ms)
    expired |= ctx.producers.expired_channels(now_ms, timeout_ms)
    for channel in expired:
        log.info(
            "client channel %s silent for %d ms: closing",
            getattr(channel, "peer", channel),
            timeout_ms,
        )
        channel_closed(ctx, channel)
        close = getattr(channel, "close", None)
        if close is not None:
            close()
    return len(expired)
