"""Offsets (§7.7), QUERY_MESSAGE / VIEW_MESSAGE_BY_ID (§7.11) and the admin basics."""

from __future__ import annotations

import json

import trio

from protocol import fastjson
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import decode_records
from protocol.msgid import decode_offset_msg_id
from protocol.properties import parse_properties
from tests.actors.broker.conftest import start_broker
from tests.actors.broker.wire import heartbeat, props, send_v2

T = 5


def req(code: RequestCode, body: bytes = b"", **ext: object) -> RemotingCommand:
    return RemotingCommand.request(code, {k: str(v) for k, v in ext.items()}, body)


async def _send(client, addr, topic, n, queue_id=0, keys=None):
    replies = []
    for i in range(n):
        reply = await client.invoke(
            addr,
            send_v2(topic, f"m{i}".encode(), queue_id=queue_id, properties=props(keys=keys)),
            T,
        )
        assert reply.code == ResponseCode.SUCCESS
        replies.append(reply)
    return replies


async def test_new_group_reads_from_zero_then_its_commit(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "O1", 3)
    query = req(RequestCode.QUERY_CONSUMER_OFFSET, consumerGroup="g", topic="O1", queueId=0)
    first = await client.invoke(addr, query, T)
    assert (first.code, first.ext_fields["offset"]) == (ResponseCode.SUCCESS, "0")
    update = req(
        RequestCode.UPDATE_CONSUMER_OFFSET, consumerGroup="g", topic="O1", queueId=0, commitOffset=2
    )
    assert (await client.invoke(addr, update, T)).code == ResponseCode.SUCCESS
    assert (await client.invoke(addr, query, T)).ext_fields["offset"] == "2"


async def test_queue_offsets_and_times(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "O2", 4)
    mx = await client.invoke(addr, req(RequestCode.GET_MAX_OFFSET, topic="O2", queueId=0), T)
    mn = await client.invoke(addr, req(RequestCode.GET_MIN_OFFSET, topic="O2", queueId=0), T)
    assert (mx.ext_fields["offset"], mn.ext_fields["offset"]) == ("4", "0")
    unknown = await client.invoke(addr, req(RequestCode.GET_MAX_OFFSET, topic="Nope", queueId=3), T)
    assert (unknown.code, unknown.ext_fields["offset"]) == (ResponseCode.SUCCESS, "0")
    earliest = await client.invoke(
        addr, req(RequestCode.GET_EARLIEST_MSG_STORETIME, topic="O2", queueId=0), T
    )
    stamp = int(earliest.ext_fields["timestamp"])
    assert stamp > 1_600_000_000_000
    search = await client.invoke(
        addr,
        req(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, topic="O2", queueId=0, timestamp=stamp - 1),
        T,
    )
    assert search.code == ResponseCode.SUCCESS
    assert search.ext_fields["offset"] == "0"


async def test_offsets_persisted_on_stop(nursery, tmp_path, client):
    handle = await start_broker(nursery, tmp_path / "p")
    update = req(
        RequestCode.UPDATE_CONSUMER_OFFSET, consumerGroup="g", topic="T", queueId=1, commitOffset=7
    )
    await client.invoke(handle.address, update, T)
    handle.stop()
    await handle.stopped.wait()
    text = (tmp_path / "p" / "config" / "consumerOffset.json").read_text()
    assert fastjson.loads(text) == {"offsetTable": {"T@g": {1: 7}}}
    assert not (tmp_path / "p" / "abort").exists()


async def test_query_by_key_and_view_by_id(broker_handle, client):
    addr = broker_handle.address
    [sent] = await _send(client, addr, "Q1", 1, keys="order-42")
    query = RemotingCommand.request(
        RequestCode.QUERY_MESSAGE,
        {
            "topic": "Q1",
            "key": "order-42",
            "maxNum": "32",
            "beginTimestamp": "0",
            "endTimestamp": str(2**62),
        },
    )
    found = await client.invoke(addr, query, T)
    assert found.code == ResponseCode.SUCCESS, found.remark
    [msg] = decode_records(found.body)
    assert msg.keys == ["order-42"]
    assert int(found.ext_fields["indexLastUpdatePhyoffset"]) >= 0
    missing = RemotingCommand.request(
        RequestCode.QUERY_MESSAGE, {**query.ext_fields, "key": "nope"}
    )
    assert (await client.invoke(addr, missing, T)).code == ResponseCode.QUERY_NOT_FOUND
    _, offset = decode_offset_msg_id(sent.ext_fields["msgId"])
    view = await client.invoke(addr, req(RequestCode.VIEW_MESSAGE_BY_ID, offset=offset), T)
    assert view.code == ResponseCode.SUCCESS
    assert decode_records(view.body)[0].msg_id == sent.ext_fields["msgId"]
    bad = await client.invoke(addr, req(RequestCode.VIEW_MESSAGE_BY_ID, offset=offset + 10**9), T)
    assert bad.code == ResponseCode.SYSTEM_ERROR


async def test_topic_admin_round_trip_and_registration(broker_handle, client, namesrv_addr):
    addr = broker_handle.address
    create = req(
        RequestCode.UPDATE_AND_CREATE_TOPIC,
        topic="AdminT",
        defaultTopic="TBW102",
        readQueueNums=2,
        writeQueueNums=2,
        perm=6,
        topicFilterType="SINGLE_TAG",
        order="false",
    )
    assert (await client.invoke(addr, create, T)).code == ResponseCode.SUCCESS
    conflict = req(
        RequestCode.UPDATE_AND_CREATE_TOPIC, **{**create.ext_fields, "topic": "SELF_TEST_TOPIC"}
    )
    assert (await client.invoke(addr, conflict, T)).code == ResponseCode.SYSTEM_ERROR
    table = json.loads((await client.invoke(addr, req(RequestCode.GET_ALL_TOPIC_CONFIG), T)).body)
    assert table["topicConfigTable"]["AdminT"]["writeQueueNums"] == 2
    # the change is re-registered at once: the name server routes the new topic
    route = None
    for _ in range(50):
        route = await client.invoke(
            namesrv_addr, req(RequestCode.GET_ROUTEINFO_BY_TOPIC, topic="AdminT"), T
        )
        if route.code == ResponseCode.SUCCESS:
            break
        await trio.sleep(0.02)
    assert route.code == ResponseCode.SUCCESS
    await _send(client, addr, "AdminT", 2, queue_id=1)
    stats = fastjson.loads(
        (await client.invoke(addr, req(RequestCode.GET_TOPIC_STATS_INFO, topic="AdminT"), T)).body
    )
    maxes = {
        key.to_dict()["queueId"]: value["maxOffset"] for key, value in stats["offsetTable"].items()
    }
    assert maxes == {0: 0, 1: 2}
    delete = await client.invoke(addr, req(RequestCode.DELETE_TOPIC_IN_BROKER, topic="AdminT"), T)
    assert delete.code == ResponseCode.SUCCESS
    assert broker_handle.ctx.topics.get("AdminT") is None


async def test_consume_stats_connections_runtime_and_config(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "S1", 3)
    await client.invoke(addr, heartbeat("cid-1", "SG", ["S1"]), T)
    update = req(
        RequestCode.UPDATE_CONSUMER_OFFSET,
        consumerGroup="SG",
        topic="S1",
        queueId=0,
        commitOffset=1,
    )
    await client.invoke(addr, update, T)
    stats = fastjson.loads(
        (await client.invoke(addr, req(RequestCode.GET_CONSUME_STATS, consumerGroup="SG"), T)).body
    )
    q0 = next(v for k, v in stats["offsetTable"].items() if k.to_dict()["queueId"] == 0)
    assert (q0["brokerOffset"], q0["consumerOffset"]) == (3, 1)
    conns = json.loads(
        (
            await client.invoke(
                addr, req(RequestCode.GET_CONSUMER_CONNECTION_LIST, consumerGroup="SG"), T
            )
        ).body
    )
    assert [c["clientId"] for c in conns["connectionSet"]] == ["cid-1"]
    assert conns["messageModel"] == "CLUSTERING"
    offline = await client.invoke(
        addr, req(RequestCode.GET_CONSUMER_CONNECTION_LIST, consumerGroup="none"), T
    )
    assert offline.code == ResponseCode.CONSUMER_NOT_ONLINE
    producers = json.loads(
        (
            await client.invoke(
                addr, req(RequestCode.GET_PRODUCER_CONNECTION_LIST, producerGroup="SG"), T
            )
        ).body
    )
    assert producers["connectionSet"][0]["language"] == "JAVA"
    runtime = json.loads(
        (await client.invoke(addr, req(RequestCode.GET_BROKER_RUNTIME_INFO), T)).body
    )["table"]
    assert runtime["msgPutTotalTodayNow"] == "3"
    assert runtime["putMessageTimesTotal"] == "3"
    assert runtime["commitLogDirCapacity"].startswith("Total : ")
    assert int(runtime["earliestMessageTimeStamp"]) > 1_600_000_000_000
    assert len(runtime["putTps"].split()) == 3
    config = await client.invoke(addr, req(RequestCode.GET_BROKER_CONFIG), T)
    props_text = parse_properties(config.body.decode())
    assert props_text["brokerName"] == "broker-a"
    assert props_text["flushDiskType"] == "ASYNC_FLUSH"
    group = json.dumps({"groupName": "NewG", "retryMaxTimes": 3}).encode()
    assert (
        await client.invoke(addr, req(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, group), T)
    ).code == 0
    assert broker_handle.ctx.groups.get("NewG").retry_max_times == 3


async def test_unknown_code_is_not_supported(broker_handle, client):
    reply = await client.invoke(broker_handle.address, req(9999), T)
    assert reply.code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED


async def test_who_consumes_a_topic_and_system_topics(broker_handle, client):
    addr = broker_handle.address
    await client.invoke(addr, heartbeat("c", "LiveG", ["W"]), T)
    commit = req(
        RequestCode.UPDATE_CONSUMER_OFFSET,
        consumerGroup="OldG",
        topic="W",
        queueId=0,
        commitOffset=1,
    )
    await client.invoke(addr, commit, T)
    who = await client.invoke(addr, req(RequestCode.QUERY_TOPIC_CONSUME_BY_WHO, topic="W"), T)
    assert json.loads(who.body) == {"groupList": ["LiveG", "OldG"]}
    system = await client.invoke(addr, req(RequestCode.GET_SYSTEM_TOPIC_LIST_FROM_BROKER), T)
    assert {"TBW102", "SCHEDULE_TOPIC_XXXX", "broker-a"} <= set(
        json.loads(system.body)["topicList"]
    )
