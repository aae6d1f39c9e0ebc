"""Send-back, dead letter and delayed delivery: the stored messages, Apache's broker vs ours.

The same raw requests go to each target (``apache`` = Apache RocketMQ from Maven Central,
``ours`` = apps/broker.py), and the records they end up storing are compared field by field with
one expectation: what Apache does is what ours must do (RETRY_TOPIC, ORIGIN_MESSAGE_ID, the
DELAY and WAIT left in the properties, REAL_TOPIC/REAL_QID after a delay, reconsumeTimes).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import MessageExt, decode_records, properties_to_string
from protocol.msgid import decode_offset_msg_id
from tests.compat.raw import RawConnection, connect
from tests.compat.servers import CLUSTER, Names, Target

pytestmark = [pytest.mark.compat, pytest.mark.java]

UNIQ = "7F00000100002A9F0000000000000001"


def request(code: RequestCode, ext: dict[str, Any], body: bytes = b"") -> RemotingCommand:
    return RemotingCommand.request(code, {k: str(v) for k, v in ext.items()}, body)


def send(topic: str, properties: dict[str, str]) -> RemotingCommand:
    return request(
        RequestCode.SEND_MESSAGE_V2,
        {
            "a": "p_send_back",
            "b": topic,
            "c": "TBW102",
            "d": 4,
            "e": 0,
            "f": 0,
            "g": int(time.time() * 1000),
            "h": 5,
            "i": properties_to_string(properties),
            "j": 0,
            "k": "false",
            "m": "false",
        },
        b"body",
    )


async def pull_one(
    conn: RawConnection, topic: str, group: str, seconds: float = 15.0
) -> MessageExt:
    """The first message of ``topic`` queue 0, waiting for it to be delivered there."""
    pull = request(
        RequestCode.PULL_MESSAGE,
        {
            "consumerGroup": group,
            "topic": topic,
            "queueId": 0,
            "queueOffset": 0,
            "maxMsgNums": 32,
            "sysFlag": 4,
            "commitOffset": 0,
            "suspendTimeoutMillis": 0,
            "subscription": "*",
            "subVersion": 0,
            "expressionType": "TAG",
        },
    )
    with trio.fail_after(seconds):
        while True:
            reply = await conn.call(pull)
            if reply.code == ResponseCode.SUCCESS:
                return decode_records(reply.body)[0]
            await trio.sleep(0.2)


async def send_back(
    conn: RawConnection, msg: MessageExt, group: str, level: int
) -> RemotingCommand:
    return await conn.call(
        request(
            RequestCode.CONSUMER_SEND_MSG_BACK,
            {
                "offset": msg.commit_log_offset,
                "group": group,
                "delayLevel": level,
                "originMsgId": UNIQ,
                "originTopic": msg.properties.get("RETRY_TOPIC", msg.topic),
                "maxReconsumeTimes": 16,
                "unitMode": "false",
            },
        )
    )


def observed(msg: MessageExt, original_msg_id: str) -> dict[str, Any]:
    props = dict(msg.properties)
    if props.get("ORIGIN_MESSAGE_ID") == original_msg_id:
        props["ORIGIN_MESSAGE_ID"] = "<offset msg id of the original>"
    return {
        "topic": msg.topic,
        "queue_id": msg.queue_id,
        "flag": msg.flag,
        "reconsume_times": msg.reconsume_times,
        "properties": props,
    }


async def scenario(target: Target, names: Names) -> dict[str, dict[str, Any]]:
    topic, group = names.topic, names.group
    out = {}
    async with connect(target.broker_addr) as conn:
        sent = await conn.call(
            send(topic, {"UNIQ_KEY": UNIQ, "TAGS": "TagA", "KEYS": "k1", "WAIT": "true"})
        )
        assert sent.code == ResponseCode.SUCCESS, sent.remark
        original_id = sent.ext_fields["msgId"]
        original = await pull_one(conn, topic, group)
        assert original.commit_log_offset == decode_offset_msg_id(original_id)[1]

        reply = await send_back(conn, original, group, 1)
        assert reply.code == ResponseCode.SUCCESS, reply.remark
        retry = await pull_one(conn, f"%RETRY%{group}", group)
        out["retry"] = observed(retry, original_id)

        reply = await send_back(conn, retry, group, -1)
        assert reply.code == ResponseCode.SUCCESS, reply.remark
        dead = await pull_one(conn, f"%DLQ%{group}", group)
        out["dead letter"] = observed(dead, original_id)

        delayed_topic = topic + "_d"
        sent = await conn.call(
            send(delayed_topic, {"UNIQ_KEY": UNIQ, "TAGS": "TagD", "DELAY": "1", "WAIT": "true"})
        )
        assert sent.code == ResponseCode.SUCCESS, sent.remark
        out["delayed"] = observed(await pull_one(conn, delayed_topic, group), original_id)
    return out


def expected(names: Names) -> dict[str, dict[str, Any]]:
    origin = "<offset msg id of the original>"
    first = {"UNIQ_KEY": UNIQ, "TAGS": "TagA", "KEYS": "k1", "CLUSTER": CLUSTER}
    return {
        "retry": {
            "topic": f"%RETRY%{names.group}",
            "queue_id": 0,
            "flag": 5,
            "reconsume_times": 1,
            "properties": {
                **first,
                "RETRY_TOPIC": names.topic,
                "ORIGIN_MESSAGE_ID": origin,
                "WAIT": "false",
                "DELAY": "1",
                "REAL_TOPIC": f"%RETRY%{names.group}",
                "REAL_QID": "0",
            },
        },
        "dead letter": {
            "topic": f"%DLQ%{names.group}",
            "queue_id": 0,
            "flag": 5,
            "reconsume_times": 2,
            "properties": {
                **first,
                "RETRY_TOPIC": names.topic,
                "ORIGIN_MESSAGE_ID": origin,
                "WAIT": "false",
                "DELAY": "0",
                "REAL_TOPIC": f"%RETRY%{names.group}",
                "REAL_QID": "0",
            },
        },
        "delayed": {
            "topic": names.topic + "_d",
            "queue_id": 0,
            "flag": 5,
            "reconsume_times": 0,
            "properties": {
                "UNIQ_KEY": UNIQ,
                "TAGS": "TagD",
                "CLUSTER": CLUSTER,
                # the schedule record's properties come back as they were parked
                "DELAY": "1",
                "WAIT": "true",
                "REAL_TOPIC": names.topic + "_d",
                "REAL_QID": "0",
            },
        },
    }


def test_stored_messages_match_the_reference(target: Target, names: Names) -> None:
    got = trio.run(scenario, target, names)
    assert got == expected(names)
