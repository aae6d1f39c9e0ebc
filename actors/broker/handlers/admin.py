"""Admin basics (reference §2.1 admin rows, §7.2): topics, groups, stats, connections, config.

What mqadmin and the dashboard ask a broker for; the slave-sync reads (GET_ALL_*) come along
because they are the same tables.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import trio

from actors.broker.clients import ClientChannelInfo
from actors.broker.config import effective_properties
from actors.broker.context import BrokerContext
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.bodies.admin import (
    Connection,
    ConsumerConnection,
    ConsumeStats,
    OffsetWrapper,
    ProducerConnection,
    TopicOffset,
    TopicStatsTable,
)
from protocol.bodies.common import (
    ConsumeFromWhere,
    ConsumeType,
    GroupList,
    KVTable,
    MessageModel,
    MessageQueue,
    TopicList,
)
from protocol.bodies.config import SubscriptionGroupConfig
from protocol.bodies.heartbeat import SubscriptionData
from protocol.bodies.topic import TopicConfig
from protocol.codes import CURRENT_VERSION, LanguageCode, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, decode_header, encode_body
from protocol.headers.admin import (
    CreateTopicRequestHeader,
    DeleteSubscriptionGroupRequestHeader,
    DeleteTopicRequestHeader,
    GetConsumerConnectionListRequestHeader,
    GetConsumeStatsRequestHeader,
    GetProducerConnectionListRequestHeader,
    GetTopicStatsInfoRequestHeader,
    QueryTopicConsumeByWhoRequestHeader,
)
from protocol.properties import format_properties
from storage.topic_config import topic_problem

log = logging.getLogger(__name__)

VERSION_DESC = "V4_9_8"


def _ok(
    req: RemotingCommand, body: bytes = b"", fields: dict[str, str] | None = None
) -> RemotingCommand:
    return req.reply(ResponseCode.SUCCESS, None, fields, body)


class AdminHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        table = {
            RequestCode.UPDATE_AND_CREATE_TOPIC: self.create_topic,
            RequestCode.DELETE_TOPIC_IN_BROKER: self.delete_topic,
            RequestCode.GET_ALL_TOPIC_CONFIG: self.all_topic_config,
            RequestCode.GET_BROKER_RUNTIME_INFO: self.runtime_info,
            RequestCode.GET_TOPIC_STATS_INFO: self.topic_stats,
            RequestCode.GET_CONSUME_STATS: self.consume_stats,
            RequestCode.GET_CONSUMER_CONNECTION_LIST: self.consumer_connections,
            RequestCode.GET_PRODUCER_CONNECTION_LIST: self.producer_connections,
            RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: self.create_group,
            RequestCode.DELETE_SUBSCRIPTIONGROUP: self.delete_group,
            RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG: self.all_groups,
            RequestCode.GET_ALL_CONSUMER_OFFSET: self.all_offsets,
            RequestCode.GET_ALL_DELAY_OFFSET: self.all_delay_offsets,
            RequestCode.GET_BROKER_CONFIG: self.broker_config,
            RequestCode.QUERY_TOPIC_CONSUME_BY_WHO: self.consumed_by,
            RequestCode.GET_SYSTEM_TOPIC_LIST_FROM_BROKER: self.system_topics,
        }
        for code, handler in table.items():
            router.register(code, handler, limit=4)

    # ------------------------------------------------------------ topics

    async def create_topic(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ctx = self.ctx
        h = decode_header(CreateTopicRequestHeader, req.ext_fields)
        if ctx.is_slave:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR,
                "Can't modify topic or subscription group from slave broker",
            )
        problem = topic_problem(h.topic)
        if problem is not None:
            raise RequestError(ResponseCode.SYSTEM_ERROR, problem)
        if h.topic in ctx.topics.system or h.topic == ctx.config.brokerClusterName:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"The topic[{h.topic}] is conflict with system topic."
            )
        config = TopicConfig(
            topic_name=h.topic,
            read_queue_nums=h.read_queue_nums,
            write_queue_nums=h.write_queue_nums,
            perm=h.perm,
            topic_filter_type=h.topic_filter_type,
            topic_sys_flag=h.topic_sys_flag or 0,
            order=h.order,
        )
        ctx.topics.put(config, ctx.now_ms())
        ctx.topic_table_changed()
        # Apache's processor leaves its placeholder remark on this success; we answer the same.
        return req.reply(ResponseCode.SUCCESS, "not set any response code")

    async def delete_topic(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ctx = self.ctx
        h = decode_header(DeleteTopicRequestHeader, req.ext_fields)
        if ctx.topics.delete(h.topic, ctx.now_ms()):
            ctx.offsets.remove_topic(h.topic)
            ctx.store.delete_topics({h.topic})
            ctx.topic_table_changed()
        return _ok(req)

    async def all_topic_config(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return _ok(req, self.ctx.topics.to_json(pretty=False).encode())

    # ------------------------------------------------------------ stats

    async def runtime_info(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        # statvfs asks the file system, which may be slow (a network mount): not in the loop.
        disk = await trio.to_thread.run_sync(_disk_space, self.ctx.store_config.commit_log_dir)
        return _ok(req, encode_body(KVTable(table=runtime_table(self.ctx, disk))))

    async def topic_stats(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ctx = self.ctx
        h = decode_header(GetTopicStatsInfoRequestHeader, req.ext_fields)
        config = ctx.topics.get(h.topic)
        if config is None:
            raise RequestError(ResponseCode.TOPIC_NOT_EXIST, f"topic[{h.topic}] not exist")
        table = {}
        for queue_id in range(config.write_queue_nums):
            max_offset = ctx.store.max_offset_in_queue(h.topic, queue_id)
            last = (
                ctx.store.message_store_timestamp(h.topic, queue_id, max_offset - 1)
                if max_offset > 0
                else 0
            )
            table[self._queue(h.topic, queue_id)] = TopicOffset(
                min_offset=ctx.store.min_offset_in_queue(h.topic, queue_id),
                max_offset=max_offset,
                last_update_timestamp=max(last, 0),
            )
        return _ok(req, encode_body(TopicStatsTable(offset_table=table)))

    async def consume_stats(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        ctx = self.ctx
        h = decode_header(GetConsumeStatsRequestHeader, req.ext_fields)
        topics = [h.topic] if h.topic else sorted(ctx.offsets.topics_of_group(h.consumer_group))
        table = {}
        tps = 0.0
        for topic in topics:
            config = ctx.topics.get(topic)
            if config is None:
                continue
            tps += ctx.stats.consume_tps(h.consumer_group, topic, ctx.now_ms())
            for queue_id in range(config.write_queue_nums):
                consumer = max(ctx.offsets.query(h.consumer_group, topic, queue_id), 0)
                last = (
                    ctx.store.message_store_timestamp(topic, queue_id, consumer - 1)
                    if consumer > 0
                    else 0
                )
                table[self._queue(topic, queue_id)] = OffsetWrapper(
                    broker_offset=ctx.store.max_offset_in_queue(topic, queue_id),
                    consumer_offset=consumer,
                    last_timestamp=max(last, 0),
                )
        return _ok(req, encode_body(ConsumeStats(offset_table=table, consume_tps=tps)))

    # ------------------------------------------------------------ connections

    async def consumer_connections(
        self, _: RequestContext, req: RemotingCommand
    ) -> RemotingCommand:
        h = decode_header(GetConsumerConnectionListRequestHeader, req.ext_fields)
        entry = self.ctx.consumers.get(h.consumer_group)
        if entry is None:
            raise RequestError(
                ResponseCode.CONSUMER_NOT_ONLINE,
                f"the consumer group[{h.consumer_group}] not online",
            )
        body = ConsumerConnection(
            connection_set=tuple(_connection(info) for info in entry.channels.values()),
            subscription_table={
                topic: SubscriptionData(
                    topic=topic,
                    sub_string=sub.sub_string,
                    tags_set=tuple(sorted(sub.tags)),
                    code_set=tuple(sorted(sub.codes)),
                    sub_version=sub.sub_version,
                    expression_type=sub.expression_type,
                )
                for topic, sub in entry.subscriptions.items()
            },
            consume_type=ConsumeType[entry.consume_type],
            message_model=MessageModel[entry.message_model],
            consume_from_where=ConsumeFromWhere[entry.consume_from_where],
        )
        return _ok(req, encode_body(body))

    async def producer_connections(
        self, _: RequestContext, req: RemotingCommand
    ) -> RemotingCommand:
        h = decode_header(GetProducerConnectionListRequestHeader, req.ext_fields)
        members = self.ctx.producers.channels(h.producer_group)
        if not members:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"the producer group[{h.producer_group}] not exist"
            )
        body = ProducerConnection(connection_set=tuple(_connection(info) for info in members))
        return _ok(req, encode_body(body))

    # ------------------------------------------------------------ groups and offsets

    async def create_group(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        config = decode_body(SubscriptionGroupConfig, req.body)
        self.ctx.groups.put(config, self.ctx.now_ms())
        self.ctx.config_table_changed()
        return _ok(req)

    async def delete_group(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(DeleteSubscriptionGroupRequestHeader, req.ext_fields)
        self.ctx.groups.delete(h.group_name, self.ctx.now_ms())
        if h.remove_offset:
            self.ctx.offsets.remove_group(h.group_name)
        self.ctx.config_table_changed()
        return _ok(req)

    async def all_groups(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return _ok(req, self.ctx.groups.to_json(pretty=False).encode())

    async def all_offsets(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return _ok(req, self.ctx.offsets.to_json(pretty=False).encode())

    async def all_delay_offsets(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return _ok(req, self.ctx.delay_offsets.to_json(pretty=False).encode())

    async def broker_config(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        text = format_properties(effective_properties(self.ctx.config, self.ctx.store_config))
        version = encode_body(self.ctx.topics.data_version).decode()
        return _ok(req, text.encode(), {"version": version})

    async def consumed_by(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(QueryTopicConsumeByWhoRequestHeader, req.ext_fields)
        groups = set(self.ctx.consumers.groups_of_topic(h.topic))
        groups |= self.ctx.offsets.groups_of_topic(h.topic)
        return _ok(req, encode_body(GroupList(group_list=tuple(sorted(groups)))))

    async def system_topics(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        topics = tuple(sorted(self.ctx.topics.system))
        return _ok(req, encode_body(TopicList(topic_list=topics)))

    def _queue(self, topic: str, queue_id: int) -> MessageQueue:
        return MessageQueue(topic=topic, broker_name=self.ctx.config.brokerName, queue_id=queue_id)


def _connection(info: ClientChannelInfo) -> Connection:
    return Connection(
        client_id=info.client_id,
        client_addr=getattr(info.channel, "peer", ""),
        language=LanguageCode[info.language],
        version=info.version,
    )


def runtime_table(ctx: BrokerContext, disk: tuple[int, int]) -> dict[str, str]:
    """GET_BROKER_RUNTIME_INFO's table with the keys Apache 4.9 reports (dashboards read them).

    ``disk`` is (total, free) bytes of the commit log's file system.

    Rates are over the last minute, repeated in the three slots Java fills with its 10 s / 1 min /
    10 min windows; latencies come from the send and pull histograms (``putLatency99`` is the
    upper edge of the bucket holding the 99th percentile); yesterday's totals are zero.
    """
    now_ms = ctx.now_ms()
    store, stats, config = ctx.store, ctx.stats, ctx.config
    commit_dir = ctx.store_config.commit_log_dir
    total, free = disk
    ratio = f"{(total - free) / total:.2f}" if total else "0.00"
    put_tps = stats.put_nums.per_second(now_ms)
    get_tps = stats.get_nums.per_second(now_ms)
    puts = stats.put_nums.total
    waiting = str(ctx.send_gate.statistics().tasks_waiting)
    return {
        "brokerVersion": str(CURRENT_VERSION),
        "brokerVersionDesc": VERSION_DESC,
        "bootTimestamp": str(ctx.started_ms),
        "runtime": _runtime(now_ms - ctx.started_ms),
        "msgPutTotalTodayNow": str(puts),
        "msgGetTotalTodayNow": str(stats.get_nums.total),
        "msgPutTotalTodayMorning": "0",
        "msgGetTotalTodayMorning": "0",
        "msgPutTotalYesterdayMorning": "0",
        "msgGetTotalYesterdayMorning": "0",
        "putTps": _three(put_tps),
        "getTransferedTps": _three(get_tps),
        "getFoundTps": _three(get_tps),
        "getMissTps": _three(0.0),
        "getTotalTps": _three(get_tps),
        "putMessageTimesTotal": str(puts),
        "putMessageSizeTotal": str(stats.put_bytes.total),
        "putMessageAverageSize": str(stats.put_bytes.total / puts if puts else 0.0),
        "putMessageFailedTimes": str(stats.send_failures),
        "putMessageEntireTimeMax": str(int(stats.put_latency.max_ms)),
        "getMessageEntireTimeMax": str(int(stats.pull_latency.max_ms)),
        "putMessageDistributeTime": stats.put_latency.java_distribution(),
        "putLatency99": f"{stats.put_latency.quantile(0.99):.2f}",
        "putLatency999": f"{stats.put_latency.quantile(0.999):.2f}",
        "pageCacheLockTimeMills": "0",
        "remainTransientStoreBufferNumbs": str(2**31 - 1),
        "remainHowManyDataToFlush": _human_bytes(
            max(store.max_phy_offset - store.flushed_offset, 0)
        ),
        "dispatchMaxBuffer": "0",
        "dispatchBehindBytes": str(store.dispatch_behind_bytes()),
        "commitLogMaxOffset": str(store.max_phy_offset),
        "commitLogMinOffset": str(store.min_phy_offset),
        "earliestMessageTimeStamp": str(_earliest_message_time(store)),
        "commitLogDirCapacity": f"Total : {_human_bytes(total)}, Free : {_human_bytes(free)}.",
        "commitLogDiskRatio": ratio,
        f"commitLogDiskRatio_{commit_dir}": ratio,
        "consumeQueueDiskRatio": ratio,
        "startAcceptSendRequestTimeStamp": str(config.startAcceptSendRequestTimeStamp),
        "sendThreadPoolQueueSize": waiting,
        "sendThreadPoolQueueCapacity": str(config.sendThreadPoolQueueCapacity),
        "sendThreadPoolQueueHeadWaitTimeMills": "0",
        "pullThreadPoolQueueSize": "0",
        "pullThreadPoolQueueCapacity": str(config.pullThreadPoolQueueCapacity),
        "pullThreadPoolQueueHeadWaitTimeMills": "0",
        "queryThreadPoolQueueSize": "0",
        "queryThreadPoolQueueCapacity": "20000",
        "queryThreadPoolQueueHeadWaitTimeMills": "0",
        "EndTransactionQueueSize": "0",
        "EndTransactionThreadPoolQueueCapacity": "100000",
    }


def _earliest_message_time(store: Any) -> int:
    if store.max_phy_offset <= store.min_phy_offset:
        return -1
    first = store.look_message_by_offset(store.min_phy_offset)
    return int(first.store_timestamp) if first is not None else -1


def _three(rate: float) -> str:
    return f"{rate:.2f} {rate:.2f} {rate:.2f}"


def _disk_space(path: str) -> tuple[int, int]:
    try:
        st = os.statvfs(path if os.path.exists(path) else os.path.dirname(path) or ".")
    except OSError:
        return 0, 0
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def _human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _runtime(ms: int) -> str:
    seconds = ms // 1000
    return f"[ {seconds // 86400} days, {seconds // 3600 % 24} hours, {seconds // 60 % 60} minutes, {seconds % 60} seconds ]"
