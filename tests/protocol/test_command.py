"""RemotingCommand headers, JSON and ROCKETMQ binary (reference §1.2-1.5, §1.8)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.codes import LanguageCode, SerializeType
from protocol.command import (
    FLAG_ONEWAY,
    FLAG_RESPONSE,
    RemotingCommand,
    _encode_json_header_by_hand,
    decode_binary_header,
    decode_json_header,
    encode_json_header,
)
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.frame import decode_frame, encode_command
from tests.protocol import golden


def test_json_request_golden() -> None:
    cmd = RemotingCommand.request(105, {"topic": "TopicTest"})
    assert encode_json_header(cmd) == golden.ROUTE_REQUEST_HEADER
    frame = encode_command(cmd)
    assert frame.startswith(golden.ROUTE_REQUEST_FRAME_PREFIX)
    assert len(frame) == 4 + 0x87
    assert decode_frame(frame[4:]) == cmd


def test_json_response_golden() -> None:
    request = RemotingCommand.request(105, {"topic": "T"}, opaque=5)
    reply = request.reply(17, "No topic route info")
    assert encode_json_header(reply) == golden.NOT_EXIST_RESPONSE_HEADER
    assert reply.is_response
    assert not reply.is_oneway


def test_binary_golden_both_ways() -> None:
    cmd = RemotingCommand(
        code=105,
        opaque=1,
        remark="hi",
        ext_fields={"topic": "TopicTest"},
        serialize_type=SerializeType.ROCKETMQ,
    )
    assert encode_command(cmd) == golden.BINARY_FRAME
    assert decode_frame(golden.BINARY_FRAME[4:]) == cmd


def test_reply_keeps_opaque_and_serialize_type() -> None:
    request = RemotingCommand.request(
        34, opaque=77, serialize_type=SerializeType.ROCKETMQ, oneway=True
    )
    assert request.is_oneway
    assert request.flag == FLAG_ONEWAY
    reply = request.reply(0, ext_fields={"a": "b"}, body=b"x")
    assert (reply.opaque, reply.serialize_type, reply.flag) == (
        77,
        SerializeType.ROCKETMQ,
        FLAG_RESPONSE,
    )


def test_cpp_client_header_decodes() -> None:
    header = (
        b'{"code":105,"extFields":{"AccessKey":"","OnsChannel":"ALIYUN","Signature":"N/YT7X6tJe5'
        b'UfutmW+uNwTTJ7Fc=","topic":"TopicTest"},"flag":0,"language":"CPP","opaque":0,'
        b'"remark":"","version":333}'
    )
    fields = decode_json_header(header)
    assert fields["language"] is LanguageCode.CPP
    assert fields["version"] == 333
    assert fields["remark"] == ""
    assert fields["ext_fields"]["topic"] == "TopicTest"


def test_json_header_tolerance() -> None:
    # §1.3: unknown keys ignored, language by number, missing keys default, scalars as strings.
    fields = decode_json_header(
        b'{"language":1,"unknown":[1],"extFields":{"queueId":1,"batch":true,"f":1.5,"n":null}}'
    )
    assert fields["code"] == 0
    assert fields["opaque"] == 0
    assert fields["language"] is LanguageCode.CPP
    assert fields["ext_fields"] == {"queueId": "1", "batch": "true", "f": "1.5"}
    assert decode_json_header(b'{"language":"KLINGON"}')["language"] is LanguageCode.OTHER


@pytest.mark.parametrize(
    "header",
    [
        b"[]",
        b"{",
        b'{"code":"x"}',
        b'{"code":1.5}',
        b'{"code":true}',
        b'{"opaque":4294967296}',
        b'{"extFields":[]}',
        b'{"extFields":{"a":{"b":1}}}',
        b'{"language":[1]}',
        b"\xff\xfe",
        b"[" * 100000,
    ],
)
def test_bad_json_headers_are_remote_protocol_errors(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_json_header(header)


@pytest.mark.parametrize(
    "header",
    [
        b"\x00" * 20,  # fixed part fine, extFields length field missing
        bytes.fromhex("0069 00 0199 00000001 00000000 7fffffff"),
        bytes.fromhex("0069 00 0199 00000001 00000000 00000000 00000010"),
        bytes.fromhex("0069 00 0199 00000001 00000000 00000000 00000007 0005 6b6b"),
        bytes.fromhex("0069 00 0199 00000001 00000000 00000002 ffff 00000000"),
    ],
)
def test_bad_binary_headers_are_remote_protocol_errors(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_binary_header(header)


def test_binary_zero_length_values_decode_as_absent() -> None:
    # 4.9.8 decodes a zero-length value as null; the entry then does not exist.
    header = bytes.fromhex("0069 00 0199 00000001 00000000 00000000 00000007 0001 6b 00000000")
    assert decode_binary_header(header)["ext_fields"] == {}


def test_binary_header_refuses_values_that_do_not_fit() -> None:
    cmd = RemotingCommand(code=70000, serialize_type=SerializeType.ROCKETMQ)
    with pytest.raises(LocalProtocolError):
        encode_command(cmd)


def test_json_header_is_compact_sorted_json() -> None:
    cmd = RemotingCommand.request(11, {"b": "1", "a": "2"}, remark="r")
    head = json.loads(encode_json_header(cmd))
    assert list(head) == sorted(head)


@pytest.mark.parametrize("stype", list(SerializeType))
def test_lone_surrogates_from_a_peer_can_be_echoed(stype: SerializeType) -> None:
    cmd = RemotingCommand.request(1, {"a": "\ud800"}, remark="\udfff", serialize_type=stype)
    back = decode_frame(encode_command(cmd)[4:])
    assert (back.ext_fields, back.remark) == ({"a": "?"}, "?")


_any_text = st.text(max_size=12)  # lone surrogates and control characters included


@given(
    code=st.integers(-(2**31), 2**31 - 1),
    opaque=st.integers(-(2**31), 2**31 - 1),
    flag=st.integers(0, 3),
    language=st.sampled_from(list(LanguageCode)),
    remark=st.none() | _any_text,
    ext=st.dictionaries(_any_text, st.none() | _any_text, max_size=6),
)
def test_orjson_header_is_byte_for_byte_the_by_hand_encoding(
    code: int,
    opaque: int,
    flag: int,
    language: LanguageCode,
    remark: str | None,
    ext: dict[str, str],
) -> None:
    # The by-hand encoder is the reference (fastjson's order, nulls omitted, surrogates as
    # "?"); the orjson path must never differ from it, only fall back to it.
    cmd = RemotingCommand(
        code=code, opaque=opaque, flag=flag, language=language, remark=remark, ext_fields=ext
    )
    assert encode_json_header(cmd) == _encode_json_header_by_hand(cmd)
