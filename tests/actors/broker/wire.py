"""Requests as real clients build them, for the broker tests (remoting client or raw frames)."""

from __future__ import annotations

import json
import struct

import trio

from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder
from protocol.message import decode_records, properties_to_string
from protocol.msgid import new_uniq_id


def props(tags: str | None = "TagA", keys: str | None = None, **extra: str) -> dict[str, str]:
    out = {"UNIQ_KEY": new_uniq_id(), "WAIT": "true"}
    if tags:
        out["TAGS"] = tags
    if keys:
        out["KEYS"] = keys
    out.update(extra)
    return out


def send_v2(
    topic: str, body: bytes = b"hello", *, queue_id: int = 0, properties=None, **fields
) -> RemotingCommand:
    ext = {
        "a": "pg",
        "b": topic,
        "c": "TBW102",
        "d": "4",
        "e": str(queue_id),
        "f": "0",
        "g": "1700000000000",
        "h": "0",
        "i": properties_to_string(properties if properties is not None else props()),
        "j": "0",
        "k": "false",
        "m": "false",
    }
    ext.update({k: str(v) for k, v in fields.items()})
    return RemotingCommand.request(RequestCode.SEND_MESSAGE_V2, ext, body)


def pull(
    topic: str,
    group: str = "cg",
    *,
    queue_id: int = 0,
    offset: int = 0,
    sys_flag: int = 0x4,
    expression: str = "*",
    suspend_ms: int = 15000,
    commit_offset: int = 0,
    max_msgs: int = 32,
) -> RemotingCommand:
    return RemotingCommand.request(
        RequestCode.PULL_MESSAGE,
        {
            "consumerGroup": group,
            "topic": topic,
            "queueId": str(queue_id),
            "queueOffset": str(offset),
            "maxMsgNums": str(max_msgs),
            "sysFlag": str(sys_flag),
            "commitOffset": str(commit_offset),
            "suspendTimeoutMillis": str(suspend_ms),
            "subscription": expression,
            "subVersion": "0",
            "expressionType": "TAG",
        },
    )


def heartbeat(
    client_id: str, group: str, topics: list[str], *, expression: str = "*"
) -> RemotingCommand:
    """A C++ client's heartbeat: enum ordinals, a wrong codeSet, subVersion as a string."""
    subs = [
        {
            "codeSet": [0],
            "subString": expression,
            "subVersion": "1795741096752",
            "tagsSet": [expression],
            "topic": t,
        }
        for t in topics
    ]
    body = {
        "clientID": client_id,
        "consumerDataSet": [
            {
                "consumeFromWhere": 0,
                "consumeType": 1,
                "groupName": group,
                "messageModel": 1,
                "subscriptionDataSet": subs,
            }
        ],
        "producerDataSet": [{"groupName": group}],
    }
    return RemotingCommand.request(RequestCode.HEART_BEAT, {}, json.dumps(body).encode())


async def raw_call(addr: str, header: dict, body: bytes = b"") -> RemotingCommand:
    """One request written byte for byte (e.g. JSON numbers in extFields), one reply read."""
    host, _, port = addr.rpartition(":")
    head = json.dumps(header, separators=(",", ":")).encode()
    frame = struct.pack(">ii", 4 + len(head) + len(body), len(head)) + head + body
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(frame)
        decoder = FrameDecoder()
        while True:
            data = await stream.receive_some(65536)
            assert data, "connection closed before a reply"
            decoder.feed(data)
            cmd = decoder.next_command()
            if cmd is not None:
                return cmd


async def pull_all_bodies(client, addr: str, topic: str, queues: int) -> set[bytes]:
    """Every message body of ``topic`` on the broker at ``addr``, queue by queue, from the
    queue's start (a slave that joined late starts at the master's last file: its minOffset)."""
    found: set[bytes] = set()
    for queue_id in range(queues):
        offset = 0
        while True:
            reply = await client.invoke(
                addr, pull(topic, queue_id=queue_id, offset=offset, suspend_ms=0), 5
            )
            if reply.code != ResponseCode.SUCCESS:
                low = int(reply.ext_fields.get("minOffset", 0))
                if low > offset:
                    offset = low
                    continue
                break
            found.update(m.body for m in decode_records(reply.body))
            offset = int(reply.ext_fields["nextBeginOffset"])
    return found
