"""The name server request by request, over loopback with the project's remoting client."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import attrs
import pytest
import trio

from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.client import RemotingClient, open_remoting_client
from protocol import fastjson
from protocol.bodies.common import DataVersion, KVTable, TopicList
from protocol.bodies.route import ClusterInfo, TopicRouteData
from protocol.bodies.topic import (
    RegisterBrokerBody,
    TopicConfig,
    TopicConfigSerializeWrapper,
    body_crc32,
    encode_register_broker_body,
)
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, encode_body, encode_header
from protocol.headers.namesrv import (
    RegisterBrokerRequestHeader,
    UnRegisterBrokerRequestHeader,
)
from protocol.properties import parse_properties

TIMEOUT = 5.0
A0 = "127.0.0.1:10911"
A1 = "127.0.0.2:10911"
B0 = "127.0.0.3:10911"


def read_text(path: str) -> str:
    return Path(path).read_text()


def topics(*names: str, queues: int = 4, sys_flag: int = 0) -> dict[str, TopicConfig]:
    return {
        n: TopicConfig(
            topic_name=n, read_queue_nums=queues, write_queue_nums=queues, topic_sys_flag=sys_flag
        )
        for n in names
    }


def register_cmd(
    addr: str,
    *,
    name: str = "broker-a",
    broker_id: int = 0,
    cluster: str = "DefaultCluster",
    table: dict[str, TopicConfig] | None = None,
    version: DataVersion = DataVersion(timestamp=1700000000000, counter=1),  # noqa: B008
    filters: tuple[str, ...] = (),
    compressed: bool = False,
    crc: int | None = None,
) -> RemotingCommand:
    body = encode_register_broker_body(
        RegisterBrokerBody(
            topic_config_serialize_wrapper=TopicConfigSerializeWrapper(
                topic_config_table=table or {}, data_version=version
            ),
            filter_server_list=filters,
        ),
        compressed=compressed,
    )
    header = RegisterBrokerRequestHeader(
        broker_name=name,
        broker_addr=addr,
        cluster_name=cluster,
        ha_server_addr=addr.replace("10911", "10912"),
        broker_id=broker_id,
        compressed=compressed,
        body_crc32=body_crc32(body) if crc is None else crc,
    )
    return RemotingCommand.request(RequestCode.REGISTER_BROKER, encode_header(header), body)


async def call(
    client: RemotingClient,
    addr: str,
    code: int,
    ext: dict[str, str] | None = None,
    body: bytes = b"",
) -> RemotingCommand:
    return await client.invoke(addr, RemotingCommand.request(code, ext or {}, body), TIMEOUT)


async def route(client: RemotingClient, addr: str, topic: str) -> TopicRouteData | None:
    reply = await call(client, addr, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
    if reply.code == ResponseCode.TOPIC_NOT_EXIST:
        return None
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    return decode_body(TopicRouteData, reply.body)


async def ok(client: RemotingClient, addr: str, cmd: RemotingCommand) -> RemotingCommand:
    reply = await client.invoke(addr, cmd, TIMEOUT)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    return reply


async def test_unknown_topic_is_topic_not_exist(namesrv_addr: str, client: RemotingClient) -> None:
    reply = await call(client, namesrv_addr, RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "Nope"})
    assert reply.code == ResponseCode.TOPIC_NOT_EXIST
    assert reply.remark is not None
    assert reply.remark.startswith("No topic route info in name server for the topic: Nope")
    assert reply.body == b""


async def test_register_then_route(namesrv_addr: str, client: RemotingClient) -> None:
    reply = await ok(client, namesrv_addr, register_cmd(A0, table=topics("T1", "T2")))
    assert reply.ext_fields == {}  # a master gets no master/HA address
    assert reply.body == b""  # no ORDER_TOPIC_CONFIG entries
    data = await route(client, namesrv_addr, "T1")
    assert data is not None
    assert [
        (q.broker_name, q.read_queue_nums, q.write_queue_nums, q.perm) for q in data.queue_datas
    ] == [("broker-a", 4, 4, 6)]
    assert [(b.cluster, b.broker_name, b.broker_addrs) for b in data.broker_datas] == [
        ("DefaultCluster", "broker-a", {0: A0})
    ]
    assert data.filter_server_table == {}
    assert data.order_topic_conf is None


@pytest.mark.parametrize("version", [333, 395, 409])
async def test_route_body_uses_quoted_broker_ids(
    namesrv_addr: str, client: RemotingClient, version: int
) -> None:
    await ok(client, namesrv_addr, register_cmd(A0, table=topics("T1")))
    req = RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": "T1"})

    reply = await ok(client, namesrv_addr, attrs.evolve(req, version=version))
    doc = json.loads(reply.body)  # strictly valid JSON for every client version
    assert doc["brokerDatas"][0]["brokerAddrs"] == {"0": A0}
    assert doc["filterServerTable"] == {}
    assert list(doc) == sorted(doc)


@pytest.mark.parametrize(
    ("version", "accept_standard", "escaped"),
    [(333, None, False), (333, "true", True), (401, None, True), (409, "false", True)],
)
async def test_standard_json_mode_escapes_non_ascii(
    namesrv_addr: str,
    client: RemotingClient,
    version: int,
    accept_standard: str | None,
    escaped: bool,
) -> None:
    await ok(client, namesrv_addr, register_cmd(A0, cluster="集群", table=topics("T1")))
    ext = {"topic": "T1"}
    if accept_standard is not None:
        ext["acceptStandardJsonOnly"] = accept_standard
    req = RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, ext)
    reply = await ok(client, namesrv_addr, attrs.evolve(req, version=version))
    assert (b"\\u96c6\\u7fa4" in reply.body) is escaped
    assert json.loads(reply.body)["brokerDatas"][0]["cluster"] == "集群"


async def test_slave_learns_master_and_ha_address(
    namesrv_addr: str, client: RemotingClient
) -> None:
    reply = await ok(client, namesrv_addr, register_cmd(A1, broker_id=1))
    assert reply.ext_fields == {}  # master not registered yet
    await ok(client, namesrv_addr, register_cmd(A0, table=topics("T1")))
    reply = await ok(client, namesrv_addr, register_cmd(A1, broker_id=1, table=topics("SlaveOnly")))
    assert reply.ext_fields == {"masterAddr": A0, "haServerAddr": "127.0.0.1:10912"}
    data = await route(client, namesrv_addr, "T1")
    assert data is not None
    assert data.broker_datas[0].broker_addrs == {0: A0, 1: A1}
    assert await route(client, namesrv_addr, "SlaveOnly") is None


async def test_register_body_crc_and_forms(namesrv_addr: str, client: RemotingClient) -> None:
    reply = await client.invoke(
        namesrv_addr, register_cmd(A0, table=topics("T1"), crc=12345), TIMEOUT
    )
    assert (reply.code, reply.remark) == (ResponseCode.SYSTEM_ERROR, "crc32 not match")
    assert await route(client, namesrv_addr, "T1") is None
    # crc 0 means "not checked".
    await ok(client, namesrv_addr, register_cmd(A0, table=topics("T0"), crc=0))
    await ok(
        client, namesrv_addr, register_cmd(B0, name="broker-b", table=topics("TZ"), compressed=True)
    )
    data = await route(client, namesrv_addr, "TZ")
    assert data is not None
    assert data.queue_datas[0].broker_name == "broker-b"


async def test_register_from_an_old_broker_carries_a_bare_wrapper(
    namesrv_addr: str, client: RemotingClient
) -> None:

    wrapper = TopicConfigSerializeWrapper(topic_config_table=topics("Old"))
    header = RegisterBrokerRequestHeader(
        broker_name="broker-a",
        broker_addr=A0,
        cluster_name="C",
        ha_server_addr="",
        broker_id=0,
    )
    req = RemotingCommand.request(
        RequestCode.REGISTER_BROKER, encode_header(header), encode_body(wrapper)
    )
    await ok(client, namesrv_addr, attrs.evolve(req, version=36))
    assert await route(client, namesrv_addr, "Old") is not None


async def test_register_without_body(namesrv_addr: str, client: RemotingClient) -> None:
    cmd = register_cmd(A0)

    await ok(
        client,
        namesrv_addr,
        attrs.evolve(cmd, body=b"", ext_fields={**cmd.ext_fields, "bodyCrc32": "0"}),
    )
    reply = await ok(
        client, namesrv_addr, RemotingCommand.request(RequestCode.GET_BROKER_CLUSTER_INFO)
    )
    info = decode_body(ClusterInfo, reply.body)
    assert info.broker_addr_table["broker-a"].broker_addrs == {0: A0}


async def test_missing_header_field_is_system_error(
    namesrv_addr: str, client: RemotingClient
) -> None:
    reply = await call(client, namesrv_addr, RequestCode.REGISTER_BROKER, {"brokerName": "x"})
    assert reply.code == ResponseCode.SYSTEM_ERROR
    assert "brokerAddr" in (reply.remark or "")


async def test_unregister_removes_the_route(namesrv_addr: str, client: RemotingClient) -> None:
    await ok(client, namesrv_addr, register_cmd(A0, table=topics("T1")))
    header = UnRegisterBrokerRequestHeader(
        broker_name="broker-a", broker_addr=A0, cluster_name="DefaultCluster", broker_id=0
    )
    await ok(
        client,
        namesrv_addr,
        RemotingCommand.request(RequestCode.UNREGISTER_BROKER, encode_header(header)),
    )
    assert await route(client, namesrv_addr, "T1") is None


async def test_closed_broker_connection_removes_its_routes(
    namesrv_addr: str, client: RemotingClient
) -> None:
    async with open_remoting_client(name="broker-b") as broker_b:
        await ok(broker_b, namesrv_addr, register_cmd(B0, name="broker-b", table=topics("T1")))
        await ok(client, namesrv_addr, register_cmd(A0, table=topics("T1")))  # another connection
        data = await route(client, namesrv_addr, "T1")
        assert data is not None
        assert len(data.broker_datas) == 2
    with trio.fail_after(TIMEOUT):
        while True:
            data = await route(client, namesrv_addr, "T1")
            assert data is not None
            if [b.broker_name for b in data.broker_datas] == ["broker-a"]:
                break
            await trio.sleep(0.01)


async def test_cluster_and_topic_lists(namesrv_addr: str, client: RemotingClient) -> None:
    await ok(client, namesrv_addr, register_cmd(A0, cluster="C1", table=topics("T1", "Both")))
    await ok(
        client, namesrv_addr, register_cmd(B0, name="broker-b", cluster="C2", table=topics("Both"))
    )
    await ok(client, namesrv_addr, register_cmd(A1, name="broker-a", broker_id=1, cluster="C1"))

    reply = await call(client, namesrv_addr, RequestCode.GET_BROKER_CLUSTER_INFO)
    info = decode_body(ClusterInfo, reply.body)
    assert {c: set(n) for c, n in info.cluster_addr_table.items()} == {
        "C1": {"broker-a"},
        "C2": {"broker-b"},
    }
    assert info.broker_addr_table["broker-a"].broker_addrs == {0: A0, 1: A1}
    # Bare integer keys, byte for byte what Apache's namesrv writes for cluster info.
    assert b'"brokerAddrs":{0:"' in reply.body
    assert fastjson.loads(reply.body)["brokerAddrTable"]["broker-a"]["brokerAddrs"] == {
        0: A0,
        1: A1,
    }

    reply = await call(client, namesrv_addr, RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
    assert sorted(decode_body(TopicList, reply.body).topic_list) == ["Both", "T1"]

    reply = await call(client, namesrv_addr, RequestCode.GET_TOPICS_BY_CLUSTER, {"cluster": "C2"})
    assert decode_body(TopicList, reply.body).topic_list == ("Both",)

    reply = await call(client, namesrv_addr, RequestCode.GET_SYSTEM_TOPIC_LIST_FROM_NS)
    system = decode_body(TopicList, reply.body)
    assert sorted(system.topic_list) == ["C1", "C2", "broker-a", "broker-b"]
    assert system.broker_addr in (A0, A1, B0)


async def test_unit_topic_lists(namesrv_addr: str, client: RemotingClient) -> None:
    table = {
        **topics("plain"),
        **topics("unit", sys_flag=1),
        **topics("sub", sys_flag=2),
        **topics("both", sys_flag=3),
    }
    await ok(client, namesrv_addr, register_cmd(A0, table=table))
    expected = {
        RequestCode.GET_UNIT_TOPIC_LIST: ["both", "unit"],
        RequestCode.GET_HAS_UNIT_SUB_TOPIC_LIST: ["both", "sub"],
        RequestCode.GET_HAS_UNIT_SUB_UNUNIT_TOPIC_LIST: ["sub"],
    }
    for code, names in expected.items():
        reply = await call(client, namesrv_addr, code)
        assert sorted(decode_body(TopicList, reply.body).topic_list) == names


async def test_write_perm_wipe_and_add(namesrv_addr: str, client: RemotingClient) -> None:
    await ok(client, namesrv_addr, register_cmd(A0, table=topics("T1", "T2")))
    reply = await call(
        client, namesrv_addr, RequestCode.WIPE_WRITE_PERM_OF_BROKER, {"brokerName": "broker-a"}
    )
    assert reply.ext_fields == {"wipeTopicCount": "2"}
    data = await route(client, namesrv_addr, "T1")
    assert data is not None
    assert data.queue_datas[0].perm == 4
    reply = await call(
        client, namesrv_addr, RequestCode.ADD_WRITE_PERM_OF_BROKER, {"brokerName": "broker-a"}
    )
    assert reply.ext_fields == {"addTopicCount": "2"}
    data = await route(client, namesrv_addr, "T1")
    assert data is not None
    assert data.queue_datas[0].perm == 6


async def test_delete_topic(namesrv_addr: str, client: RemotingClient) -> None:
    await ok(client, namesrv_addr, register_cmd(A0, cluster="C1", table=topics("T1")))
    await ok(
        client, namesrv_addr, register_cmd(B0, name="broker-b", cluster="C2", table=topics("T1"))
    )
    await ok(
        client,
        namesrv_addr,
        RemotingCommand.request(
            RequestCode.DELETE_TOPIC_IN_NAMESRV, {"topic": "T1", "clusterName": "C1"}
        ),
    )
    data = await route(client, namesrv_addr, "T1")
    assert data is not None
    assert [q.broker_name for q in data.queue_datas] == ["broker-b"]
    await ok(
        client,
        namesrv_addr,
        RemotingCommand.request(RequestCode.DELETE_TOPIC_IN_NAMESRV, {"topic": "T1"}),
    )
    assert await route(client, namesrv_addr, "T1") is None


async def test_query_data_version(namesrv_addr: str, client: RemotingClient) -> None:
    v1 = DataVersion(timestamp=1700000000000, counter=3)
    await ok(client, namesrv_addr, register_cmd(A0, version=v1))
    ext = {
        "brokerName": "broker-a",
        "brokerAddr": A0,
        "clusterName": "DefaultCluster",
        "brokerId": "0",
    }
    reply = await call(client, namesrv_addr, RequestCode.QUERY_DATA_VERSION, ext, encode_body(v1))
    assert reply.code == ResponseCode.SUCCESS
    assert reply.ext_fields == {"changed": "false"}
    assert decode_body(DataVersion, reply.body) == v1
    v2 = DataVersion(timestamp=1700000000001, counter=4)
    reply = await call(client, namesrv_addr, RequestCode.QUERY_DATA_VERSION, ext, encode_body(v2))
    assert reply.ext_fields == {"changed": "true"}
    reply = await call(client, namesrv_addr, RequestCode.QUERY_DATA_VERSION, ext)
    assert reply.code == ResponseCode.SYSTEM_ERROR


async def test_kv_config(
    namesrv_addr: str, client: RemotingClient, ns_config: NamesrvConfig
) -> None:
    put = {"namespace": "NS", "key": "k", "value": "v"}
    await ok(client, namesrv_addr, RemotingCommand.request(RequestCode.PUT_KV_CONFIG, put))
    on_disk = json.loads(read_text(ns_config.kvConfigPath))
    assert on_disk == {"configTable": {"NS": {"k": "v"}}}

    reply = await call(
        client, namesrv_addr, RequestCode.GET_KV_CONFIG, {"namespace": "NS", "key": "k"}
    )
    assert (reply.code, reply.ext_fields) == (ResponseCode.SUCCESS, {"value": "v"})
    reply = await call(
        client, namesrv_addr, RequestCode.GET_KV_CONFIG, {"namespace": "NS", "key": "x"}
    )
    assert (reply.code, reply.remark) == (
        ResponseCode.QUERY_NOT_FOUND,
        "No config item, Namespace: NS Key: x",
    )
    reply = await call(
        client, namesrv_addr, RequestCode.GET_KVLIST_BY_NAMESPACE, {"namespace": "NS"}
    )
    assert decode_body(KVTable, reply.body).table == {"k": "v"}
    reply = await call(
        client, namesrv_addr, RequestCode.GET_KVLIST_BY_NAMESPACE, {"namespace": "NO"}
    )
    assert reply.code == ResponseCode.QUERY_NOT_FOUND

    await ok(
        client,
        namesrv_addr,
        RemotingCommand.request(RequestCode.DELETE_KV_CONFIG, {"namespace": "NS", "key": "k"}),
    )
    reply = await call(
        client, namesrv_addr, RequestCode.GET_KV_CONFIG, {"namespace": "NS", "key": "k"}
    )
    assert reply.code == ResponseCode.QUERY_NOT_FOUND
    assert json.loads(read_text(ns_config.kvConfigPath)) == {"configTable": {}}

    reply = await call(client, namesrv_addr, RequestCode.PUT_KV_CONFIG, {"namespace": "NS"})
    assert reply.code == ResponseCode.SYSTEM_ERROR


async def test_kv_config_survives_restart(ns_config: NamesrvConfig, client: RemotingClient) -> None:
    for round_ in range(2):
        async with trio.open_nursery() as nursery:
            addr = await nursery.start(functools.partial(namesrv, ns_config, host="127.0.0.1"))
            if round_ == 0:
                put = {"namespace": "NS", "key": "k", "value": "v"}
                await ok(client, addr, RemotingCommand.request(RequestCode.PUT_KV_CONFIG, put))
            else:
                reply = await call(
                    client, addr, RequestCode.GET_KV_CONFIG, {"namespace": "NS", "key": "k"}
                )
                assert reply.ext_fields == {"value": "v"}
            nursery.cancel_scope.cancel()


async def test_order_topic_config(
    nursery: trio.Nursery, ns_config: NamesrvConfig, client: RemotingClient
) -> None:

    config = attrs.evolve(ns_config, orderMessageEnable=True)
    addr = await nursery.start(functools.partial(namesrv, config, host="127.0.0.1"))
    put = {"namespace": "ORDER_TOPIC_CONFIG", "key": "T1", "value": "broker-a:4"}
    await ok(client, addr, RemotingCommand.request(RequestCode.PUT_KV_CONFIG, put))
    reply = await ok(client, addr, register_cmd(A0, table=topics("T1", "T2")))
    assert decode_body(KVTable, reply.body).table == {"T1": "broker-a:4"}
    data = await route(client, addr, "T1")
    assert data is not None
    assert data.order_topic_conf == "broker-a:4"
    data = await route(client, addr, "T2")
    assert data is not None
    assert data.order_topic_conf is None


async def test_order_topic_conf_off_by_default(namesrv_addr: str, client: RemotingClient) -> None:
    put = {"namespace": "ORDER_TOPIC_CONFIG", "key": "T1", "value": "broker-a:4"}
    await ok(client, namesrv_addr, RemotingCommand.request(RequestCode.PUT_KV_CONFIG, put))
    await ok(client, namesrv_addr, register_cmd(A0, table=topics("T1")))
    data = await route(client, namesrv_addr, "T1")
    assert data is not None
    assert data.order_topic_conf is None


async def test_namesrv_config_get_and_update(
    namesrv_addr: str, client: RemotingClient, ns_config: NamesrvConfig
) -> None:
    reply = await call(client, namesrv_addr, RequestCode.GET_NAMESRV_CONFIG)
    props = parse_properties(reply.body.decode())
    assert props["orderMessageEnable"] == "false"
    assert props["kvConfigPath"] == ns_config.kvConfigPath

    reply = await call(
        client, namesrv_addr, RequestCode.UPDATE_NAMESRV_CONFIG, body=b"kvConfigPath=/tmp/x\n"
    )
    assert (reply.code, reply.remark) == (
        ResponseCode.NO_PERMISSION,
        "Can not update config in black list.",
    )
    reply = await call(
        client, namesrv_addr, RequestCode.UPDATE_NAMESRV_CONFIG, body=b"orderMessageEnable=maybe\n"
    )
    assert reply.code == ResponseCode.SYSTEM_ERROR

    await ok(
        client,
        namesrv_addr,
        RemotingCommand.request(
            RequestCode.UPDATE_NAMESRV_CONFIG, body=b"orderMessageEnable=true\n"
        ),
    )
    reply = await call(client, namesrv_addr, RequestCode.GET_NAMESRV_CONFIG)
    assert parse_properties(reply.body.decode())["orderMessageEnable"] == "true"
    stored = parse_properties(read_text(ns_config.configStorePath))
    assert stored["orderMessageEnable"] == "true"


async def test_unknown_request_code_is_not_supported(
    namesrv_addr: str, client: RemotingClient
) -> None:
    reply = await call(client, namesrv_addr, RequestCode.SEND_MESSAGE_V2)
    assert reply.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
    reply = await call(client, namesrv_addr, 9999)
    assert reply.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
