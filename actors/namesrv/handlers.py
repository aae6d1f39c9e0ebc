"""NameServer request handlers (reference §9): decode, call RouteTable / KvTable, encode.

Each handler is thin: the rules live in state.py and kvconfig.py.  Handlers that only touch
memory are registered ``inline`` (the connection's reader awaits them directly); the KV
writes and UPDATE_NAMESRV_CONFIG wait for the disk and run as tasks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.namesrv.config import UPDATE_BLACKLIST, NamesrvConfig
from actors.namesrv.kvconfig import ORDER_TOPIC_CONFIG
from actors.namesrv.persister import KvStore
from actors.namesrv.state import FLAG_UNIT, FLAG_UNIT_SUB, Route, RouteTable, TopicQueues
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.bodies.common import DataVersion, KVTable, TopicList
from protocol.bodies.route import BrokerData, ClusterInfo, QueueData, TopicRouteData
from protocol.bodies.topic import (
    TopicConfig,
    TopicConfigSerializeWrapper,
    body_crc32,
    decode_register_broker_body,
)
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, decode_header, encode_body, encode_header
from protocol.headers.namesrv import (
    AddWritePermOfBrokerRequestHeader,
    AddWritePermOfBrokerResponseHeader,
    DeleteKVConfigRequestHeader,
    DeleteTopicFromNamesrvRequestHeader,
    GetKVConfigRequestHeader,
    GetKVConfigResponseHeader,
    GetKVListByNamespaceRequestHeader,
    GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader,
    PutKVConfigRequestHeader,
    QueryDataVersionRequestHeader,
    QueryDataVersionResponseHeader,
    RegisterBrokerRequestHeader,
    RegisterBrokerResponseHeader,
    UnRegisterBrokerRequestHeader,
    WipeWritePermOfBrokerRequestHeader,
    WipeWritePermOfBrokerResponseHeader,
)
from protocol.properties import (
    apply_properties,
    config_to_properties,
    format_properties,
    parse_properties,
)
from storage.json_store import save_text

log = logging.getLogger(__name__)

# MQVersion ordinals (reference §1.9).
V3_0_11 = 37  # from here on REGISTER_BROKER carries a RegisterBrokerBody
V4_9_4 = 401  # from here on route data is strictly valid JSON
FAQ_TOPIC = "\nSee http://rocketmq.apache.org/docs/faq/ for further details."


@attrs.define(eq=False)
class Namesrv:
    """Everything the handlers share; owned by the namesrv actor (app.py)."""

    config: NamesrvConfig
    routes: RouteTable
    kv: KvStore


NsHandler = Callable[[Namesrv, RequestContext, RemotingCommand], Awaitable[RemotingCommand]]


def _ok(req: RemotingCommand, *, header: Any = None, body: bytes = b"") -> RemotingCommand:
    ext = encode_header(header) if header is not None else None
    return req.reply(ResponseCode.SUCCESS, None, ext, body)


def _version_key(v: DataVersion) -> tuple[int, int]:
    return (v.timestamp, v.counter)


def _topic_queues(name: str, config: TopicConfig) -> TopicQueues:
    return TopicQueues(
        topic=config.topic_name or name,
        read_queue_nums=config.read_queue_nums,
        write_queue_nums=config.write_queue_nums,
        perm=config.perm,
        topic_sys_flag=config.topic_sys_flag,
    )


def route_data(route: Route, order_topic_conf: str | None) -> TopicRouteData:
    return TopicRouteData(
        queue_datas=tuple(
            QueueData(
                broker_name=q.broker_name,
                read_queue_nums=q.read_queue_nums,
                write_queue_nums=q.write_queue_nums,
                perm=q.perm,
                topic_sys_flag=q.topic_sys_flag,
            )
            for q in route.queues
        ),
        broker_datas=tuple(
            BrokerData(cluster=b.cluster, broker_name=b.broker_name, broker_addrs=dict(b.addrs))
            for b in route.brokers
        ),
        filter_server_table={addr: tuple(s) for addr, s in route.filter_servers.items()},
        order_topic_conf=order_topic_conf,
    )


def _topic_list(topics: list[str], broker_addr: str | None = None) -> bytes:
    return encode_body(TopicList(topic_list=tuple(topics), broker_addr=broker_addr))


# ---------------------------------------------------------------- brokers


async def register_broker(
    ns: Namesrv, ctx: RequestContext, req: RemotingCommand
) -> RemotingCommand:
    h = decode_header(RegisterBrokerRequestHeader, req.ext_fields)
    if h.body_crc32 != 0 and body_crc32(req.body) != h.body_crc32:
        raise RequestError(ResponseCode.SYSTEM_ERROR, "crc32 not match")
    if req.version >= V3_0_11:
        body = decode_register_broker_body(req.body, compressed=h.compressed)
        wrapper, filter_servers = body.topic_config_serialize_wrapper, body.filter_server_list
    else:
        wrapper = (
            decode_body(TopicConfigSerializeWrapper, req.body)
            if req.body
            else TopicConfigSerializeWrapper()
        )
        filter_servers = ()
    if h.broker_addr not in ns.routes.live:
        log.info(
            "new broker registered: %s %s (id %d, HA %s)",
            h.broker_name,
            h.broker_addr,
            h.broker_id,
            h.ha_server_addr,
        )
    result = ns.routes.register(
        cluster=h.cluster_name,
        broker_addr=h.broker_addr,
        broker_name=h.broker_name,
        broker_id=h.broker_id,
        ha_server_addr=h.ha_server_addr,
        data_version=_version_key(wrapper.data_version),
        topics=[_topic_queues(name, c) for name, c in wrapper.topic_config_table.items()],
        filter_servers=list(filter_servers),
        channel=ctx.channel,
        now=trio.current_time(),
    )
    order = ns.kv.table.namespace(ORDER_TOPIC_CONFIG)
    return _ok(
        req,
        header=RegisterBrokerResponseHeader(
            ha_server_addr=result.ha_server_addr, master_addr=result.master_addr
        ),
        body=encode_body(KVTable(table=order)) if order else b"",
    )


async def unregister_broker(
    ns: Namesrv, ctx: RequestContext, req: RemotingCommand
) -> RemotingCommand:
    h = decode_header(UnRegisterBrokerRequestHeader, req.ext_fields)
    ns.routes.unregister(
        cluster=h.cluster_name,
        broker_addr=h.broker_addr,
        broker_name=h.broker_name,
        broker_id=h.broker_id,
    )
    log.info("broker unregistered: %s %s (id %d)", h.broker_name, h.broker_addr, h.broker_id)
    return _ok(req)


async def query_data_version(
    ns: Namesrv, ctx: RequestContext, req: RemotingCommand
) -> RemotingCommand:
    h = decode_header(QueryDataVersionRequestHeader, req.ext_fields)
    if not req.body:
        raise RequestError(ResponseCode.SYSTEM_ERROR, "QUERY_DATA_VERSION needs a DataVersion body")
    version = decode_body(DataVersion, req.body)
    changed = ns.routes.query_data_version(
        h.broker_addr, _version_key(version), trio.current_time()
    )
    ours = ns.routes.data_version_of(h.broker_addr)
    body = encode_body(DataVersion(timestamp=ours[0], counter=ours[1])) if ours else b""
    return _ok(req, header=QueryDataVersionResponseHeader(changed=changed), body=body)


async def wipe_write_perm(
    ns: Namesrv, ctx: RequestContext, req: RemotingCommand
) -> RemotingCommand:
    h = decode_header(WipeWritePermOfBrokerRequestHeader, req.ext_fields)
    count = ns.routes.wipe_write_perm(h.broker_name)
    log.info("wiped write perm of broker %s in %d topics (from %s)", h.broker_name, count, ctx.peer)
    return _ok(req, header=WipeWritePermOfBrokerResponseHeader(wipe_topic_count=count))


async def add_write_perm(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    h = decode_header(AddWritePermOfBrokerRequestHeader, req.ext_fields)
    count = ns.routes.add_write_perm(h.broker_name)
    log.info("added write perm of broker %s in %d topics (from %s)", h.broker_name, count, ctx.peer)
    return _ok(req, header=AddWritePermOfBrokerResponseHeader(add_topic_count=count))


# ---------------------------------------------------------------- routes and topics


async def get_route(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    h = decode_header(GetRouteInfoRequestHeader, req.ext_fields)
    route = ns.routes.route(h.topic)
    if route is None:
        raise RequestError(
            ResponseCode.TOPIC_NOT_EXIST,
            f"No topic route info in name server for the topic: {h.topic}{FAQ_TOPIC}",
        )
    order = ns.kv.table.get(ORDER_TOPIC_CONFIG, h.topic) if ns.config.orderMessageEnable else None
    # Numeric map keys are always quoted: every Java client parses them (reference §3.4 #3)
    # and the C++ clients need them (clients README fact 14).  Standard mode adds the rest
    # of fastjson's BrowserCompatible behaviour.
    standard = req.version >= V4_9_4 or bool(h.accept_standard_json_only)
    return _ok(req, body=encode_body(route_data(route, order), browser_compatible=standard))


async def get_cluster_info(
    ns: Namesrv, ctx: RequestContext, req: RemotingCommand
) -> RemotingCommand:
    routes = ns.routes
    info = ClusterInfo(
        broker_addr_table={
            name: BrokerData(cluster=g.cluster, broker_name=name, broker_addrs=dict(g.addrs))
            for name, g in routes.brokers.items()
        },
        cluster_addr_table={c: tuple(sorted(names)) for c, names in routes.clusters.items()},
    )
    # Apache's namesrv writes brokerAddrs with bare integer keys here whatever the client's
    # version (only the route reply became strict JSON in 4.9.4); tools parse either form.
    return _ok(req, body=encode_body(info, bare_int_keys=True))


async def get_all_topics(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    return _ok(req, body=_topic_list(ns.routes.all_topics()))


async def get_topics_by_cluster(
    ns: Namesrv, ctx: RequestContext, req: RemotingCommand
) -> RemotingCommand:
    h = decode_header(GetTopicsByClusterRequestHeader, req.ext_fields)
    return _ok(req, body=_topic_list(ns.routes.topics_by_cluster(h.cluster)))


async def get_system_topics(
    ns: Namesrv, ctx: RequestContext, req: RemotingCommand
) -> RemotingCommand:
    topics, addr = ns.routes.system_topics()
    return _ok(req, body=_topic_list(topics, addr))


def _unit_topics(has: int, lacks: int = 0) -> NsHandler:
    async def handler(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
        return _ok(req, body=_topic_list(ns.routes.topics_with_sys_flag(has=has, lacks=lacks)))

    return handler


async def delete_topic(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    h = decode_header(DeleteTopicFromNamesrvRequestHeader, req.ext_fields)
    ns.routes.delete_topic(h.topic, h.cluster_name)
    log.info("topic %s deleted (cluster %s) by %s", h.topic, h.cluster_name or "*", ctx.peer)
    return _ok(req)


# ---------------------------------------------------------------- KV config


async def _persisted(ns: Namesrv, req: RemotingCommand) -> RemotingCommand:
    error = await ns.kv.wait_persisted()
    if error is not None:
        raise RequestError(
            ResponseCode.SYSTEM_ERROR, f"KV config changed but not persisted: {error}"
        )
    return _ok(req)


async def put_kv(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    h = decode_header(PutKVConfigRequestHeader, req.ext_fields)
    ns.kv.table.put(h.namespace, h.key, h.value)
    log.info("KV config put: %s/%s = %s (from %s)", h.namespace, h.key, h.value, ctx.peer)
    return await _persisted(ns, req)


async def delete_kv(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    h = decode_header(DeleteKVConfigRequestHeader, req.ext_fields)
    ns.kv.table.delete(h.namespace, h.key)
    log.info("KV config delete: %s/%s (from %s)", h.namespace, h.key, ctx.peer)
    return await _persisted(ns, req)


async def get_kv(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    h = decode_header(GetKVConfigRequestHeader, req.ext_fields)
    value = ns.kv.table.get(h.namespace, h.key)
    if value is None:
        raise RequestError(
            ResponseCode.QUERY_NOT_FOUND, f"No config item, Namespace: {h.namespace} Key: {h.key}"
        )
    return _ok(req, header=GetKVConfigResponseHeader(value=value))


async def get_kv_list(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    h = decode_header(GetKVListByNamespaceRequestHeader, req.ext_fields)
    entries = ns.kv.table.namespace(h.namespace)
    if entries is None:
        raise RequestError(
            ResponseCode.QUERY_NOT_FOUND, f"No config item, Namespace: {h.namespace}"
        )
    return _ok(req, body=encode_body(KVTable(table=entries)))


# ---------------------------------------------------------------- namesrv config


async def get_config(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    return _ok(req, body=format_properties(config_to_properties(ns.config)).encode())


async def update_config(ns: Namesrv, ctx: RequestContext, req: RemotingCommand) -> RemotingCommand:
    try:
        props = parse_properties(req.body.decode())
    except UnicodeDecodeError:
        raise RequestError(ResponseCode.SYSTEM_ERROR, "string2Properties error")
    if UPDATE_BLACKLIST & props.keys():
        raise RequestError(ResponseCode.NO_PERMISSION, "Can not update config in black list.")
    try:
        config, load = apply_properties(ns.config, props)
    except ValueError as exc:
        raise RequestError(ResponseCode.SYSTEM_ERROR, str(exc))
    for warning in load.warnings():
        log.warning("UPDATE_NAMESRV_CONFIG from %s: %s", ctx.peer, warning)
    ns.config = config
    log.info("namesrv config updated by %s: %s", ctx.peer, load.applied)
    text = format_properties(config_to_properties(config))
    try:
        await trio.to_thread.run_sync(save_text, Path(config.configStorePath), text)
    except OSError as exc:
        raise RequestError(ResponseCode.SYSTEM_ERROR, f"config updated but not persisted: {exc}")
    return _ok(req)


# ---------------------------------------------------------------- the table

_INLINE: dict[RequestCode, NsHandler] = {
    RequestCode.REGISTER_BROKER: register_broker,
    RequestCode.UNREGISTER_BROKER: unregister_broker,
    RequestCode.QUERY_DATA_VERSION: query_data_version,
    RequestCode.GET_ROUTEINFO_BY_TOPIC: get_route,
    RequestCode.GET_BROKER_CLUSTER_INFO: get_cluster_info,
    RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER: get_all_topics,
    RequestCode.GET_TOPICS_BY_CLUSTER: get_topics_by_cluster,
    RequestCode.GET_SYSTEM_TOPIC_LIST_FROM_NS: get_system_topics,
    RequestCode.GET_UNIT_TOPIC_LIST: _unit_topics(FLAG_UNIT),
    RequestCode.GET_HAS_UNIT_SUB_TOPIC_LIST: _unit_topics(FLAG_UNIT_SUB),
    RequestCode.GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: _unit_topics(FLAG_UNIT_SUB, FLAG_UNIT),
    RequestCode.WIPE_WRITE_PERM_OF_BROKER: wipe_write_perm,
    RequestCode.ADD_WRITE_PERM_OF_BROKER: add_write_perm,
    RequestCode.DELETE_TOPIC_IN_NAMESRV: delete_topic,
    RequestCode.GET_KV_CONFIG: get_kv,
    RequestCode.GET_KVLIST_BY_NAMESPACE: get_kv_list,
    RequestCode.GET_NAMESRV_CONFIG: get_config,
}
_WAITING: dict[RequestCode, NsHandler] = {
    RequestCode.PUT_KV_CONFIG: put_kv,
    RequestCode.DELETE_KV_CONFIG: delete_kv,
    RequestCode.UPDATE_NAMESRV_CONFIG: update_config,
}


def make_router(ns: Namesrv) -> Router:
    router = Router("namesrv")
    for code, handler in _INLINE.items():
        router.register(code, functools.partial(handler, ns), inline=True)
    for code, handler in _WAITING.items():
        router.register(code, functools.partial(handler, ns), limit=16)
    return router
