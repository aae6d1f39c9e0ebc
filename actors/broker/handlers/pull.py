"""PULL_MESSAGE (reference §7.4, §6.7): checks, one store read, the status mapping, long polling.

``process`` is synchronous: a store read never awaits.  A pull that finds nothing and may be
suspended is parked in the hold table (``None`` = no reply now); the long-polling actor later
calls ``resume``, which runs ``process`` again without the right to park.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

import trio

from actors.broker.clients import BROADCASTING, Subscription, build_subscription
from actors.broker.context import BrokerContext
from actors.broker.long_polling import HeldPull
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.bodies.common import PermName
from protocol.bodies.config import SubscriptionGroupConfig
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_header
from protocol.headers.pull import PullMessageRequestHeader
from storage.message_store import GetStatus

log = logging.getLogger(__name__)

# Pulls one connection may have held at once (one per queue it consumes is the normal case).
MAX_HELD_PER_CONNECTION = 4096

_CODES = {
    GetStatus.FOUND: ResponseCode.SUCCESS,
    GetStatus.MESSAGE_WAS_REMOVING: ResponseCode.PULL_RETRY_IMMEDIATELY,
    GetStatus.NO_MATCHED_MESSAGE: ResponseCode.PULL_RETRY_IMMEDIATELY,
    GetStatus.OFFSET_FOUND_NULL: ResponseCode.PULL_NOT_FOUND,
    GetStatus.OFFSET_OVERFLOW_BADLY: ResponseCode.PULL_OFFSET_MOVED,
    GetStatus.OFFSET_OVERFLOW_ONE: ResponseCode.PULL_NOT_FOUND,
    GetStatus.OFFSET_TOO_SMALL: ResponseCode.PULL_OFFSET_MOVED,
}
_EMPTY_QUEUE = (GetStatus.NO_MATCHED_LOGIC_QUEUE, GetStatus.NO_MESSAGE_IN_QUEUE)


def response_code(status: GetStatus, requested_offset: int) -> ResponseCode:
    if status in _EMPTY_QUEUE:
        return (
            ResponseCode.PULL_OFFSET_MOVED if requested_offset != 0 else ResponseCode.PULL_NOT_FOUND
        )
    return _CODES[status]


class PullHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        # Held pulls per connection, and the turn of its resumed pulls (see resume).
        self._held: dict[Any, int] = {}
        self._turns: dict[Any, trio.Lock] = {}

    def register(self, router: Router) -> None:
        # A pull never awaits (a store read, or parking in the hold table): the connection's
        # reader runs it itself, no task per request.
        router.register(RequestCode.PULL_MESSAGE, self.handle, inline=True)

    async def handle(self, rctx: RequestContext, req: RemotingCommand) -> RemotingCommand | None:
        started = perf_counter()
        reply = self.process(rctx.channel, req, allow_suspend=True)
        if reply is not None:  # a held pull's wait is the consumer's choice, not latency
            self.ctx.stats.pull_latency.observe((perf_counter() - started) * 1000)
        return reply

    def abandoned(self, held: HeldPull) -> bool:
        """True when the held pull's connection is closed: nobody to answer."""
        return bool(held.payload[0].closed)

    async def resume(self, held: HeldPull) -> None:
        """Answer a released pull on its own connection (dropped there if it closed).

        One arrival may release many pulls of one connection, each with a large reply.
        They take turns per connection: a reply is built only when the previous one was
        queued, and queuing waits for the connection's write limit, so a consumer that
        does not read holds at most one resumed reply beyond that limit.
        """
        channel, req = held.payload
        count = self._held.get(channel, 0) - 1
        if count > 0:
            self._held[channel] = count
        else:
            self._held.pop(channel, None)
        if channel.closed:
            return
        turn = self._turns.get(channel)
        if turn is None:
            turn = self._turns[channel] = trio.Lock()
        try:
            async with turn:
                if channel.closed:
                    return
                try:
                    reply = self.process(channel, req, allow_suspend=False)
                except RequestError as exc:
                    reply = req.reply(exc.code, exc.remark)
                except Exception as exc:
                    log.exception("resumed pull failed")
                    reply = req.reply(ResponseCode.SYSTEM_ERROR, f"{type(exc).__name__}: {exc}")
                if reply is None:
                    return
                try:
                    await channel.send(reply)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    log.debug("held pull's connection is gone: %s", exc)
        finally:
            if not turn.locked() and turn.statistics().tasks_waiting == 0:
                self._turns.pop(channel, None)

    def process(
        self, channel: Any, req: RemotingCommand, *, allow_suspend: bool
    ) -> RemotingCommand | None:
        ctx = self.ctx
        header = decode_header(PullMessageRequestHeader, req.ext_fields)
        group, topic, queue_id = header.consumer_group, header.topic, header.queue_id
        group_config = self._check(channel, header)
        subscription = self._subscription(header, group_config.consume_broadcast_enable)
        if subscription.expression_type != "TAG" and not ctx.config.enablePropertyFilter:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                "The broker does not support consumer to filter message by SQL92",
            )
        result = ctx.store.get_message(
            group,
            topic,
            queue_id,
            header.queue_offset,
            header.max_msg_nums,
            tag_codes=None if subscription.accepts_all else set(subscription.codes),
        )
        code = response_code(result.status, header.queue_offset)
        fields = {
            "suggestWhichBrokerId": str(self._suggest(result, group_config)),
            "nextBeginOffset": str(result.next_begin_offset),
            "minOffset": str(result.min_offset),
            "maxOffset": str(result.max_offset),
        }
        body = b""
        if ctx.is_slave and not ctx.config.slaveReadEnable:
            code, fields["suggestWhichBrokerId"] = ResponseCode.PULL_RETRY_IMMEDIATELY, "0"
            # none of it is returned: the consumer must pull the same offset again (from the
            # master).  Java answers result.nextBeginOffset here, and a client moves its
            # offset past what it never got - seen with a pull held across a demotion
            # (tests/sim role_switch_under_load).
            fields["nextBeginOffset"] = str(header.queue_offset)
        elif code == ResponseCode.SUCCESS:
            body = b"".join(result.buffers)
            ctx.stats.on_get(group, topic, result.message_count, len(body))
        reply: RemotingCommand | None = req.reply(code, result.status.name, fields, body)
        if code == ResponseCode.PULL_NOT_FOUND and allow_suspend and header.has_suspend:
            if self._hold(channel, req, header, subscription):
                reply = None
            else:
                reply = req.reply(
                    ResponseCode.SYSTEM_BUSY,
                    f"too many held pulls on this connection (at most {MAX_HELD_PER_CONNECTION})",
                )
        if allow_suspend and header.has_commit_offset and not ctx.is_slave:
            ctx.offsets.commit(group, topic, queue_id, header.commit_offset)
        return reply

    def _check(self, channel: Any, header: PullMessageRequestHeader) -> SubscriptionGroupConfig:
        """§7.4's checks in Java's order; the group's settings when the pull may proceed."""
        ctx = self.ctx
        group, topic, queue_id = header.consumer_group, header.topic, header.queue_id
        if not ctx.readable:
            raise RequestError(
                ResponseCode.NO_PERMISSION,
                f"the broker[{ctx.config.brokerIP1}] pulling message is forbidden",
            )
        group_config = ctx.groups.find(
            group, auto_create=ctx.config.autoCreateSubscriptionGroup, now_ms=ctx.now_ms()
        )
        if group_config is None:
            raise RequestError(
                ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST,
                f"subscription group [{group}] does not exist, "
                "See http://rocketmq.apache.org/docs/faq/ for further details.",
            )
        if not group_config.consume_enable:
            raise RequestError(
                ResponseCode.NO_PERMISSION, f"subscription group no permission, {group}"
            )
        topic_config = ctx.topics.get(topic)
        if topic_config is None:
            raise RequestError(
                ResponseCode.TOPIC_NOT_EXIST,
                f"topic[{topic}] not exist, apply first please! "
                "See http://rocketmq.apache.org/docs/faq/ for further details.",
            )
        if not topic_config.perm & PermName.PERM_READ:
            raise RequestError(
                ResponseCode.NO_PERMISSION, f"the topic[{topic}] pulling message is forbidden"
            )
        if queue_id < 0 or queue_id >= topic_config.read_queue_nums:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                f"queueId[{queue_id}] is illegal, topic:[{topic}] "
                f"topicConfig.readQueueNums:[{topic_config.read_queue_nums}] consumer:[{channel.peer}]",
            )
        return group_config

    def _subscription(self, header: PullMessageRequestHeader, broadcast_ok: bool) -> Subscription:
        if header.has_subscription:
            return build_subscription(
                header.topic,
                header.subscription,
                sub_version=header.sub_version,
                expression_type=header.expression_type or "TAG",
            )
        entry = self.ctx.consumers.get(header.consumer_group)
        if entry is None:
            raise RequestError(
                ResponseCode.SUBSCRIPTION_NOT_EXIST,
                f"the consumer's group info not exist, group: {header.consumer_group}",
            )
        if not broadcast_ok and entry.message_model == BROADCASTING:
            raise RequestError(
                ResponseCode.NO_PERMISSION,
                f"the consumer group[{header.consumer_group}] can not consume by broadcast way",
            )
        subscription = entry.subscriptions.get(header.topic)
        if subscription is None:
            raise RequestError(
                ResponseCode.SUBSCRIPTION_NOT_EXIST,
                f"the consumer's subscription not exist, group: {header.consumer_group}",
            )
        if subscription.sub_version < header.sub_version:
            raise RequestError(
                ResponseCode.SUBSCRIPTION_NOT_LATEST,
                f"the consumer's subscription not latest, group: {header.consumer_group}",
            )
        return subscription

    def _suggest(self, result: Any, group_config: Any) -> int:
        if not self.ctx.config.slaveReadEnable:
            return 0
        if result.suggest_pulling_from_slave:
            return int(group_config.which_broker_when_consume_slowly)
        return int(group_config.broker_id)

    def _hold(
        self,
        channel: Any,
        req: RemotingCommand,
        header: PullMessageRequestHeader,
        subscription: Subscription,
    ) -> bool:
        """Hold the pull; False when its connection holds the most it may."""
        held = self._held.get(channel, 0)
        if held >= MAX_HELD_PER_CONNECTION:
            return False
        self._held[channel] = held + 1
        config = self.ctx.config
        hold_ms = (
            header.suspend_timeout_millis
            if config.longPollingEnable
            else config.shortPollingTimeMills
        )
        self.ctx.holds.hold(
            HeldPull(
                topic=header.topic,
                queue_id=header.queue_id,
                offset=header.queue_offset,
                subscription=subscription,
                deadline=trio.current_time() + max(hold_ms, 0) / 1000,
                payload=(channel, req),
            )
        )
        return True
