"""Hand-built frames in both header forms, as real clients put them on the wire."""

from __future__ import annotations

import json
import struct

import trio

from protocol.codes import ResponseCode, SerializeType
from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder

TIMEOUT = 5.0


def json_frame(header: dict[str, object], body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">ii", 4 + len(head) + len(body), len(head)) + head + body


def binary_frame(code: int, opaque: int, ext: dict[str, str], *, version: int = 409) -> bytes:
    remark = b""
    fields = b"".join(
        struct.pack(">h", len(k.encode()))
        + k.encode()
        + struct.pack(">i", len(v.encode()))
        + v.encode()
        for k, v in ext.items()
    )
    # code, language (JAVA), version, opaque, flag, remark length, remark, ext length, ext
    head = (
        struct.pack(">hBhiii", code, 0, version, opaque, 0, len(remark))
        + remark
        + struct.pack(">i", len(fields))
        + fields
    )
    return struct.pack(">ii", 4 + len(head), (1 << 24) | len(head)) + head


async def exchange(addr: str, data: bytes, replies: int) -> list[tuple[RemotingCommand, int]]:
    """Send ``data`` on a fresh connection; the replies with their raw serialize-type byte."""
    host, port = addr.rsplit(":", 1)
    out: list[tuple[RemotingCommand, int]] = []
    with trio.fail_after(TIMEOUT):
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            await stream.send_all(data)
            decoder = FrameDecoder()
            raw = bytearray()
            while len(out) < replies:
                chunk = await stream.receive_some(65536)
                assert chunk, "connection closed before every reply arrived"
                raw += chunk
                decoder.feed(chunk)
                out.extend((cmd, 0) for cmd in decoder.commands())
    # Recover each reply's serialize-type byte from the raw bytes, in order.
    kinds, pos = [], 0
    while pos < len(raw):
        (length,) = struct.unpack_from(">i", raw, pos)
        kinds.append(raw[pos + 4])
        pos += 4 + length
    return [(cmd, kind) for (cmd, _), kind in zip(out, kinds, strict=True)]


async def test_cpp_style_json_request(namesrv_addr: str) -> None:
    # The first frame of a C++ producer, byte for byte in shape (clients README).
    header = {
        "code": 105,
        "extFields": {
            "AccessKey": "",
            "OnsChannel": "ALIYUN",
            "Signature": "x",
            "topic": "TopicTest",
        },
        "flag": 0,
        "language": "CPP",
        "opaque": 7,
        "remark": "",
        "version": 333,
    }
    [(reply, kind)] = await exchange(namesrv_addr, json_frame(header), 1)
    assert kind == SerializeType.JSON
    assert reply.serialize_type is SerializeType.JSON
    assert (reply.code, reply.opaque, reply.is_response) == (ResponseCode.TOPIC_NOT_EXIST, 7, True)


async def test_binary_header_request_gets_binary_reply(namesrv_addr: str) -> None:
    [(reply, kind)] = await exchange(namesrv_addr, binary_frame(105, 42, {"topic": "TopicTest"}), 1)
    assert kind == SerializeType.ROCKETMQ
    assert (reply.code, reply.opaque) == (ResponseCode.TOPIC_NOT_EXIST, 42)
    assert reply.remark is not None
    assert "TopicTest" in reply.remark


async def test_pipelined_mixed_forms_on_one_connection(namesrv_addr: str) -> None:
    put = {"namespace": "NS", "key": "k", "value": "v"}
    data = (
        binary_frame(100, 1, put)  # PUT_KV_CONFIG
        + json_frame(
            {
                "code": 101,
                "extFields": {"namespace": "NS", "key": "k"},
                "flag": 0,
                "language": "JAVA",
                "opaque": 2,
                "version": 409,
            }
        )
        + binary_frame(9999, 3, {})
        + json_frame({"code": 106, "flag": 0, "language": "GO", "opaque": 4, "version": 317})
    )
    replies = await exchange(namesrv_addr, data, 4)
    by_opaque = {cmd.opaque: (cmd, kind) for cmd, kind in replies}
    assert sorted(by_opaque) == [1, 2, 3, 4]
    assert by_opaque[1][0].code == ResponseCode.SUCCESS
    assert by_opaque[1][1] == SerializeType.ROCKETMQ
    # Requests on one connection are not answered in order: the PUT waits for its write
    # while the inline GET runs at once (Java's processor pools do not order them either).
    assert by_opaque[2][0].code in (ResponseCode.SUCCESS, ResponseCode.QUERY_NOT_FOUND)
    assert by_opaque[2][1] == SerializeType.JSON
    assert by_opaque[3][0].code == ResponseCode.REQUEST_CODE_NOT_SUPPORTED
    assert by_opaque[3][1] == SerializeType.ROCKETMQ
    assert by_opaque[4][0].code == ResponseCode.SUCCESS
    assert json.loads(by_opaque[4][0].body) == {"brokerAddrTable": {}, "clusterAddrTable": {}}
    get = {"namespace": "NS", "key": "k"}
    [(reply, kind)] = await exchange(namesrv_addr, binary_frame(101, 5, get), 1)
    assert (reply.ext_fields, kind) == ({"value": "v"}, SerializeType.ROCKETMQ)


async def test_garbage_closes_only_that_connection(namesrv_addr: str) -> None:
    host, port = namesrv_addr.rsplit(":", 1)
    with trio.fail_after(TIMEOUT):
        bad = await trio.open_tcp_stream(host, int(port))
        async with bad:
            await bad.send_all(struct.pack(">ii", 8, 0x05000004) + b"abcd")  # serialize type 5
            while await bad.receive_some(1024):
                pass  # until the server closes it
    [(reply, _)] = await exchange(namesrv_addr, binary_frame(106, 1, {}), 1)
    assert reply.code == ResponseCode.SUCCESS
