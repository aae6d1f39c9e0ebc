"""SEND_MESSAGE / SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE (reference §7.1, §4.8, §7.3).

A send is a decode, checks against the topic table, one synchronous append, a wake-up of the
reput dispatcher and the reply; under SYNC_FLUSH it also awaits the flushed offset through
``OffsetWaiters``.  Delayed messages are parked by ``delay.rewrite_on_put`` (§7.3); their
delivery is the schedule service's.  Store statuses become response codes here and nowhere else.
"""

from __future__ import annotations

import logging
import random
from time import perf_counter

import trio

from actors.broker.context import BrokerContext
from actors.broker.delay import DelayRejected, rewrite_on_put
from actors.broker.durability import wait_durable
from actors.broker.transaction import half_message
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.bodies.common import PermName, TopicFilterType, TopicSysFlag
from protocol.bodies.topic import TopicConfig
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_header
from protocol.errors import RemoteProtocolError
from protocol.headers.send import SendMessageRequestHeader, decode_send_v2
from protocol.message import (
    MessageConst,
    MessageSysFlag,
    batch_delayed,
    decode_batch_raw,
    properties_to_string,
    string_to_properties,
    transaction_type,
)
from storage.message_store import BatchInner, MessageInner, PutResult, PutStatus
from storage.topic_config import (
    AUTO_CREATE_TOPIC_KEY_TOPIC,
    NOT_ALLOWED_SEND_TOPICS,
    RETRY_GROUP_TOPIC_PREFIX,
    dlq_topic,
    topic_problem,
)

log = logging.getLogger(__name__)

# The version from which the broker honours the header's maxReconsumeTimes (V3_4_9).
V3_4_9 = 121
RW = int(PermName.PERM_READ | PermName.PERM_WRITE)
_VALID_TOPICS_MAX = 10_000

# Enum members read once: in Python 3.11 each ``Enum.MEMBER`` lookup on the hot path costs
# as much as a small dict operation.
_PUT_OK = PutStatus.PUT_OK
_SUCCESS = ResponseCode.SUCCESS
_MULTI_TAG = TopicFilterType.MULTI_TAG
_SEND_BATCH = int(RequestCode.SEND_BATCH_MESSAGE)
_V2_CODES = frozenset((int(RequestCode.SEND_MESSAGE_V2), _SEND_BATCH))

_STORED = {
    PutStatus.PUT_OK: ResponseCode.SUCCESS,
    PutStatus.FLUSH_DISK_TIMEOUT: ResponseCode.FLUSH_DISK_TIMEOUT,
    PutStatus.FLUSH_SLAVE_TIMEOUT: ResponseCode.FLUSH_SLAVE_TIMEOUT,
    PutStatus.SLAVE_NOT_AVAILABLE: ResponseCode.SLAVE_NOT_AVAILABLE,
}


def put_failure(status: PutStatus) -> RequestError:
    """The response for a put that stored nothing (§7.1 step 12)."""
    name = status.name
    if name in ("CREATE_MAPPED_FILE_FAILED", "CREATE_MAPEDFILE_FAILED"):
        return RequestError(
            ResponseCode.SYSTEM_ERROR, "create mapped file failed, server is busy or broken."
        )
    if name in ("MESSAGE_ILLEGAL", "PROPERTIES_SIZE_EXCEEDED"):
        return RequestError(
            ResponseCode.MESSAGE_ILLEGAL,
            "the message is illegal, maybe msg body or properties length not matched. msg body length limit 128k, msg properties length limit 32k.",
        )
    if name in ("SERVICE_NOT_AVAILABLE", "DISK_FULL"):
        return RequestError(
            ResponseCode.SERVICE_NOT_AVAILABLE,
            "service not available now. It may be caused by one of the following reasons: "
            "the broker's disk is full, messages are put to the slave, message store has been shut down, etc.",
        )
    if name == "OS_PAGECACHE_BUSY":
        return RequestError(
            ResponseCode.SYSTEM_ERROR,
            "[PC_SYNCHRONIZED]broker busy, start flow control for a while",
        )
    return RequestError(ResponseCode.SYSTEM_ERROR, "UNKNOWN_ERROR")


def decode_send_header(req: RemotingCommand) -> SendMessageRequestHeader:
    if req.code in _V2_CODES:
        return decode_send_v2(req.ext_fields)
    return decode_header(SendMessageRequestHeader, req.ext_fields)


class SendHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        # names that passed topic_problem: the regex is a fixed cost on every send otherwise
        self._valid_topics: set[str] = set()

    def register(self, router: Router) -> None:
        # Under ASYNC_FLUSH a send never awaits (the gate is taken without waiting when free),
        # so the connection's reader runs it itself: no task per message.  Under SYNC_FLUSH
        # each send waits for its group commit and must not hold up the requests behind it.
        # Our own gate does the queueing, so the router only bounds the backlog.
        capacity = self.ctx.config.sendThreadPoolQueueCapacity
        router.register(
            RequestCode.SEND_MESSAGE,
            self.handle,
            limit=100_000,
            max_waiting=capacity,
            inline=not self.ctx.sync_flush,
        )
        for code in (RequestCode.SEND_MESSAGE_V2, RequestCode.SEND_BATCH_MESSAGE):
            router.share(code, RequestCode.SEND_MESSAGE, self.handle)

    async def handle(self, rctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ctx = self.ctx
        ext = {"MSG_REGION": ctx.config.regionId, "TRACE_ON": _bool(ctx.config.traceOn)}
        try:
            try:
                ctx.send_gate.acquire_nowait()
            except trio.WouldBlock:
                await self._enter_gate()
            started = perf_counter()
            try:
                code, fields = await self._send(rctx, req)
            finally:
                ctx.send_gate.release()
                ctx.stats.put_latency.observe((perf_counter() - started) * 1000)
        except RequestError as exc:
            ctx.stats.send_failures += 1
            return req.reply(exc.code, exc.remark, ext)
        ext.update(fields)
        return req.reply(code, None, ext)

    async def _enter_gate(self) -> None:
        """Wait for a place among the sends in progress; refuse one that queued too long (§7.1).

        Only time spent waiting for a place counts: ``handle`` takes a free place without a
        checkpoint, so a busy event loop alone never turns a send into SYSTEM_BUSY.
        """
        gate = self.ctx.send_gate
        entered = trio.current_time()
        await gate.acquire()
        waited_ms = (trio.current_time() - entered) * 1000
        if waited_ms > self.ctx.config.waitTimeMillsInSendQueue:
            gate.release()
            self.ctx.stats.busy_rejections += 1
            raise RequestError(
                ResponseCode.SYSTEM_BUSY,
                "[TIMEOUT_CLEAN_QUEUE]broker busy, start flow control for a while, "
                f"period in queue: {waited_ms:.0f}ms, "
                f"size of queue: {gate.statistics().tasks_waiting}",
            )

    async def _send(
        self, rctx: RequestContext, req: RemotingCommand
    ) -> tuple[ResponseCode, dict[str, str]]:
        ctx = self.ctx
        header = decode_send_header(req)
        batch = header.batch or req.code == _SEND_BATCH
        now_ms = ctx.now_ms()
        if now_ms < ctx.config.startAcceptSendRequestTimeStamp:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                f"broker unable to service, until {ctx.config.startAcceptSendRequestTimeStamp}",
            )
        if not ctx.accepting_writes:
            raise put_failure(PutStatus.SERVICE_NOT_AVAILABLE)
        topic_config = self._topic_for_send(header, now_ms)
        if not ctx.writeable and topic_config.order:
            raise RequestError(
                ResponseCode.NO_PERMISSION,
                f"the broker[{ctx.config.brokerIP1}] sending message is forbidden",
            )
        queue_id = header.queue_id
        if queue_id >= max(topic_config.write_queue_nums, topic_config.read_queue_nums):
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                f"request queueId[{queue_id}] is illegal, {topic_config} Producer: {rctx.peer}",
            )
        if queue_id < 0:
            queue_id = random.randrange(1 << 30) % topic_config.write_queue_nums
        sys_flag = header.sys_flag
        if topic_config.topic_filter_type == _MULTI_TAG:
            sys_flag |= MessageSysFlag.MULTI_TAGS
        cluster = ctx.config.brokerClusterName
        props = string_to_properties(header.properties or "")
        if batch:
            wait_store = props.get(MessageConst.WAIT) != "false"
            # Java appends the batch's properties string as sent, WAIT included (§4.8).
            props[MessageConst.CLUSTER] = cluster
            batch_inner = self._batch(req, header, props, queue_id, sys_flag, rctx.peer)
            result = ctx.store.put_batch(batch_inner)
            return await self._finish(result, header.topic, queue_id, wait_store)
        wait = props.pop(MessageConst.WAIT, None)
        wait_store = wait != "false"
        props[MessageConst.CLUSTER] = cluster
        topic = header.topic
        if topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
            topic, queue_id = self._retry_or_dlq(header, req.version, props, queue_id, now_ms)
        prepared = props.get(MessageConst.TRAN_MSG) == "true"
        if prepared and ctx.config.rejectTransactionMessage:
            raise RequestError(
                ResponseCode.NO_PERMISSION,
                f"the broker[{ctx.config.brokerIP1}] sending transaction message is forbidden",
            )
        msg = MessageInner(
            topic=topic,
            queue_id=queue_id,
            body=req.body,
            properties=props,
            flag=header.flag,
            sys_flag=sys_flag,
            born_timestamp=header.born_timestamp,
            born_host=rctx.peer,
            reconsume_times=header.reconsume_times or 0,
        )
        if prepared:
            # a half message (§7.6); a delay applies to the committed message, not to this
            parked = half_message(ctx, msg, now_ms, wait)
        else:
            parked = self._rewrite_delay(msg, now_ms, wait)
        result = ctx.store.put_message(parked)
        return await self._finish(result, header.topic, queue_id, wait_store)

    def _rewrite_delay(self, msg: MessageInner, now_ms: int, wait: str | None) -> MessageInner:
        ctx = self.ctx
        timer = ctx.delivery.timer_config if ctx.delivery is not None else None
        try:
            return rewrite_on_put(msg, ctx.delay_levels, timer, now_ms, wait=wait)
        except DelayRejected as exc:
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, str(exc)) from None

    def _topic_for_send(self, header: SendMessageRequestHeader, now_ms: int) -> TopicConfig:
        ctx = self.ctx
        topic = header.topic
        if topic not in self._valid_topics:
            problem = topic_problem(topic)
            if problem is not None:
                raise RequestError(ResponseCode.SYSTEM_ERROR, problem)
            if len(self._valid_topics) >= _VALID_TOPICS_MAX:
                self._valid_topics.clear()
            self._valid_topics.add(topic)
        if topic in NOT_ALLOWED_SEND_TOPICS:
            raise RequestError(
                ResponseCode.NO_PERMISSION, f"Sending message to topic[{topic}] is forbidden."
            )
        config = ctx.topics.get(topic)
        if config is not None:
            return config
        sys_flag = 0
        if header.unit_mode:
            retry = topic.startswith(RETRY_GROUP_TOPIC_PREFIX)
            sys_flag = int(TopicSysFlag.FLAG_UNIT_SUB if retry else TopicSysFlag.FLAG_UNIT)
        default_topic = header.default_topic or AUTO_CREATE_TOPIC_KEY_TOPIC
        if default_topic != AUTO_CREATE_TOPIC_KEY_TOPIC or ctx.config.autoCreateTopicEnable:
            config = ctx.topics.create_in_send(
                topic, default_topic, header.default_topic_queue_nums, sys_flag, now_ms
            )
        if config is None and topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
            config, _ = ctx.topics.create_if_absent(topic, 1, RW, sys_flag, now_ms)
        if config is None:
            raise RequestError(
                ResponseCode.TOPIC_NOT_EXIST,
                f"topic[{topic}] not exist, apply first please! "
                "See http://rocketmq.apache.org/docs/faq/ for further details.",
            )
        log.info("created topic %s on send (%d queues)", topic, config.write_queue_nums)
        ctx.topic_table_changed()
        return config

    def _retry_or_dlq(
        self,
        header: SendMessageRequestHeader,
        version: int,
        props: dict[str, str],
        queue_id: int,
        now_ms: int,
    ) -> tuple[str, int]:
        """§7.1 step 8: a resend to %RETRY%<group> past its max goes to %DLQ%<group>."""
        ctx = self.ctx
        group = header.topic[len(RETRY_GROUP_TOPIC_PREFIX) :]
        group_config = ctx.groups.find(
            group, auto_create=ctx.config.autoCreateSubscriptionGroup, now_ms=now_ms
        )
        if group_config is None:
            raise RequestError(
                ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST,
                f"subscription group not exist, {group}",
            )
        max_times = group_config.retry_max_times
        if version >= V3_4_9 and header.max_reconsume_times is not None:
            max_times = header.max_reconsume_times
        if (header.reconsume_times or 0) < max_times:
            return header.topic, queue_id
        dlq = dlq_topic(group)
        config, created = ctx.topics.create_if_absent(dlq, 1, RW, 0, now_ms)
        if created:
            ctx.topic_table_changed()
        if not config.perm & PermName.PERM_WRITE:
            raise RequestError(ResponseCode.NO_PERMISSION, f"the topic[{dlq}] is not writable")
        props.pop(MessageConst.DELAY, None)
        return dlq, 0

    def _batch(
        self,
        req: RemotingCommand,
        header: SendMessageRequestHeader,
        props: dict[str, str],
        queue_id: int,
        sys_flag: int,
        born_host: str,
    ) -> BatchInner:
        ctx = self.ctx
        if header.topic.startswith(RETRY_GROUP_TOPIC_PREFIX):
            raise RequestError(
                ResponseCode.MESSAGE_ILLEGAL, "batch request does not support retry group"
            )
        if len(req.body) > ctx.store_config.maxMessageSize:
            raise RequestError(
                ResponseCode.MESSAGE_ILLEGAL,
                f"the message body size over max value, MAX: {ctx.store_config.maxMessageSize}",
            )
        if transaction_type(header.sys_flag) or MessageConst.DELAY in props:
            raise RequestError(
                ResponseCode.MESSAGE_ILLEGAL, "batch message does not support delay or transaction"
            )
        try:
            entries = decode_batch_raw(req.body, properties_to_string(props).encode())
        except RemoteProtocolError as exc:
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, f"bad batch body: {exc}") from None
        if not entries:
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, "empty batch")
        if batch_delayed(entries):
            raise RequestError(
                ResponseCode.MESSAGE_ILLEGAL, "batch message does not support delay or transaction"
            )
        # the sys flag's transaction bits were refused above
        return BatchInner(
            topic=header.topic,
            queue_id=queue_id,
            entries=entries,
            sys_flag=sys_flag,
            born_timestamp=header.born_timestamp,
            born_host=born_host,
            reconsume_times=header.reconsume_times or 0,
        )

    async def _finish(
        self, result: PutResult, topic: str, queue_id: int, wait_store: bool
    ) -> tuple[ResponseCode, dict[str, str]]:
        ctx = self.ctx
        append = result.append
        if result.status is not _PUT_OK or append is None:
            raise put_failure(result.status)
        # the store rang reput and the flusher itself (durability.announce_appends)
        status = await wait_durable(ctx, append.end_offset) if wait_store else _PUT_OK
        ctx.stats.on_put(topic, append.msg_num, append.wrote_bytes)
        offsets = append.record_offsets
        if offsets:
            # ctx.offset_msg_id's format inline: a batch has one id per message
            prefix = ctx.msg_id_prefix
            msg_id = ",".join([f"{prefix}{offset:016X}" for offset in offsets])
        else:
            msg_id = ctx.offset_msg_id(append.wrote_offset)
        fields = {
            # The store's own ids would parse the host per message; the prefix is cached.
            "msgId": msg_id,
            "queueId": str(queue_id),
            "queueOffset": str(append.queue_offset),
        }
        # identity, not _STORED[status]: hashing an Enum member runs Python code
        return (_SUCCESS if status is _PUT_OK else _STORED[status]), fields


def _bool(value: bool) -> str:
    return "true" if value else "false"
