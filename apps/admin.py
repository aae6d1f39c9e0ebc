"""rmqadmin: RocketMQ's mqadmin for operators without a JVM.

    rmqadmin clusterList -n 127.0.0.1:9876
    rmqadmin consumerProgress -n 127.0.0.1:9876 -g my_group
    rmqadmin topicStatus -t TopicTest --json        # NAMESRV_ADDR is honoured as by mqadmin

Subcommands, flags (``-n -t -g -c -b -k -v -i -s``) and output columns are mqadmin 4.9.8's, so
runbooks and scripts that parse its tables keep working (tests/compat/test_rmqadmin.py runs
both on one cluster and compares rows and numbers).  ``--json`` prints what the command found
as one JSON document instead.  Each command is a coroutine that returns ``(text, data)``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio
import yaml

from actors.client import api
from actors.client.errors import BrokerError, ClientError
from actors.client.instance import collapse_single
from actors.remoting.client import RemotingClient, open_remoting_client
from apps import _security
from protocol.acl import SessionCredentials, sign_request
from protocol.bodies.admin import (
    BrokerStatsData,
    ConsumerConnection,
    ConsumeStats,
    HARuntimeInfo,
    OffsetWrapper,
    ProducerConnection,
    ResetOffsetBody,
    TopicStatsTable,
)
from protocol.bodies.common import GroupList, KVTable, MessageQueue, TopicList
from protocol.bodies.config import SubscriptionGroupConfig
from protocol.bodies.route import ClusterInfo, TopicRouteData
from protocol.bodies.topic import TopicConfig
from protocol.codes import GET_BROKER_HA_STATUS, SWITCH_BROKER_ROLE, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, encode_body, unstructure_body
from protocol.errors import ProtocolError
from protocol.headers.admin import (
    CreateTopicRequestHeader,
    DeleteSubscriptionGroupRequestHeader,
    DeleteTopicRequestHeader,
    GetConsumerConnectionListRequestHeader,
    GetConsumeStatsRequestHeader,
    GetProducerConnectionListRequestHeader,
    GetTopicStatsInfoRequestHeader,
    QueryTopicConsumeByWhoRequestHeader,
    ViewBrokerStatsDataRequestHeader,
)
from protocol.headers.client import ResetOffsetRequestHeader
from protocol.headers.namesrv import (
    AddWritePermOfBrokerRequestHeader,
    DeleteTopicFromNamesrvRequestHeader,
    GetRouteInfoRequestHeader,
    WipeWritePermOfBrokerRequestHeader,
)
from protocol.headers.offset import SearchOffsetRequestHeader, UpdateConsumerOffsetRequestHeader
from protocol.headers.query import QueryMessageRequestHeader, ViewMessageRequestHeader
from protocol.message import MessageExt, decode_records
from protocol.msgid import decode_offset_msg_id
from protocol.properties import parse_properties

TIMEOUT = 5.0
RETRY_PREFIX = "%RETRY%"
DLQ_PREFIX = "%DLQ%"
PERMS = {0: "---", 2: "-W-", 4: "R--", 6: "RW-", 1: "--X", 3: "-WX", 5: "R-X", 7: "RWX"}


class AdminError(Exception):
    """A failed command: one line on stderr, exit status 1."""


@attrs.define
class Admin:
    """The name servers and one remoting client for the command's duration."""

    client: RemotingClient
    namesrv: list[str]

    async def call(
        self, addr: str, code: int, header: Any = None, body: bytes = b""
    ) -> RemotingCommand:
        if isinstance(header, dict):  # a request of ours, without a typed header
            request = RemotingCommand.request(code, header, body, language=api.LANGUAGE)
        else:
            request = api.request(code, header, body)
        try:
            reply = await api.invoke(self.client, addr, request, TIMEOUT)
        except ClientError as exc:
            raise AdminError(f"{addr}: {exc}") from None
        if reply.code != ResponseCode.SUCCESS:
            raise AdminError(f"CODE: {reply.code}  DESC: {reply.remark} ({addr})")
        return reply

    async def ns(self, code: int, header: Any = None) -> RemotingCommand:
        """Ask the name servers in turn; the first answer counts."""
        last: Exception | None = None
        for addr in self.namesrv:
            try:
                return await self.call(addr, code, header)
            except AdminError as exc:
                last = exc
        raise AdminError(str(last) if last else "no name server address (-n or NAMESRV_ADDR)")

    async def cluster(self) -> ClusterInfo:
        return decode_body(ClusterInfo, (await self.ns(RequestCode.GET_BROKER_CLUSTER_INFO)).body)

    async def route(self, topic: str) -> TopicRouteData:
        reply = await self.ns(
            RequestCode.GET_ROUTEINFO_BY_TOPIC, GetRouteInfoRequestHeader(topic=topic)
        )
        return decode_body(TopicRouteData, reply.body)

    async def masters(self, cluster: str | None, broker: str | None) -> list[str]:
        """-b wins (one broker address), else every master of cluster -c."""
        if broker:
            return [broker]
        if not cluster:
            raise AdminError("give -b brokerAddr or -c clusterName")
        info = await self.cluster()
        names = info.cluster_addr_table.get(cluster)
        if names is None:
            raise AdminError(f"cluster {cluster} not found")
        out = []
        for name in sorted(names):
            data = info.broker_addr_table.get(name)
            if data is not None and data.master_addr:
                out.append(data.master_addr)
        return out

    async def runtime(self, addr: str) -> dict[str, str]:
        reply = await self.call(addr, RequestCode.GET_BROKER_RUNTIME_INFO)
        return dict(decode_body(KVTable, reply.body).table)

    async def consume_stats(
        self, group: str, topic: str | None = None
    ) -> tuple[dict[MessageQueue, OffsetWrapper], float]:
        """GET_CONSUME_STATS from every master of the group's retry topic route (mqadmin's
        examineConsumeStats), merged, and the summed consume TPS."""
        route = await self.route(f"{RETRY_PREFIX}{group}")
        table: dict[MessageQueue, OffsetWrapper] = {}
        tps = 0.0
        for broker in route.broker_datas:
            if not broker.master_addr:
                continue
            reply = await self.call(
                broker.master_addr,
                RequestCode.GET_CONSUME_STATS,
                GetConsumeStatsRequestHeader(consumer_group=group, topic=topic),
            )
            stats = decode_body(ConsumeStats, reply.body)
            table.update(stats.offset_table)
            tps += stats.consume_tps
        return table, tps


def _time(ms: int, *, millis: bool = True) -> str:
    stamp = datetime.datetime.fromtimestamp(ms / 1000)
    text = stamp.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text},{ms % 1000:03d}" if millis else text


def _mq_key(mq: MessageQueue) -> tuple[str, str, int]:
    return (mq.topic, mq.broker_name, mq.queue_id)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(unstructure_body(value), default=str))


# ---------------------------------------------------------------- cluster and brokers


async def cluster_list(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    info = await a.cluster()
    lines = [
        "%-16s  %-22s  %-4s  %-22s %-16s %19s %19s %10s %5s %6s"
        % (
            "#Cluster Name",
            "#Broker Name",
            "#BID",
            "#Addr",
            "#Version",
            "#InTPS(LOAD)",
            "#OutTPS(LOAD)",
            "#PCWait(ms)",
            "#Hour",
            "#SPACE",
        )
    ]
    rows = []
    for cluster in sorted(info.cluster_addr_table):
        if args.clusterName and cluster != args.clusterName:
            continue
        for name in sorted(info.cluster_addr_table[cluster]):
            data = info.broker_addr_table.get(name)
            if data is None:
                continue
            for bid, addr in sorted(data.broker_addrs.items()):
                try:
                    rt = await a.runtime(addr)
                except AdminError:
                    rt = {}
                in_tps = float(rt.get("putTps", "0").split()[0])
                out_tps = float(rt.get("getTransferedTps", "0").split()[0])
                earliest = int(rt.get("earliestMessageTimeStamp", "0") or 0)
                hours = (time.time() * 1000 - earliest) / 3600000 if earliest > 0 else 0.0
                space = float(rt.get("commitLogDiskRatio", "0") or 0)
                row = {
                    "cluster": cluster,
                    "brokerName": name,
                    "brokerId": bid,
                    "addr": addr,
                    "version": rt.get("brokerVersionDesc", ""),
                    "inTps": in_tps,
                    "outTps": out_tps,
                    "sendQueueSize": int(rt.get("sendThreadPoolQueueSize", "0")),
                    "sendQueueHeadWaitMs": int(rt.get("sendThreadPoolQueueHeadWaitTimeMills", "0")),
                    "pullQueueSize": int(rt.get("pullThreadPoolQueueSize", "0")),
                    "pullQueueHeadWaitMs": int(rt.get("pullThreadPoolQueueHeadWaitTimeMills", "0")),
                    "pageCacheLockTimeMs": int(rt.get("pageCacheLockTimeMills", "0")),
                    "hours": hours,
                    "diskRatio": space,
                }
                rows.append(row)
                lines.append(
                    "%-16s  %-22s  %-4s  %-22s %-16s %19s %19s %10s %5s %6s"
                    % (
                        cluster,
                        name,
                        bid,
                        addr,
                        row["version"],
                        "%9.2f(%s,%sms)"
                        % (in_tps, row["sendQueueSize"], row["sendQueueHeadWaitMs"]),
                        "%9.2f(%s,%sms)"
                        % (out_tps, row["pullQueueSize"], row["pullQueueHeadWaitMs"]),
                        row["pageCacheLockTimeMs"],
                        "%2.2f" % hours,
                        "%.4f" % space,
                    )
                )
    return "\n".join(lines) + "\n", rows


async def broker_status(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    addrs = await a.masters(args.clusterName, args.brokerAddr)
    out: list[str] = []
    data: dict[str, dict[str, str]] = {}
    for addr in addrs:
        rt = await a.runtime(addr)
        data[addr] = rt
        out.extend(
            "%-32s: %s" % (key, rt[key])
            if len(addrs) == 1
            else "%-24s %-32s: %s" % (addr, key, rt[key])
            for key in sorted(rt)
        )
    return "\n".join(out) + "\n", data


async def get_broker_config(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    addrs = await a.masters(args.clusterName, args.brokerAddr)
    out, data = [], {}
    for addr in addrs:
        reply = await a.call(addr, RequestCode.GET_BROKER_CONFIG)
        props = parse_properties(bytes(reply.body).decode("utf-8"))
        data[addr] = props
        out.append(f"============{addr}============")
        out.extend("%-50s=  %s" % (key, value) for key, value in props.items())
    return "\n".join(out) + "\n\n", data


async def update_broker_config(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    addrs = await a.masters(args.clusterName, args.brokerAddr)
    body = f"{args.key}={args.value}\n".encode()
    out, data = [], {}
    for addr in addrs:
        reply = await a.call(addr, RequestCode.UPDATE_BROKER_CONFIG, None, body)
        data[addr] = {"key": args.key, "value": args.value, "remark": reply.remark}
        out.append(f"update broker config success, {addr}")
        if reply.remark:
            out.append(f"  ({reply.remark})")
    return "\n".join(out) + "\n", data


async def _write_perm(a: Admin, args: argparse.Namespace, *, add: bool) -> tuple[str, Any]:
    out, data = [], {}
    for ns in a.namesrv:
        if add:
            reply = await a.call(
                ns,
                RequestCode.ADD_WRITE_PERM_OF_BROKER,
                AddWritePermOfBrokerRequestHeader(broker_name=args.brokerName),
            )
            count = int(reply.ext_fields.get("addTopicCount", "0"))
            out.append(
                f"add write perm of broker[{args.brokerName}] in name server[{ns}] OK, {count}"
            )
        else:
            reply = await a.call(
                ns,
                RequestCode.WIPE_WRITE_PERM_OF_BROKER,
                WipeWritePermOfBrokerRequestHeader(broker_name=args.brokerName),
            )
            count = int(reply.ext_fields.get("wipeTopicCount", "0"))
            out.append(
                f"wipe write perm of broker[{args.brokerName}] in name server[{ns}] OK, {count}"
            )
        data[ns] = count
    return "\n".join(out) + "\n", data


async def wipe_write_perm(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    return await _write_perm(a, args, add=False)


async def add_write_perm(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    return await _write_perm(a, args, add=True)


# ---------------------------------------------------------------- topics


async def topic_list(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    reply = await a.ns(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
    topics = list(decode_body(TopicList, reply.body).topic_list)
    if not args.clusterModel:
        return "".join(f"{t}\n" for t in topics), topics
    info = await a.cluster()
    lines = ["%-20s  %-48s  %-48s" % ("#Cluster Name", "#Topic", "#Consumer Group")]
    rows = []
    for topic in topics:
        if topic.startswith((RETRY_PREFIX, DLQ_PREFIX)):
            continue
        try:
            route = await a.route(topic)
        except AdminError:
            continue
        names = {b.broker_name for b in route.broker_datas}
        clusters = sorted(
            c for c, members in info.cluster_addr_table.items() if names & set(members)
        )
        groups: set[str] = set()
        for broker in route.broker_datas:
            if broker.master_addr:
                try:
                    r = await a.call(
                        broker.master_addr,
                        RequestCode.QUERY_TOPIC_CONSUME_BY_WHO,
                        QueryTopicConsumeByWhoRequestHeader(topic=topic),
                    )
                    groups |= set(decode_body(GroupList, r.body).group_list)
                except AdminError:
                    pass
        for cluster in clusters or [""]:
            for group in sorted(groups) or [""]:
                rows.append({"cluster": cluster, "topic": topic, "group": group})
                lines.append("%-20s  %-48s  %-48s" % (cluster, topic, group))
    return "\n".join(lines) + "\n", rows


async def topic_route(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    route = await a.route(args.topic)
    data = unstructure_body(route)
    return json.dumps(data, indent=4, sort_keys=True) + "\n", data


async def topic_status(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    route = await a.route(args.topic)
    table: dict[MessageQueue, Any] = {}
    for broker in route.broker_datas:
        if broker.master_addr:
            reply = await a.call(
                broker.master_addr,
                RequestCode.GET_TOPIC_STATS_INFO,
                GetTopicStatsInfoRequestHeader(topic=args.topic),
            )
            table.update(decode_body(TopicStatsTable, reply.body).offset_table)
    lines = [
        "%-32s  %-4s  %-20s  %-20s    %s"
        % ("#Broker Name", "#QID", "#Min Offset", "#Max Offset", "#Last Updated")
    ]
    rows = []
    for mq in sorted(table, key=_mq_key):
        off = table[mq]
        updated = _time(off.last_update_timestamp) if off.last_update_timestamp > 0 else ""
        rows.append(
            {
                "brokerName": mq.broker_name,
                "queueId": mq.queue_id,
                "minOffset": off.min_offset,
                "maxOffset": off.max_offset,
                "lastUpdated": off.last_update_timestamp,
            }
        )
        lines.append(
            "%-32s  %-4s  %-20s  %-20s    %s"
            % (mq.broker_name, mq.queue_id, off.min_offset, off.max_offset, updated)
        )
    return "\n".join(lines) + "\n", rows


def _topic_config_text(c: TopicConfig) -> str:
    return (
        f"TopicConfig [topicName={c.topic_name}, readQueueNums={c.read_queue_nums}, "
        f"writeQueueNums={c.write_queue_nums}, perm={PERMS.get(c.perm, c.perm)}, "
        f"topicFilterType={c.topic_filter_type.name}, topicSysFlag={c.topic_sys_flag}, "
        f"order={'true' if c.order else 'false'}]"
    )


async def _create_topic(a: Admin, addr: str, c: TopicConfig) -> None:
    header = CreateTopicRequestHeader(
        topic=c.topic_name or "",
        default_topic="TBW102",
        read_queue_nums=c.read_queue_nums,
        write_queue_nums=c.write_queue_nums,
        perm=c.perm,
        topic_filter_type=c.topic_filter_type,
        topic_sys_flag=c.topic_sys_flag,
        order=c.order,
    )
    await a.call(addr, RequestCode.UPDATE_AND_CREATE_TOPIC, header)


async def update_topic(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    config = TopicConfig(
        topic_name=args.topic,
        read_queue_nums=args.readQueueNums,
        write_queue_nums=args.writeQueueNums,
        perm=args.perm,
        order=args.order,
    )
    out, done = [], []
    for addr in await a.masters(args.clusterName, args.brokerAddr):
        await _create_topic(a, addr, config)
        done.append(addr)
        out.append(f"create topic to {addr} success.")
    out.append(_topic_config_text(config))
    return "\n".join(out) + "\n", {"brokers": done, "topicConfig": _jsonable(config)}


async def update_topic_perm(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    route = await a.route(args.topic)
    out, data = [], []
    for addr in await a.masters(args.clusterName, args.brokerAddr):
        name = next(
            (b.broker_name for b in route.broker_datas if addr in b.broker_addrs.values()), None
        )
        queue = next((q for q in route.queue_datas if q.broker_name == name), None)
        if queue is None:
            raise AdminError(f"topic {args.topic} has no queues on {addr}")
        if queue.perm == args.perm:
            out.append("new perm equals to the old one!")
            continue
        config = TopicConfig(
            topic_name=args.topic,
            read_queue_nums=queue.read_queue_nums,
            write_queue_nums=queue.write_queue_nums,
            perm=args.perm,
            topic_sys_flag=queue.topic_sys_flag,
        )
        await _create_topic(a, addr, config)
        data.append({"broker": addr, "from": queue.perm, "to": args.perm})
        out.append(f"update topic perm from {queue.perm} to {args.perm} in {addr} success.")
    return "\n".join(out) + "\n\n", data


async def _delete_topic(a: Admin, topic: str, cluster: str, out: list[str]) -> None:
    for addr in await a.masters(cluster, None):
        await a.call(
            addr, RequestCode.DELETE_TOPIC_IN_BROKER, DeleteTopicRequestHeader(topic=topic)
        )
    out.append(f"delete topic [{topic}] from cluster [{cluster}] success.")
    for ns in a.namesrv:
        await a.call(
            ns,
            RequestCode.DELETE_TOPIC_IN_NAMESRV,
            DeleteTopicFromNamesrvRequestHeader(topic=topic),
        )
    out.append(f"delete topic [{topic}] from NameServer success.")


async def delete_topic(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    out: list[str] = []
    await _delete_topic(a, args.topic, args.clusterName, out)
    return "\n".join(out) + "\n\n", {"deleted": args.topic, "cluster": args.clusterName}


# ---------------------------------------------------------------- groups and consumers


async def update_sub_group(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    config = SubscriptionGroupConfig(
        group_name=args.groupName,
        consume_enable=args.consumeEnable,
        consume_from_min_enable=args.consumeFromMinEnable,
        consume_broadcast_enable=args.consumeBroadcastEnable,
        retry_queue_nums=args.retryQueueNums,
        retry_max_times=args.retryMaxTimes,
        broker_id=args.brokerId,
        which_broker_when_consume_slowly=args.whichBrokerWhenConsumeSlowly,
        notify_consumer_ids_changed_enable=args.notifyConsumerIdsChanged,
    )
    out = []
    body = encode_body(config)
    for addr in await a.masters(args.clusterName, args.brokerAddr):
        await a.call(addr, RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, None, body)
        out.append(f"create subscription group to {addr} success.")

    def b(value: bool) -> str:
        return "true" if value else "false"

    out.append(
        f"SubscriptionGroupConfig [groupName={config.group_name}, consumeEnable={b(config.consume_enable)}, "
        f"consumeFromMinEnable={b(config.consume_from_min_enable)}, consumeBroadcastEnable={b(config.consume_broadcast_enable)}, "
        f"retryQueueNums={config.retry_queue_nums}, retryMaxTimes={config.retry_max_times}, brokerId={config.broker_id}, "
        f"whichBrokerWhenConsumeSlowly={config.which_broker_when_consume_slowly}, "
        f"notifyConsumerIdsChangedEnable={b(config.notify_consumer_ids_changed_enable)}]"
    )
    return "\n".join(out) + "\n", _jsonable(config)


async def delete_sub_group(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    out: list[str] = []
    header = DeleteSubscriptionGroupRequestHeader(
        group_name=args.groupName, remove_offset=args.removeOffset
    )
    for addr in await a.masters(args.clusterName, args.brokerAddr):
        await a.call(addr, RequestCode.DELETE_SUBSCRIPTIONGROUP, header)
        out.append(
            f"delete subscription group [{args.groupName}] from broker [{addr}] in cluster [{args.clusterName}] success."
        )
    if args.clusterName:
        for topic in (f"{RETRY_PREFIX}{args.groupName}", f"{DLQ_PREFIX}{args.groupName}"):
            await _delete_topic(a, topic, args.clusterName, out)
    return "\n".join(out) + "\n\n", {"deleted": args.groupName}


async def _connections(a: Admin, group: str) -> ConsumerConnection:
    route = await a.route(f"{RETRY_PREFIX}{group}")
    last: AdminError | None = None
    for broker in route.broker_datas:
        if broker.master_addr:
            try:
                reply = await a.call(
                    broker.master_addr,
                    RequestCode.GET_CONSUMER_CONNECTION_LIST,
                    GetConsumerConnectionListRequestHeader(consumer_group=group),
                )
                return decode_body(ConsumerConnection, reply.body)
            except AdminError as exc:
                last = exc
    raise last or AdminError(f"the consumer group[{group}] not online")


async def consumer_connection(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    cc = await _connections(a, args.consumerGroup)
    lines = ["%-36s %-22s %-10s %s" % ("#ClientId", "#ClientAddr", "#Language", "#Version")]
    lines.extend(
        "%-36s %-22s %-10s %s" % (c.client_id, c.client_addr, c.language.name, _version(c.version))
        for c in sorted(cc.connection_set, key=lambda c: c.client_id)
    )
    lines += ["", "Below is subscription:", "%-20s %s" % ("#Topic", "#SubExpression")]
    for topic in sorted(cc.subscription_table):
        lines.append("%-20s %s" % (topic, cc.subscription_table[topic].sub_string))
    lines += [
        "",
        f"ConsumeType: {cc.consume_type.name if cc.consume_type is not None else ''}",
        f"MessageModel: {cc.message_model.name if cc.message_model is not None else ''}",
        f"ConsumeFromWhere: {cc.consume_from_where.name if cc.consume_from_where is not None else ''}",
    ]
    return "\n".join(lines) + "\n", _jsonable(cc)


async def producer_connection(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    route = await a.route(args.topic)
    for broker in route.broker_datas:
        if broker.master_addr:
            reply = await a.call(
                broker.master_addr,
                RequestCode.GET_PRODUCER_CONNECTION_LIST,
                GetProducerConnectionListRequestHeader(producer_group=args.producerGroup),
            )
            pc = decode_body(ProducerConnection, reply.body)
            lines = [
                "%04d  %-32s %-22s %-8s %s"
                % (i, c.client_id, c.client_addr, c.language.name, _version(c.version))
                for i, c in enumerate(sorted(pc.connection_set, key=lambda c: c.client_id), 1)
            ]
            return "\n".join(lines) + "\n", _jsonable(pc)
    raise AdminError(f"topic {args.topic} has no master broker")


def _version(v: int) -> str:
    """MQVersion.getVersionDesc for 4.x clients: from V4_0_0_SNAPSHOT (212) each release
    follows its SNAPSHOT (V4_9_8 = 409)."""
    if 212 <= v < 412:
        n, release = divmod(v - 212, 2)
        return f"V4_{n // 10}_{n % 10}" + ("" if release else "_SNAPSHOT")
    return str(v)


async def consumer_progress(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    if not args.consumerGroup:
        return await _all_groups_progress(a)
    table, tps = await a.consume_stats(args.consumerGroup)
    lines = [
        "%-64s  %-32s  %-4s  %-20s  %-20s  %-20s %s"
        % (
            "#Topic",
            "#Broker Name",
            "#QID",
            "#Broker Offset",
            "#Consumer Offset",
            "#Diff",
            "#LastTime",
        )
    ]
    rows, diff_total = [], 0
    for mq in sorted(table, key=_mq_key):
        w = table[mq]
        diff = w.broker_offset - w.consumer_offset
        diff_total += diff
        last = _time(w.last_timestamp, millis=False) if w.last_timestamp > 0 else "N/A"
        rows.append(
            {
                "topic": mq.topic,
                "brokerName": mq.broker_name,
                "queueId": mq.queue_id,
                "brokerOffset": w.broker_offset,
                "consumerOffset": w.consumer_offset,
                "diff": diff,
                "lastTimestamp": w.last_timestamp,
            }
        )
        lines.append(
            "%-64s  %-32s  %-4d  %-20d  %-20d  %-20d %s"
            % (
                mq.topic,
                mq.broker_name,
                mq.queue_id,
                w.broker_offset,
                w.consumer_offset,
                diff,
                last,
            )
        )
    lines += ["", "Consume TPS: %.2f" % tps, f"Diff Total: {diff_total}"]
    return "\n".join(lines) + "\n", {"queues": rows, "consumeTps": tps, "diffTotal": diff_total}


async def _all_groups_progress(a: Admin) -> tuple[str, Any]:
    reply = await a.ns(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
    groups = sorted(
        t[len(RETRY_PREFIX) :]
        for t in decode_body(TopicList, reply.body).topic_list
        if t.startswith(RETRY_PREFIX)
    )
    lines = [
        "%-64s  %-6s  %-24s %-5s  %-14s  %-7s  %s"
        % ("#Group", "#Count", "#Version", "#Type", "#Model", "#TPS", "#Diff Total")
    ]
    rows = []
    for group in groups:
        try:
            table, tps = await a.consume_stats(group)
        except AdminError:
            continue
        diff = sum(w.broker_offset - w.consumer_offset for w in table.values())
        try:
            cc = await _connections(a, group)
            count = len(cc.connection_set)
            version = _version(min(c.version for c in cc.connection_set)) if count else "OFFLINE"
            kind = (
                "PUSH"
                if cc.consume_type is not None and cc.consume_type.name == "CONSUME_PASSIVELY"
                else "PULL"
            )
            model = cc.message_model.name if cc.message_model is not None else ""
        except AdminError:
            count, version, kind, model = 0, "OFFLINE", "", ""
        rows.append(
            {
                "group": group,
                "count": count,
                "version": version,
                "type": kind,
                "model": model,
                "tps": tps,
                "diffTotal": diff,
            }
        )
        lines.append(
            "%-64s  %-6d  %-24s %-5s  %-14s  %-7d  %d"
            % (group, count, version, kind, model, int(tps), diff)
        )
    return "\n".join(lines) + "\n", rows


def _parse_timestamp(text: str) -> int:
    if text == "now":
        return int(time.time() * 1000)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return int(datetime.datetime.strptime(text, "%Y-%m-%d#%H:%M:%S:%f").timestamp() * 1000)
    except ValueError:
        raise AdminError(f"timestamp {text!r}: give ms, 'now' or yyyy-MM-dd#HH:mm:ss:SSS") from None


async def reset_offset_by_time(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    """INVOKE_BROKER_TO_RESET_OFFSET on every master of the topic (online consumers move and
    commit); a group with nobody online gets its broker offsets set directly, as mqadmin's
    fallback (resetOffsetByTimeOld) does."""
    ts = _parse_timestamp(args.timestamp)
    route = await a.route(args.topic)
    header = ResetOffsetRequestHeader(
        topic=args.topic, group=args.group, timestamp=ts, is_force=args.force
    )
    table: dict[MessageQueue, int] = {}
    offline = False
    for broker in route.broker_datas:
        addr = broker.master_addr
        if not addr:
            continue
        try:
            reply = await api.invoke(
                a.client,
                addr,
                api.request(RequestCode.INVOKE_BROKER_TO_RESET_OFFSET, header),
                TIMEOUT,
            )
        except ClientError as exc:
            raise AdminError(f"{addr}: {exc}") from None
        if reply.code == ResponseCode.CONSUMER_NOT_ONLINE:
            offline = True
            break
        if reply.code != ResponseCode.SUCCESS:
            raise AdminError(f"CODE: {reply.code}  DESC: {reply.remark} ({addr})")
        table.update(decode_body(ResetOffsetBody, reply.body).offset_table)
    if offline:
        return await _reset_offline(a, args, ts)
    lines = [
        "rollback consumer offset by specified consumerGroup[%s], topic[%s], force[%s], timestamp(string)[%s], timestamp(long)[%s]"
        % (args.group, args.topic, "true" if args.force else "false", args.timestamp, ts),
        "%-40s  %-40s  %-40s" % ("#brokerName", "#queueId", "#offset"),
    ]
    rows = []
    for mq in sorted(table, key=_mq_key):
        rows.append({"brokerName": mq.broker_name, "queueId": mq.queue_id, "offset": table[mq]})
        lines.append("%-40s  %-40d  %-40d" % (mq.broker_name, mq.queue_id, table[mq]))
    return "\n".join(lines) + "\n", rows


async def _reset_offline(a: Admin, args: argparse.Namespace, ts: int) -> tuple[str, Any]:
    table, _ = await a.consume_stats(args.group, args.topic)
    route = await a.route(args.topic)
    addrs = {b.broker_name: b.master_addr for b in route.broker_datas}
    lines = [
        "%-20s  %-20s  %-20s  %-20s  %-20s  %-20s"
        % (
            "#brokerName",
            "#queueId",
            "#brokerOffset",
            "#consumerOffset",
            "#timestampOffset",
            "#resetOffset",
        )
    ]
    rows = []
    for mq in sorted(table, key=_mq_key):
        if mq.topic != args.topic:
            continue
        addr = addrs.get(mq.broker_name)
        if not addr:
            continue
        w = table[mq]
        r = await a.call(
            addr,
            RequestCode.SEARCH_OFFSET_BY_TIMESTAMP,
            SearchOffsetRequestHeader(topic=mq.topic, queue_id=mq.queue_id, timestamp=ts),
        )
        at = int(r.ext_fields.get("offset", "0"))
        reset = at if args.force or at < w.consumer_offset else w.consumer_offset
        await a.call(
            addr,
            RequestCode.UPDATE_CONSUMER_OFFSET,
            UpdateConsumerOffsetRequestHeader(
                consumer_group=args.group, topic=mq.topic, queue_id=mq.queue_id, commit_offset=reset
            ),
        )
        rows.append(
            {
                "brokerName": mq.broker_name,
                "queueId": mq.queue_id,
                "brokerOffset": w.broker_offset,
                "consumerOffset": w.consumer_offset,
                "timestampOffset": at,
                "resetOffset": reset,
            }
        )
        lines.append(
            "%-20s  %-20d  %-20d  %-20d  %-20d  %-20d"
            % (mq.broker_name, mq.queue_id, w.broker_offset, w.consumer_offset, at, reset)
        )
    return "\n".join(lines) + "\n", rows


# ---------------------------------------------------------------- messages


def _message_text(msg: MessageExt, offset_id: str | None) -> str:
    props = ", ".join(f"{k}={v}" for k, v in msg.properties.items())
    fields: list[tuple[str, object]] = []
    if offset_id is not None:
        fields.append(("OffsetID:", offset_id))
    fields += [
        ("Topic:", msg.topic),
        ("Tags:", f"[{msg.tags or ''}]"),
        ("Keys:", f"[{' '.join(msg.keys)}]"),
        ("Queue ID:", msg.queue_id),
        ("Queue Offset:", msg.queue_offset),
        ("CommitLog Offset:", msg.commit_log_offset),
        ("Reconsume Times:", msg.reconsume_times),
        ("Born Timestamp:", _time(msg.born_timestamp)),
        ("Store Timestamp:", _time(msg.store_timestamp)),
        ("Born Host:", msg.born_host),
        ("Store Host:", msg.store_host),
        ("System Flag:", msg.sys_flag),
        ("Properties:", "{" + props + "}"),
    ]
    return "\n".join("%-20s %s" % (k, v) for k, v in fields) + "\n"


def _message_json(msg: MessageExt) -> dict[str, Any]:
    data = {f.name: getattr(msg, f.name) for f in attrs.fields(MessageExt) if f.name != "body"}
    data["msgId"] = msg.msg_id
    data["body"] = msg.body.decode("utf-8", "replace")
    return data


async def query_msg_by_id(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    try:
        addr, offset = decode_offset_msg_id(args.msgId)
    except ProtocolError as exc:
        raise AdminError(f"not an offset message id: {exc}") from None
    reply = await a.call(
        addr, RequestCode.VIEW_MESSAGE_BY_ID, ViewMessageRequestHeader(offset=offset)
    )
    msgs = decode_records(reply.body)
    if not msgs:
        raise AdminError(f"no message at {args.msgId}")
    return _message_text(msgs[0], args.msgId), _message_json(msgs[0])


async def _query(
    a: Admin, topic: str, key: str, unique: bool, max_num: int = 64
) -> list[MessageExt]:
    route = await a.route(topic)
    header = QueryMessageRequestHeader(
        topic=topic,
        key=key,
        max_num=max_num,
        begin_timestamp=0,
        end_timestamp=2**63 - 1,
        unique_key_query=True if unique else None,
    )
    found: list[MessageExt] = []
    for broker in route.broker_datas:
        if not broker.master_addr:
            continue
        try:
            reply = await api.invoke(
                a.client,
                broker.master_addr,
                api.request(RequestCode.QUERY_MESSAGE, header),
                TIMEOUT,
            )
        except ClientError as exc:
            raise AdminError(f"{broker.master_addr}: {exc}") from None
        if reply.code == ResponseCode.QUERY_NOT_FOUND:
            continue
        if reply.code != ResponseCode.SUCCESS:
            raise AdminError(f"CODE: {reply.code}  DESC: {reply.remark}")
        for msg in decode_records(reply.body):
            keys = [msg.uniq_key] if unique else msg.keys
            if msg.topic == topic and key in keys:
                found.append(msg)
    return found


async def query_msg_by_key(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    msgs = await _query(a, args.topic, args.msgKey, False)
    msgs.sort(key=lambda m: (m.store_timestamp, m.commit_log_offset), reverse=True)
    lines = ["%-50s %4s %40s" % ("#Message ID", "#QID", "#Offset")]
    lines += ["%-50s %4d %40d" % (m.uniq_key or m.msg_id, m.queue_id, m.queue_offset) for m in msgs]
    return "\n".join(lines) + "\n", [_message_json(m) for m in msgs]


async def query_msg_by_unique_key(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    msgs = await _query(a, args.topic, args.msgId, True)
    if not msgs:
        raise AdminError(f"no message with unique key {args.msgId} in {args.topic}")
    return _message_text(msgs[0], None), _message_json(msgs[0])


# ---------------------------------------------------------------- statsAll


async def _stats(a: Admin, addr: str, name: str, key: str) -> BrokerStatsData | None:
    try:
        reply = await a.call(
            addr,
            RequestCode.VIEW_BROKER_STATS_DATA,
            ViewBrokerStatsDataRequestHeader(stats_name=name, stats_key=key),
        )
    except AdminError:
        return None  # never seen: mqadmin counts it as 0 too
    return decode_body(BrokerStatsData, reply.body)


async def stats_all(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    if args.topic:
        topics = [args.topic]
    else:
        reply = await a.ns(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
        topics = [
            t
            for t in decode_body(TopicList, reply.body).topic_list
            if not t.startswith((RETRY_PREFIX, DLQ_PREFIX))
        ]
    fmt = "%-64s  %-64s %12s %11s %11s %14s %14s"
    lines = [
        fmt
        % (
            "#Topic",
            "#Consumer Group",
            "#Accumulation",
            "#InTPS",
            "#OutTPS",
            "#InMsg24Hour",
            "#OutMsg24Hour",
        )
    ]
    rows = []
    for topic in topics:
        try:
            route = await a.route(topic)
        except AdminError:
            continue
        in_tps, in_day = 0.0, 0
        groups: set[str] = set()
        for broker in route.broker_datas:
            if not broker.master_addr:
                continue
            stats = await _stats(a, broker.master_addr, "TOPIC_PUT_NUMS", topic)
            if stats is not None:
                in_tps += stats.stats_minute.tps
                in_day += stats.stats_day.sum
            r = await a.call(
                broker.master_addr,
                RequestCode.QUERY_TOPIC_CONSUME_BY_WHO,
                QueryTopicConsumeByWhoRequestHeader(topic=topic),
            )
            groups |= set(decode_body(GroupList, r.body).group_list)
        if not groups:
            if args.activeTopic and in_day == 0:
                continue
            rows.append(
                {
                    "topic": topic,
                    "group": None,
                    "accumulation": 0,
                    "inTps": in_tps,
                    "outTps": None,
                    "inMsg24Hour": in_day,
                    "outMsg24Hour": None,
                }
            )
            lines.append(fmt % (topic, "", 0, "%.2f" % in_tps, "", in_day, "NO_CONSUMER"))
            continue
        for group in sorted(groups):
            try:
                table, _ = await a.consume_stats(group, topic)
                accumulation = sum(
                    w.broker_offset - w.consumer_offset
                    for mq, w in table.items()
                    if mq.topic == topic
                )
            except AdminError:
                accumulation = 0
            out_tps, out_day = 0.0, 0
            for broker in route.broker_datas:
                if broker.master_addr:
                    stats = await _stats(
                        a, broker.master_addr, "GROUP_GET_NUMS", f"{topic}@{group}"
                    )
                    if stats is not None:
                        out_tps += stats.stats_minute.tps
                        out_day += stats.stats_day.sum
            if args.activeTopic and in_day == 0 and out_day == 0:
                continue
            rows.append(
                {
                    "topic": topic,
                    "group": group,
                    "accumulation": accumulation,
                    "inTps": in_tps,
                    "outTps": out_tps,
                    "inMsg24Hour": in_day,
                    "outMsg24Hour": out_day,
                }
            )
            lines.append(
                fmt
                % (topic, group, accumulation, "%.2f" % in_tps, "%.2f" % out_tps, in_day, out_day)
            )
    return "\n".join(lines) + "\n", rows


# ---------------------------------------------------------------- command line


Command = Callable[[Admin, argparse.Namespace], Awaitable[tuple[str, Any]]]


async def ha_status(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    """RocketMQ 5 mqadmin's haStatus (GET_BROKER_HA_STATUS, 907): -b one broker (a slave
    too), or every master of -c."""
    addrs = await a.masters(args.clusterName, args.brokerAddr)
    out: list[str] = []
    data: dict[str, Any] = {}
    for addr in addrs:
        info = decode_body(HARuntimeInfo, (await a.call(addr, GET_BROKER_HA_STATUS)).body)
        data[addr] = unstructure_body(info)
        if info.master:
            out.append(
                "\n#MasterAddr\t%s\n#MasterCommitLogMaxOffset\t%d\n#SlaveNum\t%d\n#InSyncSlaveNum\t%d"
                % (addr, info.master_commit_log_max_offset, len(info.ha_connection_info),
                   info.in_sync_slave_nums)
            )  # fmt: skip
            out.append(
                "%-32s  %-16s %16s %16s %16s %16s"
                % ("#SlaveAddr", "#SlaveAckOffset", "#Diff", "#TransferSpeed(KB/s)", "#Status",
                   "#TransferFromWhere")
            )  # fmt: skip
            out.extend(
                "%-32s  %-16d %16d %16.2f %16s %16d"
                % (c.addr, c.slave_ack_offset, c.diff, c.transferred_byte_in_second / 1024.0,
                   "OK" if c.in_sync else "Fall Behind", c.transfer_from_where)
                for c in info.ha_connection_info
            )  # fmt: skip
        else:
            c2 = info.ha_client_runtime_info
            out.append(f"\n#MasterAddr\t{c2.master_addr}")
            out.append(f"#CommitLogMaxOffset\t{c2.max_offset}")
            out.append("#TransferSpeed(KB/s)\t%.2f" % (c2.transferred_byte_in_second / 1024.0))
            out.append(f"#LastReadTime\t{_time(c2.last_read_timestamp)}")
            out.append(f"#LastWriteTime\t{_time(c2.last_write_timestamp)}")
            out.append(f"#MasterFlushOffset\t{c2.master_flush_offset}")
    return "\n".join(out) + "\n", data


async def switch_broker_role(a: Admin, args: argparse.Namespace) -> tuple[str, Any]:
    """Ours (SWITCH_BROKER_ROLE, 30001; mqadmin 4.9 has no such command): change one running
    broker's role.  The reply's maxPhyOffset of a promoted slave is the --truncate-to for
    demoting the old master later (where its log may diverge from the new master's)."""
    fields = {"brokerRole": args.role}
    if args.brokerId is not None:
        fields["brokerId"] = str(args.brokerId)
    if args.truncateTo is not None:
        fields["truncateTo"] = str(args.truncateTo)
    if args.haMasterAddr:
        fields["haMasterAddress"] = args.haMasterAddr
    reply = await a.call(args.brokerAddr, SWITCH_BROKER_ROLE, fields)
    data = {
        "brokerAddr": args.brokerAddr,
        "brokerRole": reply.ext_fields.get("brokerRole", args.role),
        "brokerId": int(reply.ext_fields.get("brokerId", -1)),
        "maxPhyOffset": int(reply.ext_fields.get("maxPhyOffset", -1)),
        "changed": not reply.remark,
    }
    text = "switch broker role %s, %s: %s brokerId %d, maxPhyOffset %d\n" % (
        "success" if data["changed"] else "unchanged (%s)" % reply.remark,
        args.brokerAddr,
        data["brokerRole"],
        data["brokerId"],
        data["maxPhyOffset"],
    )
    return text, data


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true/false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rmqadmin", description="RocketMQ admin tool (mqadmin's commands)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(name: str, fn: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "-n",
            "--namesrvAddr",
            default=os.environ.get("NAMESRV_ADDR", ""),
            help="name server address list, e.g. 127.0.0.1:9876;127.0.0.2:9876 (default $NAMESRV_ADDR)",
        )
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        # --access-key/--secret-key (else $ROCKETMQ_HOME/conf/tools.yml), --tls, --tls-ca ...
        _security.add_security_options(p)
        p.set_defaults(fn=fn)
        return p

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("-b", "--brokerAddr", help="one broker address")
        p.add_argument("-c", "--clusterName", help="every master of this cluster")

    p = cmd("clusterList", cluster_list, "List cluster infos")
    p.add_argument("-c", "--clusterName")
    p = cmd("topicList", topic_list, "Fetch all topic list from name server")
    p.add_argument(
        "-c", "--clusterModel", action="store_true", help="with cluster and consumer groups"
    )
    p = cmd("topicRoute", topic_route, "Examine topic route info")
    p.add_argument("-t", "--topic", required=True)
    p = cmd("topicStatus", topic_status, "Examine topic Status info")
    p.add_argument("-t", "--topic", required=True)
    p = cmd("updateTopic", update_topic, "Update or create topic")
    target(p)
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-r", "--readQueueNums", type=int, default=8)
    p.add_argument("-w", "--writeQueueNums", type=int, default=8)
    p.add_argument("-p", "--perm", type=int, default=6)
    p.add_argument("-o", "--order", type=_bool, default=False)
    p = cmd("deleteTopic", delete_topic, "Delete topic from broker and NameServer")
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-c", "--clusterName", required=True)
    p = cmd("updateTopicPerm", update_topic_perm, "Update topic perm")
    target(p)
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-p", "--perm", type=int, required=True, choices=(2, 4, 6))
    p = cmd("wipeWritePerm", wipe_write_perm, "Wipe write perm of broker in all name server")
    p.add_argument("-b", "--brokerName", required=True)
    p = cmd("addWritePerm", add_write_perm, "Add write perm of broker in all name server")
    p.add_argument("-b", "--brokerName", required=True)
    p = cmd("consumerProgress", consumer_progress, "Query consumers's progress, speed")
    p.add_argument("-g", "--consumerGroup")
    p = cmd(
        "consumerConnection",
        consumer_connection,
        "Query consumer's socket connection, client version and subscription",
    )
    p.add_argument("-g", "--consumerGroup", required=True)
    p = cmd(
        "producerConnection",
        producer_connection,
        "Query producer's socket connection and client version",
    )
    p.add_argument("-g", "--producerGroup", required=True)
    p.add_argument("-t", "--topic", required=True)
    p = cmd("queryMsgById", query_msg_by_id, "Query Message by Id")
    p.add_argument("-i", "--msgId", required=True)
    p = cmd("queryMsgByKey", query_msg_by_key, "Query Message by Key")
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-k", "--msgKey", required=True)
    p = cmd("queryMsgByUniqueKey", query_msg_by_unique_key, "Query Message by Unique key")
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-i", "--msgId", required=True)
    p = cmd("brokerStatus", broker_status, "Fetch broker runtime status data")
    target(p)
    p = cmd("getBrokerConfig", get_broker_config, "Get broker config by cluster or special broker")
    target(p)
    p = cmd("updateBrokerConfig", update_broker_config, "Update broker's config")
    target(p)
    p.add_argument("-k", "--key", required=True)
    p.add_argument("-v", "--value", required=True)
    p = cmd("updateSubGroup", update_sub_group, "Update or create subscription group")
    target(p)
    p.add_argument("-g", "--groupName", required=True)
    p.add_argument("-s", "--consumeEnable", type=_bool, default=True)
    p.add_argument("-m", "--consumeFromMinEnable", type=_bool, default=False)
    p.add_argument("-d", "--consumeBroadcastEnable", type=_bool, default=False)
    p.add_argument("-q", "--retryQueueNums", type=int, default=1)
    p.add_argument("-r", "--retryMaxTimes", type=int, default=16)
    p.add_argument("-i", "--brokerId", type=int, default=0)
    p.add_argument("-w", "--whichBrokerWhenConsumeSlowly", type=int, default=1)
    p.add_argument("-a", "--notifyConsumerIdsChanged", type=_bool, default=True)
    p = cmd("deleteSubGroup", delete_sub_group, "Delete subscription group from broker")
    target(p)
    p.add_argument("-g", "--groupName", required=True)
    p.add_argument("-r", "--removeOffset", type=_bool, default=False)
    p = cmd("resetOffsetByTime", reset_offset_by_time, "Reset consumer offset by timestamp")
    p.add_argument("-g", "--group", required=True)
    p.add_argument("-t", "--topic", required=True)
    p.add_argument("-s", "--timestamp", required=True, help="ms, 'now' or yyyy-MM-dd#HH:mm:ss:SSS")
    p.add_argument("-f", "--force", type=_bool, default=True)
    p = cmd("statsAll", stats_all, "Topic and Consumer tps stats")
    p.add_argument("-t", "--topic")
    p.add_argument("-a", "--activeTopic", action="store_true")
    p = cmd("haStatus", ha_status, "Fetch ha runtime status data")
    target(p)
    p = cmd(
        "switchBrokerRole",
        switch_broker_role,
        "Switch a running broker's role (ours: SWITCH_BROKER_ROLE 30001)",
    )
    p.set_defaults(namesrv_optional=True)
    p.add_argument("-b", "--brokerAddr", required=True)
    p.add_argument("-r", "--role", required=True, choices=("ASYNC_MASTER", "SYNC_MASTER", "SLAVE"))
    p.add_argument("-i", "--brokerId", type=int, help="a slave's id (default: its own, else 1)")
    p.add_argument(
        "--truncate-to",
        dest="truncateTo",
        type=int,
        help="demotion: drop the log beyond this offset (the promotion's maxPhyOffset; without "
        "it the log is compared with the new master's record by record)",
    )
    p.add_argument(
        "--ha-master-addr", dest="haMasterAddr", help="demotion: the master's HA address host:port"
    )
    return parser


def credentials(args: argparse.Namespace) -> SessionCredentials | None:
    """The ACL keys to sign with: --access-key/--secret-key, else
    ``$ROCKETMQ_HOME/conf/tools.yml`` as mqadmin reads it (``accessKey``/``secretKey``), else
    none (requests go unsigned)."""
    given = _security.credentials(args)
    if given is not None:
        return given
    home = os.environ.get("ROCKETMQ_HOME", "")
    tools = Path(home) / "conf" / "tools.yml"
    if not home or not tools.exists():
        return None
    try:
        data = yaml.safe_load(tools.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise AdminError(f"cannot read {tools}: {exc}") from None
    access, secret = data.get("accessKey"), data.get("secretKey")
    if not (access and secret):
        return None
    return SessionCredentials(access_key=str(access), secret_key=str(secret))


async def run_command(args: argparse.Namespace) -> tuple[str, Any]:
    namesrv = [x.strip() for x in (args.namesrvAddr or "").split(";") if x.strip()]
    if not namesrv and not getattr(args, "namesrv_optional", False):
        raise AdminError("no name server address: give -n or set NAMESRV_ADDR")
    keys = credentials(args)
    hook = None if keys is None else functools.partial(sign_request, credentials=keys)
    # collapse_single: a command's AdminError, not the ExceptionGroup of the client's nursery
    async with (
        collapse_single(),
        open_remoting_client(
            name="rmqadmin", request_hook=hook, ssl_context=_security.ssl_context(args)
        ) as client,
    ):
        result: tuple[str, Any] = await args.fn(Admin(client, namesrv), args)
        return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text, data = trio.run(run_command, args)
    except (AdminError, BrokerError, ClientError) as exc:
        sys.stderr.write(f"rmqadmin {args.command}: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
