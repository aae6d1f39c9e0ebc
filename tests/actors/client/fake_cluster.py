"""A small in-memory broker + name server speaking the real protocol over loopback.

It exists so the client can be tested before (and independently of) the project's broker:
every request goes through the project's remoting server, Router and codecs; only the
storage is a list per queue.  Behaviour follows the reference where the client depends on
it: long polling, the QUERY_CONSUMER_OFFSET 0-vs-22 rule, NOTIFY_CONSUMER_IDS_CHANGED on
membership changes, 60 s queue locks, send-back into ``%RETRY%<group>``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import attrs
import trio

from actors.remoting.connection import Connection
from actors.remoting.errors import RemotingError
from actors.remoting.router import Channel, RequestContext, Router
from actors.remoting.server import remoting_server
from protocol.bodies.common import MessageQueue
from protocol.bodies.heartbeat import (
    GetConsumerListByGroupResponseBody,
    HeartbeatData,
    LockBatchRequestBody,
    LockBatchResponseBody,
    UnlockBatchRequestBody,
)
from protocol.bodies.route import BrokerData, QueueData, TopicRouteData
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, decode_header, encode_body, encode_header
from protocol.headers.client import (
    GetConsumerListByGroupRequestHeader,
    NotifyConsumerIdsChangedRequestHeader,
    UnregisterClientRequestHeader,
)
from protocol.headers.namesrv import GetRouteInfoRequestHeader
from protocol.headers.offset import (
    GetMaxOffsetRequestHeader,
    GetMinOffsetRequestHeader,
    QueryConsumerOffsetRequestHeader,
    SearchOffsetRequestHeader,
    UpdateConsumerOffsetRequestHeader,
)
from protocol.headers.pull import PullMessageRequestHeader, PullMessageResponseHeader, PullSysFlag
from protocol.headers.send import (
    ConsumerSendMsgBackRequestHeader,
    SendMessageRequestHeaderV2,
    SendMessageResponseHeader,
)
from protocol.message import (
    MessageConst,
    MessageExt,
    decode_batch,
    encode_record,
    string_to_properties,
)

LOCK_LIVE = 60.0


@attrs.define(eq=False)
class FakeBroker:
    name: str
    cluster: str = "DefaultCluster"
    addr: str = ""
    default_queues: int = 4
    # topic -> number of queues (read = write)
    topics: dict[str, int] = attrs.Factory(dict)
    records: dict[tuple[str, int], list[MessageExt]] = attrs.Factory(dict)
    by_phys: dict[int, MessageExt] = attrs.Factory(dict)
    offsets: dict[tuple[str, str, int], int] = attrs.Factory(dict)
    groups: dict[str, dict[str, Connection]] = attrs.Factory(dict)
    subscriptions: dict[str, dict[str, Any]] = attrs.Factory(dict)
    locks: dict[tuple[str, MessageQueue], tuple[str, float]] = attrs.Factory(dict)
    arrived: trio.Event = attrs.Factory(trio.Event)
    phys: int = 0
    refuse_sends: ResponseCode | None = None
    refuse_heartbeats: ResponseCode | None = None
    query_not_found: bool = False
    requests: list[int] = attrs.Factory(list)
    # the client address of every request (one per connection a client opened)
    peers: list[str] = attrs.Factory(list)
    heartbeats: list[HeartbeatData] = attrs.Factory(list)
    send_backs: list[ConsumerSendMsgBackRequestHeader] = attrs.Factory(list)
    server: Any = None
    stall_sends: bool = False
    closed_groups: trio.MemorySendChannel[str] = attrs.field(init=False)
    _closed_groups_rx: trio.MemoryReceiveChannel[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.closed_groups, self._closed_groups_rx = trio.open_memory_channel[str](1000)

    # ------------------------------------------------------------ storage

    def ensure_topic(self, topic: str, queues: int | None = None) -> None:
        self.topics.setdefault(topic, queues or self.default_queues)

    def queue(self, topic: str, qid: int) -> list[MessageExt]:
        return self.records.setdefault((topic, qid), [])

    def put(self, msg: MessageExt) -> MessageExt:
        q = self.queue(msg.topic, msg.queue_id)
        msg = attrs.evolve(
            msg,
            queue_offset=len(q),
            commit_log_offset=self.phys,
            store_host=self.addr,
            store_timestamp=int(trio.current_time() * 1000),
        )
        self.phys += 1000
        q.append(msg)
        self.by_phys[msg.commit_log_offset] = msg
        self.arrived.set()
        self.arrived = trio.Event()
        return msg

    def all_messages(self, topic: str) -> list[MessageExt]:
        return [m for (t, _), q in sorted(self.records.items()) if t == topic for m in q]

    # ------------------------------------------------------------ handlers

    def router(self) -> Router:
        r = Router(f"fake {self.name}")
        table = {
            RequestCode.SEND_MESSAGE_V2: self.on_send,
            RequestCode.SEND_BATCH_MESSAGE: self.on_send,
            RequestCode.PULL_MESSAGE: self.on_pull,
            RequestCode.QUERY_CONSUMER_OFFSET: self.on_query_offset,
            RequestCode.UPDATE_CONSUMER_OFFSET: self.on_update_offset,
            RequestCode.GET_MAX_OFFSET: self.on_max_offset,
            RequestCode.GET_MIN_OFFSET: self.on_min_offset,
            RequestCode.SEARCH_OFFSET_BY_TIMESTAMP: self.on_search_offset,
            RequestCode.HEART_BEAT: self.on_heartbeat,
            RequestCode.UNREGISTER_CLIENT: self.on_unregister,
            RequestCode.GET_CONSUMER_LIST_BY_GROUP: self.on_consumer_list,
            RequestCode.LOCK_BATCH_MQ: self.on_lock,
            RequestCode.UNLOCK_BATCH_MQ: self.on_unlock,
            RequestCode.CONSUMER_SEND_MSG_BACK: self.on_send_back,
        }
        for code, handler in table.items():
            r.register(code, self._counting(handler), limit=1000)
        return r

    def _counting(self, handler: Any) -> Any:
        async def wrapped(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand | None:
            self.requests.append(req.code)
            self.peers.append(ctx.peer)
            return await handler(ctx, req)

        return wrapped

    async def on_send(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(SendMessageRequestHeaderV2, req.ext_fields)
        if self.stall_sends:
            await trio.sleep_forever()
        if self.refuse_sends is not None:
            return req.reply(self.refuse_sends, "refused by test")
        self.ensure_topic(h.topic)
        qid = h.queue_id % self.topics[h.topic]
        props = string_to_properties(h.properties or "")
        props.pop(MessageConst.WAIT, None)
        base = dict(
            topic=h.topic,
            queue_id=qid,
            sys_flag=h.sys_flag,
            born_timestamp=h.born_timestamp,
            born_host=ctx.peer,
            reconsume_times=h.reconsume_times or 0,
        )
        if h.batch:
            stored = [
                self.put(
                    MessageExt(
                        body=e.body, flag=e.flag, properties={**e.properties, **props}, **base
                    )
                )
                for e in decode_batch(req.body)
            ]
        else:
            stored = [self.put(MessageExt(body=req.body, flag=h.flag, properties=props, **base))]
        head = SendMessageResponseHeader(
            msg_id=",".join(m.msg_id for m in stored),
            queue_id=qid,
            queue_offset=stored[0].queue_offset,
            msg_region="DefaultRegion",
            trace_on=True,
        )
        return req.reply(ResponseCode.SUCCESS, None, encode_header(head))

    async def on_pull(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(PullMessageRequestHeader, req.ext_fields)
        if h.sys_flag & PullSysFlag.COMMIT_OFFSET:
            self.offsets[(h.consumer_group, h.topic, h.queue_id)] = h.commit_offset
        q = self.queue(h.topic, h.queue_id)
        if h.queue_offset > len(q):
            return self._pull_reply(req, ResponseCode.PULL_OFFSET_MOVED, len(q), q)
        if h.queue_offset == len(q) and h.sys_flag & PullSysFlag.SUSPEND:
            with trio.move_on_after(h.suspend_timeout_millis / 1000):
                while h.queue_offset >= len(q):
                    await self.arrived.wait()
        if h.queue_offset >= len(q):
            return self._pull_reply(req, ResponseCode.PULL_NOT_FOUND, h.queue_offset, q)
        batch = q[h.queue_offset : h.queue_offset + h.max_msg_nums]
        body = b"".join(encode_record(m) for m in batch)
        return self._pull_reply(req, ResponseCode.SUCCESS, h.queue_offset + len(batch), q, body)

    def _pull_reply(
        self, req: RemotingCommand, code: int, nxt: int, q: list[Any], body: bytes = b""
    ) -> RemotingCommand:
        head = PullMessageResponseHeader(
            suggest_which_broker_id=0, next_begin_offset=nxt, min_offset=0, max_offset=len(q)
        )
        return req.reply(code, None, encode_header(head), body)

    async def on_query_offset(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(QueryConsumerOffsetRequestHeader, req.ext_fields)
        offset = self.offsets.get((h.consumer_group, h.topic, h.queue_id))
        if offset is None:
            if self.query_not_found:
                return req.reply(ResponseCode.QUERY_NOT_FOUND, "Not found")
            offset = 0  # §7.7: the first message is still "in memory"
        return req.reply(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    async def on_update_offset(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(UpdateConsumerOffsetRequestHeader, req.ext_fields)
        self.offsets[(h.consumer_group, h.topic, h.queue_id)] = h.commit_offset
        return req.reply(ResponseCode.SUCCESS)

    async def on_max_offset(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(GetMaxOffsetRequestHeader, req.ext_fields)
        return req.reply(
            ResponseCode.SUCCESS, None, {"offset": str(len(self.queue(h.topic, h.queue_id)))}
        )

    async def on_min_offset(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        decode_header(GetMinOffsetRequestHeader, req.ext_fields)
        return req.reply(ResponseCode.SUCCESS, None, {"offset": "0"})

    async def on_search_offset(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(SearchOffsetRequestHeader, req.ext_fields)
        q = self.queue(h.topic, h.queue_id)
        offset = next((m.queue_offset for m in q if m.store_timestamp >= h.timestamp), len(q))
        return req.reply(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    async def _notify(self, group: str) -> None:
        header = encode_header(NotifyConsumerIdsChangedRequestHeader(consumer_group=group))
        for conn in list(self.groups.get(group, {}).values()):
            cmd = RemotingCommand.request(
                RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, header, oneway=True
            )
            with contextlib.suppress(RemotingError):  # a closing peer: on_close removes it
                await conn.send_oneway(cmd)

    async def on_heartbeat(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        hb = decode_body(HeartbeatData, req.body)
        self.heartbeats.append(hb)
        if self.refuse_heartbeats is not None:
            return req.reply(self.refuse_heartbeats, "heartbeat refused (test)")
        for cd in hb.consumer_data_set:
            members = self.groups.setdefault(cd.group_name, {})
            self.ensure_topic(f"%RETRY%{cd.group_name}", 1)
            changed = hb.client_id not in members
            members[hb.client_id] = ctx.channel  # type: ignore[assignment]
            self.subscriptions[cd.group_name] = {s.topic: s for s in cd.subscription_data_set}
            if changed:
                await self._notify(cd.group_name)
        return req.reply(ResponseCode.SUCCESS)

    async def drop_client(self, client_id: str, group: str | None = None) -> None:
        for name, members in list(self.groups.items()):
            if (group is None or name == group) and members.pop(client_id, None) is not None:
                await self._notify(name)

    async def on_unregister(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(UnregisterClientRequestHeader, req.ext_fields)
        if h.consumer_group:
            await self.drop_client(h.client_id, h.consumer_group)
        return req.reply(ResponseCode.SUCCESS)

    def on_channel_close(self, channel: Channel) -> None:
        for name, members in self.groups.items():
            for cid, conn in list(members.items()):
                if conn is channel:
                    del members[cid]
                    self.closed_groups.send_nowait(name)

    async def on_consumer_list(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(GetConsumerListByGroupRequestHeader, req.ext_fields)
        ids = list(self.groups.get(h.consumer_group, {}))
        if not ids:
            return req.reply(
                ResponseCode.SYSTEM_ERROR, f"no consumer for this group, {h.consumer_group}"
            )
        body = encode_body(GetConsumerListByGroupResponseBody(consumer_id_list=tuple(ids)))
        return req.reply(ResponseCode.SUCCESS, None, None, body)

    async def on_lock(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        body = decode_body(LockBatchRequestBody, req.body)
        now = trio.current_time()
        granted = []
        for mq in body.mq_set:
            holder = self.locks.get((body.consumer_group, mq))
            if holder is None or holder[0] == body.client_id or now - holder[1] > LOCK_LIVE:
                self.locks[(body.consumer_group, mq)] = (body.client_id, now)
                granted.append(mq)
        reply = encode_body(LockBatchResponseBody(lock_ok_mq_set=tuple(granted)))
        return req.reply(ResponseCode.SUCCESS, None, None, reply)

    async def on_unlock(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        body = decode_body(UnlockBatchRequestBody, req.body)
        for mq in body.mq_set:
            holder = self.locks.get((body.consumer_group, mq))
            if holder is not None and holder[0] == body.client_id:
                del self.locks[(body.consumer_group, mq)]
        return req.reply(ResponseCode.SUCCESS)

    async def on_send_back(self, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(ConsumerSendMsgBackRequestHeader, req.ext_fields)
        self.send_backs.append(h)
        orig = self.by_phys.get(h.offset)
        if orig is None:
            return req.reply(
                ResponseCode.SYSTEM_ERROR, f"look message by offset failed, {h.offset}"
            )
        retry_topic = f"%RETRY%{h.group}"
        self.ensure_topic(retry_topic, 1)
        props = dict(orig.properties)
        props.setdefault(MessageConst.RETRY_TOPIC, orig.topic)
        props.setdefault(MessageConst.ORIGIN_MESSAGE_ID, h.origin_msg_id or orig.msg_id)
        self.put(
            attrs.evolve(
                orig,
                topic=retry_topic,
                queue_id=0,
                properties=props,
                reconsume_times=orig.reconsume_times + 1,
            )
        )
        return req.reply(ResponseCode.SUCCESS)


@attrs.define(eq=False)
class FakeNamesrv:
    brokers: list[FakeBroker]
    addr: str = ""
    route_requests: list[str] = attrs.Factory(list)

    def route(self, topic: str) -> TopicRouteData | None:
        holders = [b for b in self.brokers if topic in b.topics]
        if not holders and topic == "TBW102":
            holders = self.brokers
        if not holders:
            return None
        return TopicRouteData(
            queue_datas=tuple(
                QueueData(
                    broker_name=b.name,
                    read_queue_nums=b.topics.get(topic, 8),
                    write_queue_nums=b.topics.get(topic, 8),
                    perm=7 if topic == "TBW102" else 6,
                )
                for b in holders
            ),
            broker_datas=tuple(
                BrokerData(cluster=b.cluster, broker_name=b.name, broker_addrs={0: b.addr})
                for b in holders
            ),
        )

    def router(self) -> Router:
        r = Router("fake namesrv")

        async def on_route(ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
            h = decode_header(GetRouteInfoRequestHeader, req.ext_fields)
            self.route_requests.append(h.topic)
            route = self.route(h.topic)
            if route is None:
                return req.reply(
                    ResponseCode.TOPIC_NOT_EXIST,
                    f"No topic route info in name server for the topic: {h.topic}",
                )
            return req.reply(ResponseCode.SUCCESS, None, None, encode_body(route))

        r.register(RequestCode.GET_ROUTEINFO_BY_TOPIC, on_route)
        return r


async def _notifier(broker: FakeBroker) -> None:
    async for group in broker._closed_groups_rx:
        await broker._notify(group)


async def start_fake_cluster(
    nursery: trio.Nursery, *names: str
) -> tuple[FakeNamesrv, list[FakeBroker]]:
    brokers = []
    for name in names or ("broker-a",):
        broker = FakeBroker(name)
        handle = await nursery.start(
            functools.partial(
                remoting_server,
                broker.router(),
                host="127.0.0.1",
                name=name,
                on_close=broker.on_channel_close,
            )
        )
        broker.addr = handle.address
        broker.server = handle
        nursery.start_soon(_notifier, broker)
        brokers.append(broker)
    ns = FakeNamesrv(brokers)
    handle = await nursery.start(
        functools.partial(remoting_server, ns.router(), host="127.0.0.1", name="namesrv")
    )
    ns.addr = handle.address
    return ns, brokers
