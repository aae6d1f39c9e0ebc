"""Custom headers through the EXT converter (reference §3.1, §3.2; clients README facts 2, 5, 10)."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import headers
from protocol.bodies import TopicFilterType
from protocol.convert import WIRE_KEY, camel, decode_header, encode_header
from protocol.errors import HeaderFieldError, RemoteProtocolError
from protocol.frame import decode_frame
from protocol.headers import (
    ConsumerSendMsgBackRequestHeader,
    CreateTopicRequestHeader,
    EndTransactionRequestHeader,
    PullMessageRequestHeader,
    PullMessageResponseHeader,
    RegisterBrokerRequestHeader,
    SendMessageRequestHeader,
    SendMessageRequestHeaderV2,
    SendMessageResponseHeader,
    UnregisterClientRequestHeader,
)
from protocol.headers.send import decode_send_v2
from tests.protocol import golden
from tests.protocol.strategies import for_type

HEADER_CLASSES = sorted(
    (getattr(headers, name) for name in headers.__all__ if attrs.has(getattr(headers, name))),
    key=lambda cls: cls.__name__,
)


def test_every_listed_header_is_exported() -> None:
    assert len(HEADER_CLASSES) >= 60


@pytest.mark.parametrize("cls", HEADER_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=30)
@given(data=st.data())
def test_every_header_round_trips_through_ext_fields(cls: type, data: st.DataObject) -> None:
    header = data.draw(for_type(cls))
    ext = encode_header(header)
    assert all(isinstance(v, str) for v in ext.values())
    assert None not in ext.values()
    assert decode_header(cls, ext) == header


def test_send_v2_golden_and_conversion_to_v1() -> None:
    ext = decode_frame(_frame(golden.SEND_V2_HEADER)).ext_fields
    v2 = decode_header(SendMessageRequestHeaderV2, ext)
    v1 = v2.to_v1()
    assert v1 == SendMessageRequestHeader(
        producer_group="pg",
        topic="TopicTest",
        default_topic="TBW102",
        default_topic_queue_nums=4,
        queue_id=0,
        sys_flag=0,
        born_timestamp=1700000000000,
        flag=0,
        properties="UNIQ_KEY\x01ABC\x02WAIT\x01true",
        reconsume_times=0,
        unit_mode=False,
        batch=False,
        bname="broker-a",
    )
    assert v1.to_v2() == v2
    assert encode_header(v2) == ext


@given(for_type(SendMessageRequestHeader))
def test_v1_v2_conversion_is_lossless(v1: SendMessageRequestHeader) -> None:
    assert v1.to_v2().to_v1() == v1
    renamed = encode_header(v1.to_v2())
    assert set(renamed) <= set("abcdefghijklmn")


def test_cpp_send_v2_with_numbers_and_digit_booleans() -> None:
    # clients README facts 2 and 5: JSON numbers beside strings, booleans as "0"/"1".
    header = (
        b'{"code":310,"extFields":{"AccessKey":"","OnsChannel":"ALIYUN","Signature":"x",'
        b'"a":"pg","b":"T","c":"TBW102","d":4,"e":0,"f":0,"g":"1795741096560","h":0,'
        b'"i":"WAIT\\u0001true\\u0002","j":"0","k":"0","l":16,"m":"1"},"flag":0,'
        b'"language":"CPP","opaque":3,"remark":"","version":333}'
    )
    v2 = decode_header(SendMessageRequestHeaderV2, decode_frame(_frame(header)).ext_fields)
    assert (v2.default_topic_queue_nums, v2.queue_id, v2.max_reconsume_times) == (4, 0, 16)
    assert v2.batch is True
    assert v2.unit_mode is False
    assert v2.born_timestamp == 1795741096560


def test_cpp_send_back_and_end_transaction() -> None:
    back = decode_header(
        ConsumerSendMsgBackRequestHeader,
        {
            "delayLevel": "0",
            "group": "CapG",
            "maxReconsumeTimes": "16",
            "offset": "296",
            "originMsgId": "7F000001400E40AAD37C861AB2700001",
            "originTopic": "CapT",
            "unitMode": "0",
        },
    )
    assert (back.offset, back.delay_level, back.unit_mode) == (296, 0, False)
    end = decode_header(
        EndTransactionRequestHeader,
        {
            "producerGroup": "pg",
            "tranStateTableOffset": "3",
            "commitLogOffset": "1024",
            "commitOrRollback": "8",
            "msgId": "ABC",
            "transactionId": "",
            "fromTransactionCheck": "0",
        },
    )
    assert (end.commit_or_rollback, end.from_transaction_check, end.transaction_id) == (
        8,
        False,
        "",
    )


def test_response_header_goldens() -> None:
    send = decode_header(SendMessageResponseHeader, golden.SEND_RESPONSE_EXT)
    assert send.msg_id == "7F00000100002A9F0000000000000000"
    assert (send.queue_id, send.queue_offset, send.msg_region, send.trace_on) == (
        1,
        0,
        "DefaultRegion",
        True,
    )
    assert encode_header(send) == golden.SEND_RESPONSE_EXT
    pull = decode_header(PullMessageResponseHeader, golden.PULL_RESPONSE_EXT)
    assert pull == PullMessageResponseHeader(
        suggest_which_broker_id=0, next_begin_offset=32, min_offset=0, max_offset=100
    )
    assert encode_header(pull) == golden.PULL_RESPONSE_EXT
    register = decode_header(RegisterBrokerRequestHeader, golden.REGISTER_BROKER_EXT)
    assert (register.broker_id, register.body_crc32, register.compressed) == (0, 123456, False)
    assert encode_header(register) == golden.REGISTER_BROKER_EXT


def test_irregular_wire_names() -> None:
    assert encode_header(UnregisterClientRequestHeader(client_id="c@1")) == {"clientID": "c@1"}
    create = CreateTopicRequestHeader(
        topic="t",
        default_topic="TBW102",
        read_queue_nums=4,
        write_queue_nums=4,
        perm=6,
        topic_filter_type=TopicFilterType.SINGLE_TAG,
    )
    ext = encode_header(create)
    assert ext["topicFilterType"] == "SINGLE_TAG"
    assert ext["order"] == "false"
    assert "topicSysFlag" not in ext


def test_missing_required_field_names_header_and_key() -> None:
    ext = dict(golden.PULL_RESPONSE_EXT)
    del ext["nextBeginOffset"]
    with pytest.raises(HeaderFieldError) as info:
        decode_header(PullMessageResponseHeader, ext)
    assert info.value.header == "PullMessageResponseHeader"
    assert info.value.field == "nextBeginOffset"
    assert "missing" in str(info.value)
    assert isinstance(info.value, RemoteProtocolError)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("queueId", "x"),
        ("queueId", "1.5"),
        ("queueId", " 1"),
        ("sysFlag", "1_0"),
        ("subVersion", ""),
    ],
)
def test_malformed_required_field(key: str, value: str) -> None:
    ext = {
        "consumerGroup": "cg",
        "topic": "t",
        "queueId": "0",
        "queueOffset": "0",
        "maxMsgNums": "32",
        "sysFlag": "6",
        "commitOffset": "0",
        "suspendTimeoutMillis": "15000",
        "subVersion": "0",
    }
    assert decode_header(PullMessageRequestHeader, ext).has_suspend
    ext[key] = value
    with pytest.raises(
        HeaderFieldError, match=f"PullMessageRequestHeader: field '{key}' is malformed"
    ):
        decode_header(PullMessageRequestHeader, ext)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("false", False), ("TRUE", True), ("False", False), ("1", True), ("0", False)],
)
def test_boolean_forms(text: str, expected: bool) -> None:
    ext = {"topic": "t", "group": "g", "timestamp": "0", "isForce": text}
    assert decode_header(headers.ResetOffsetRequestHeader, ext).is_force is expected


def test_boolean_rejects_anything_else() -> None:
    ext = {"topic": "t", "group": "g", "timestamp": "0", "isForce": "yes"}
    with pytest.raises(HeaderFieldError, match="isForce"):
        decode_header(headers.ResetOffsetRequestHeader, ext)


def test_empty_optional_number_is_absent_and_enum_by_ordinal() -> None:
    ext = {
        "topic": "t",
        "defaultTopic": "TBW102",
        "readQueueNums": "1",
        "writeQueueNums": "1",
        "perm": "6",
        "topicFilterType": "1",
        "topicSysFlag": "",
    }
    create = decode_header(CreateTopicRequestHeader, ext)
    assert create.topic_filter_type is TopicFilterType.MULTI_TAG
    assert create.topic_sys_flag is None


def _frame(header: bytes) -> bytes:
    return len(header).to_bytes(4, "big") + header


_ext_values = st.one_of(
    st.text(max_size=6), st.integers().map(str), st.sampled_from(["true", "", "1" * 5000])
)


@pytest.mark.parametrize("cls", HEADER_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=10)
@given(data=st.data())
def test_arbitrary_ext_fields_only_raise_header_field_error(cls: type, data: st.DataObject) -> None:
    keys = [field.metadata.get(WIRE_KEY, camel(field.name)) for field in attrs.fields(cls)]
    ext = data.draw(st.dictionaries(st.sampled_from(keys), _ext_values))
    try:
        decode_header(cls, ext)
    except HeaderFieldError:
        pass


# ---------------------------------------------------------------- the send hot path's decoder

_V2_VALUES = st.one_of(
    st.sampled_from(
        ["", "0", "7", "-1", "+3", "12x", "true", "false", "TRUE", "1", " 1", "\u0661"]
    ),
    st.text(max_size=6),
)


def _slow_v2(ext: dict[str, str]) -> object:
    try:
        return decode_header(SendMessageRequestHeaderV2, ext).to_v1()
    except HeaderFieldError as exc:
        return ("error", str(exc))


def _fast_v2(ext: dict[str, str]) -> object:
    try:
        return decode_send_v2(ext)
    except HeaderFieldError as exc:
        return ("error", str(exc))


@settings(max_examples=400)
@given(st.dictionaries(st.sampled_from("abcdefghijklmnz"), _V2_VALUES))
def test_decode_send_v2_agrees_with_cattrs(ext: dict[str, str]) -> None:
    assert _fast_v2(ext) == _slow_v2(ext)


@given(for_type(SendMessageRequestHeaderV2))
def test_decode_send_v2_of_encoded_headers(header: SendMessageRequestHeaderV2) -> None:
    ext = encode_header(header)
    assert decode_send_v2(ext) == header.to_v1()


def test_decode_send_v2_refuses_what_cattrs_refuses() -> None:
    ext = encode_header(golden_v2())
    ext["e"] = "x"
    with pytest.raises(HeaderFieldError) as info:
        decode_send_v2(ext)
    assert info.value.field == "e"
    del ext["b"]
    with pytest.raises(HeaderFieldError, match="'b' is missing"):
        decode_send_v2(ext)


def golden_v2() -> SendMessageRequestHeaderV2:
    return SendMessageRequestHeaderV2(
        producer_group="pg",
        topic="T",
        default_topic="TBW102",
        default_topic_queue_nums=4,
        queue_id=1,
        sys_flag=0,
        born_timestamp=1700000000000,
        flag=0,
        properties="UNIQ_KEY\x01abc",
        batch=True,
    )
