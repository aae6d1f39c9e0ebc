"""CONSUMER_SEND_MSG_BACK (reference §7.5): a consumer gives a failed message back for retry.

Clients send the header in two forms: the full one (Java 4.x, C++ 2.x: ``offset``, ``group``,
``delayLevel``, ``originMsgId``, ``originTopic``, ``maxReconsumeTimes``, ``unitMode``) and a
short one without the original message id and the max (older clients).  Both carry ``offset``,
the commit-log offset of the delivered message, and that is how the message is found (clients
README fact 10); the rules (retry.py) and the delay rewrite (delay.py) do the rest.
"""

from __future__ import annotations

import logging
import random

from actors.broker.context import BrokerContext
from actors.broker.delay import rewrite_on_put
from actors.broker.durability import wait_durable
from actors.broker.retry import (
    DLQ_NUMS_PER_GROUP,
    build_send_back,
    max_reconsume_times,
    retry_topic,
    send_back_target,
)
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.bodies.common import PermName, TopicSysFlag
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_header
from protocol.headers.send import ConsumerSendMsgBackRequestHeader
from storage.message_store import PutStatus

log = logging.getLogger(__name__)

RW = int(PermName.PERM_READ | PermName.PERM_WRITE)


class SendBackHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        router.register(RequestCode.CONSUMER_SEND_MSG_BACK, self.handle)

    async def handle(self, rctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ctx = self.ctx
        header = decode_header(ConsumerSendMsgBackRequestHeader, req.ext_fields)
        now_ms = ctx.now_ms()
        group = ctx.groups.find(
            header.group, auto_create=ctx.config.autoCreateSubscriptionGroup, now_ms=now_ms
        )
        if group is None:
            raise RequestError(
                ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST,
                f"subscription group not exist, {header.group}",
            )
        if not ctx.writeable:
            raise RequestError(
                ResponseCode.NO_PERMISSION,
                f"the broker[{ctx.config.brokerIP1}] sending message is forbidden",
            )
        if group.retry_queue_nums <= 0:
            return req.reply(ResponseCode.SUCCESS)  # the group wants no retries: dropped
        unit_flag = int(TopicSysFlag.FLAG_UNIT_SUB) if header.unit_mode else 0
        self._writable_topic(retry_topic(header.group), group.retry_queue_nums, unit_flag, now_ms)
        original = ctx.store.look_message_by_offset(header.offset)
        if original is None:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"look message by offset failed, {header.offset}"
            )
        target = send_back_target(
            header.group,
            reconsume_times=original.reconsume_times,
            requested_delay_level=header.delay_level,
            max_times=max_reconsume_times(
                group.retry_max_times, header.max_reconsume_times, req.version
            ),
            retry_queue_nums=group.retry_queue_nums,
            rand=random.randrange(99_999_999),
        )
        if target.dead_letter:
            self._writable_topic(target.topic, DLQ_NUMS_PER_GROUP, 0, now_ms)
        timer = ctx.delivery.timer_config if ctx.delivery is not None else None
        msg = rewrite_on_put(build_send_back(original, target), ctx.delay_levels, timer, now_ms)
        if not ctx.accepting_writes:  # stopping, or no longer master: what the store says then
            raise RequestError(ResponseCode.SYSTEM_ERROR, PutStatus.SERVICE_NOT_AVAILABLE.name)
        result = ctx.store.put_message(msg)
        if result.status is not PutStatus.PUT_OK or result.append is None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, result.status.name)
        ctx.stats.on_put(msg.topic, 1, result.append.wrote_bytes)
        # The consumer drops its copy on SUCCESS: the retry must be as durable as a send.
        durable = await wait_durable(ctx, result.append.end_offset)
        if durable is not PutStatus.PUT_OK:
            raise RequestError(ResponseCode.SYSTEM_ERROR, durable.name)
        if target.dead_letter:
            log.info(
                "message %s of group %s reconsumed %d times: dead letter",
                original.msg_id,
                header.group,
                original.reconsume_times,
            )
        return req.reply(ResponseCode.SUCCESS)

    def _writable_topic(self, topic: str, queues: int, sys_flag: int, now_ms: int) -> None:
        config, created = self.ctx.topics.create_if_absent(topic, queues, RW, sys_flag, now_ms)
        if created:
            self.ctx.topic_table_changed()
        if not config.perm & PermName.PERM_WRITE:
            raise RequestError(
                ResponseCode.NO_PERMISSION, f"the topic[{topic}] sending message is forbidden"
            )
