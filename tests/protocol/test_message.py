"""The stored record codec against the reference's verified vectors (§4.1, §4.8) and round trips."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.message import (
    BLANK_MAGIC_CODE,
    MESSAGE_MAGIC_CODE,
    BatchEntry,
    MessageConst,
    MessageExt,
    MessageSysFlag,
    compress,
    decode_batch,
    decode_record,
    decode_records,
    encode_batch,
    encode_record,
    java_hash,
    maybe_decompress,
    properties_to_string,
    record_size,
    string_to_properties,
    tags_code,
    transaction_type,
)

# §4.1 test vector, produced by 4.9.8 MessageDecoder.encode.
GOLDEN_RECORD = (
    bytes.fromhex(
        "0000009c"
        "daa320a7"
        "77d18982"
        "00000001"
        "00000000"
        "0000000000000007"
        "00000000000004d2"
        "00000000"
        "0000018bcfe56800"
        "c0a80009"
        "0000c822"
        "0000018bcfe56805"
        "c0a80001"
        "00002a9f"
        "00000000"
        "0000000000000000"
        "00000005"
        "48656c6c6f"
        "09"
        "546f70696354657374"
        "0033"
    )
    + b"UNIQ_KEY\x01C0A8000900002A9F0000000000000000\x02TAGS\x01TagA"
)

GOLDEN_MESSAGE = MessageExt(
    topic="TopicTest",
    body=b"Hello",
    queue_id=1,
    queue_offset=7,
    commit_log_offset=1234,
    born_timestamp=1700000000000,
    born_host="192.168.0.9:51234",
    store_timestamp=1700000000005,
    store_host="192.168.0.1:10911",
    properties={"UNIQ_KEY": "C0A8000900002A9F0000000000000000", "TAGS": "TagA"},
)


def test_golden_record_encodes_byte_for_byte() -> None:
    assert len(GOLDEN_RECORD) == 156
    assert encode_record(GOLDEN_MESSAGE) == GOLDEN_RECORD


def test_golden_record_decodes() -> None:
    msg = decode_record(GOLDEN_RECORD, check_crc=True)
    assert msg.body_crc == 2010220930
    assert msg.store_size == 156
    assert msg.msg_id == "C0A8000100002A9F00000000000004D2"
    assert msg.tags == "TagA"
    assert msg.uniq_key == "C0A8000900002A9F0000000000000000"
    expected = GOLDEN_MESSAGE
    assert (msg.topic, msg.queue_id, msg.queue_offset, msg.commit_log_offset) == (
        expected.topic,
        expected.queue_id,
        expected.queue_offset,
        expected.commit_log_offset,
    )
    assert (msg.born_host, msg.store_host) == (expected.born_host, expected.store_host)
    assert (msg.born_timestamp, msg.store_timestamp) == (1700000000000, 1700000000005)
    assert msg.properties == expected.properties


def test_record_size_matches_fixed_overhead() -> None:
    assert record_size(0, 0, 0) == 91
    v6 = MessageSysFlag.BORNHOST_V6 | MessageSysFlag.STOREHOST_V6
    assert record_size(0, 0, 0, v6) == 91 + 24


def test_ipv6_hosts_set_flags_and_round_trip() -> None:
    msg = MessageExt(topic="T", body=b"x", born_host="[::1]:5", store_host="fe80::2:10911")
    raw = encode_record(msg)
    back = decode_record(raw, check_crc=True)
    assert back.sys_flag == MessageSysFlag.BORNHOST_V6 | MessageSysFlag.STOREHOST_V6
    assert back.born_host == "::1:5"
    assert back.store_host == "fe80::2:10911"
    assert len(raw) == record_size(1, 1, 0, back.sys_flag)
    assert len(back.msg_id) == 56


def test_crc_mismatch_detected_only_when_asked() -> None:
    raw = bytearray(GOLDEN_RECORD)
    raw[86 + 2] ^= 0xFF  # inside the body
    decode_record(raw)
    with pytest.raises(RemoteProtocolError, match="CRC"):
        decode_record(raw, check_crc=True)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:50],
        lambda b: b[:4] + struct.pack(">i", BLANK_MAGIC_CODE) + b[8:],
        lambda b: struct.pack(">i", 500) + b[4:],
        lambda b: struct.pack(">i", 10) + b[4:],
        lambda b: b[:84] + struct.pack(">i", 10_000) + b[88:],
        lambda b: b[:93] + b"\x7f" + b[94:],
        lambda b: b[:103] + b"\x7f\xff" + b[105:],
    ],
)
def test_garbage_is_a_typed_error(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RemoteProtocolError):
        decode_record(mutate(GOLDEN_RECORD))


def test_decode_records_concatenation_and_strictness() -> None:
    second = encode_record(MessageExt(topic="B", body=b"", commit_log_offset=156))
    msgs = decode_records(GOLDEN_RECORD + second)
    assert [m.topic for m in msgs] == ["TopicTest", "B"]
    assert decode_records(b"") == []
    with pytest.raises(RemoteProtocolError):
        decode_records(GOLDEN_RECORD + b"\x00" * 7)


def test_encode_refuses_what_the_layout_cannot_carry() -> None:
    with pytest.raises(LocalProtocolError):
        encode_record(MessageExt(topic="t" * 128, body=b""))
    with pytest.raises(LocalProtocolError):
        encode_record(MessageExt(topic="t", body=b"", properties={"k": "v" * 40000}))
    with pytest.raises(LocalProtocolError):
        encode_record(MessageExt(topic="t", body=b"", born_host="nonsense"))


# §4.8 verified batch example.
GOLDEN_BATCH = (
    bytes.fromhex("00000033 00000000 00000000 00000000 00000002 6d31 001b")
    + b"KEYS\x01k1\x02WAIT\x01true\x02TAGS\x01TagA"
    + bytes.fromhex("0000002c 00000000 00000000 00000000 00000003 6d3232 0013")
    + b"WAIT\x01true\x02TAGS\x01TagB"
)


def test_golden_batch() -> None:
    entries = [
        BatchEntry(body=b"m1", properties={"KEYS": "k1", "WAIT": "true", "TAGS": "TagA"}),
        BatchEntry(body=b"m22", properties={"WAIT": "true", "TAGS": "TagB"}),
    ]
    assert encode_batch(entries) == GOLDEN_BATCH
    assert decode_batch(GOLDEN_BATCH) == entries


def test_batch_garbage() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_batch(GOLDEN_BATCH[:-1])
    with pytest.raises(RemoteProtocolError):
        decode_batch(struct.pack(">i", 99) + GOLDEN_BATCH[4:])


def test_properties_string_rules() -> None:
    assert properties_to_string({}) == ""
    assert properties_to_string({"a": "1", "b": "2"}) == "a\x011\x02b\x012"
    # Java drops segments shorter than 3 chars and empty names/values.
    assert string_to_properties("a\x011\x02\x01xx\x02yy\x01\x02k\x01v") == {"a": "1", "k": "v"}
    assert string_to_properties("x\x01a\x01b") == {"x": "a\x01b"}


def _java_string_to_properties(text: str) -> dict[str, str]:
    # MessageDecoder.string2messageProperties, step by step
    result: dict[str, str] = {}
    for segment in text.split("\x02") if text else []:
        cut = segment.find("\x01")
        if len(segment) >= 3 and 0 < cut < len(segment) - 1:
            result[segment[:cut]] = segment[cut + 1 :]
    return result


@given(st.text(alphabet="ab\x01\x02", max_size=24))
def test_properties_string_parse_matches_java(text: str) -> None:
    assert string_to_properties(text) == _java_string_to_properties(text)


def test_java_hash_known_values() -> None:
    assert java_hash("") == 0
    assert java_hash("TagA") == 2598919
    assert java_hash("hello") == 99162322
    assert java_hash("polygenelubricants") == -(2**31)
    assert java_hash("\U0001f600") == 0xD83D * 31 + 0xDE00  # one surrogate pair
    assert java_hash("é") == 233
    assert tags_code(None) == 0
    assert tags_code("") == 0
    assert tags_code("TagA") == 2598919


def test_sys_flag_helpers() -> None:
    assert transaction_type(0x4 | 0x1) == MessageSysFlag.TRANSACTION_PREPARED
    assert transaction_type(0xC) == MessageSysFlag.TRANSACTION_ROLLBACK
    assert MessageConst.SHARDINGKEY == "__SHARDINGKEY"


def test_compression() -> None:
    body = b"abc" * 2000
    packed = compress(body)
    assert packed == zlib.compress(body, 5)
    assert maybe_decompress(packed, 0x301) == body
    assert maybe_decompress(packed, 0x1) == body
    assert maybe_decompress(packed, 0) == packed
    with pytest.raises(RemoteProtocolError):
        maybe_decompress(packed, 0x101)
    with pytest.raises(RemoteProtocolError):
        maybe_decompress(b"junk", 0x1)


# ---------------------------------------------------------------- round trips

names = st.text(
    st.characters(blacklist_characters="\x01\x02", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=12,
)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4, st.integers(0, 65535)).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}.{t[3]}:{t[4]}"
)
longs = st.integers(0, 2**63 - 1)
ints = st.integers(-(2**31), 2**31 - 1)


@st.composite
def messages(draw: st.DrawFn) -> MessageExt:
    return MessageExt(
        topic=draw(st.text(st.sampled_from("abcXYZ%_-|0123"), min_size=1, max_size=127)),
        body=draw(st.binary(max_size=300)),
        queue_id=draw(ints),
        flag=draw(ints),
        properties=draw(st.dictionaries(names, names, max_size=5)),
        sys_flag=draw(st.integers(0, 0x70F)) & ~0x30,
        born_timestamp=draw(longs),
        born_host=draw(ipv4),
        store_timestamp=draw(longs),
        store_host=draw(ipv4),
        reconsume_times=draw(ints),
        prepared_transaction_offset=draw(longs),
        queue_offset=draw(longs),
        commit_log_offset=draw(longs),
    )


@given(messages())
def test_record_round_trip(msg: MessageExt) -> None:
    raw = encode_record(msg)
    back = decode_record(raw, check_crc=True)
    assert back.store_size == len(raw)
    msg.body_crc = back.body_crc
    msg.store_size = back.store_size
    assert back == msg
    assert encode_record(back) == raw


@given(
    st.lists(
        st.builds(
            BatchEntry,
            body=st.binary(max_size=50),
            flag=ints,
            properties=st.dictionaries(names, names, max_size=4),
        ),
        max_size=5,
    )
)
def test_batch_round_trip(entries: list[BatchEntry]) -> None:
    assert decode_batch(encode_batch(entries)) == entries


@given(st.binary(max_size=200))
def test_decode_never_crashes_untyped(data: bytes) -> None:
    try:
        decode_record(data, check_crc=True)
    except RemoteProtocolError:
        pass
    try:
        decode_batch(data)
    except RemoteProtocolError:
        pass


def test_magic_constants() -> None:
    assert struct.pack(">i", MESSAGE_MAGIC_CODE) == bytes.fromhex("daa320a7")
    assert struct.pack(">i", BLANK_MAGIC_CODE) == bytes.fromhex("cbd43194")


def _reference_hash(s: str) -> int:
    units = s.encode("utf-16-be")
    h = 0
    for i in range(0, len(units), 2):
        h = (31 * h + int.from_bytes(units[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


@given(st.text(max_size=700))
def test_java_hash_matches_the_definition(s: str) -> None:
    assert java_hash(s) == _reference_hash(s)


# ---------------------------------------------------------------- decode_records fast path

ipv6 = st.sampled_from(["::1:10911", "2001:db8::7:51234", "fe80::1:0"])


def _one_by_one(buf: bytes) -> list[MessageExt]:
    """The definition decode_records must agree with: decode_record, record after record."""
    out = []
    pos = 0
    while pos < len(buf):
        out.append(decode_record(buf, pos))
        pos += out[-1].store_size
    return out


def _outcome(decode, buf):  # type: ignore[no-untyped-def]
    try:
        return decode(buf)
    except RemoteProtocolError:
        return RemoteProtocolError


@given(st.lists(st.tuples(messages(), ipv4 | ipv6, ipv4 | ipv6), max_size=6))
def test_decode_records_agrees_with_decode_record(
    drawn: list[tuple[MessageExt, str, str]],
) -> None:
    for msg, born, store in drawn:
        msg.born_host, msg.store_host = born, store
    buf = b"".join(encode_record(msg) for msg, _, _ in drawn)
    expected = _one_by_one(buf)
    assert decode_records(buf) == expected
    assert decode_records(memoryview(buf)) == expected
    assert decode_records(bytearray(buf), check_crc=True) == expected


@given(
    st.lists(messages(), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3),
    st.integers(0, 10_000),
)
def test_decode_records_on_damage_agrees_with_decode_record(
    msgs: list[MessageExt], flips: list[tuple[int, int]], cut: int
) -> None:
    buf = bytearray(b"".join(encode_record(m) for m in msgs))
    for index, value in flips:
        buf[index % len(buf)] = value
    damaged = bytes(buf[: len(buf) - cut % len(buf)] if cut % 3 == 0 else buf)
    assert _outcome(decode_records, damaged) == _outcome(_one_by_one, damaged)


def test_decode_records_refuses_an_overlong_properties_length() -> None:
    # PROPERTIESLEN is signed: 0x8000 and above is negative, whatever TOTALSIZE says.
    props = b"k\x01" + b"v" * 0x8000
    head = bytearray(encode_record(MessageExt(topic="T", body=b"")))
    head[-2:] = b"\x80\x02"
    raw = head + props
    raw[0:4] = struct.pack(">i", len(raw))
    with pytest.raises(RemoteProtocolError):
        decode_records(bytes(raw))
