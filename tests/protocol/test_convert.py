"""The EXT and BODY converters' rules (anchors §2.8, reference §3.1, §3.4, §3.5)."""

from __future__ import annotations

import enum

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import fastjson
from protocol.bodies import (
    ConsumeFromWhere,
    ConsumerData,
    DataVersion,
    MessageModel,
    MessageQueue,
    ResetOffsetBody,
    SubscriptionData,
    TopicConfig,
    TopicFilterType,
)
from protocol.convert import (
    BodyDecodeError,
    camel,
    decode_body,
    decode_header,
    encode_body,
    encode_header,
    structure_body,
    unstructure_body,
    wire,
)
from protocol.errors import HeaderFieldError
from tests.protocol import golden


class Color(enum.IntEnum):
    RED = 0
    GREEN = 1


@attrs.frozen(kw_only=True)
class Sample:
    name: str
    count: int
    ratio: float = 0.0
    flag: bool = False
    color: Color = Color.RED
    maybe: int | None = None
    odd_name: str | None = attrs.field(default=None, metadata=wire("ODD"))


def test_camel_case() -> None:
    assert camel("queue_id") == "queueId"
    assert camel("body_crc32") == "bodyCrc32"
    assert camel("topic") == "topic"


def test_ext_writes_java_to_string_forms() -> None:
    sample = Sample(name="n", count=-3, ratio=0.5, flag=True, color=Color.GREEN, odd_name="x")
    assert encode_header(sample) == {
        "name": "n",
        "count": "-3",
        "ratio": "0.5",
        "flag": "true",
        "color": "GREEN",
        "ODD": "x",
    }
    assert decode_header(Sample, encode_header(sample)) == sample


@pytest.mark.parametrize(
    ("text", "color"), [("GREEN", Color.GREEN), ("1", Color.GREEN), ("RED", Color.RED)]
)
def test_ext_enums_by_name_or_ordinal(text: str, color: Color) -> None:
    assert decode_header(Sample, {"name": "n", "count": "1", "color": text}).color is color


@pytest.mark.parametrize(
    ("ext", "field", "problem"),
    [
        ({"count": "1"}, "name", "is missing"),
        (
            {"name": "n", "count": "1", "color": "BLUE"},
            "color",
            "is malformed: 'BLUE' is not a Color",
        ),
        ({"name": "n", "count": "1", "maybe": "x"}, "maybe", "is malformed: 'x' is not an integer"),
        ({"name": "n", "count": "1", "ratio": "fast"}, "ratio", "is malformed"),
        ({"name": "n", "count": "1", "flag": ""}, "flag", "is malformed: '' is not a boolean"),
    ],
)
def test_header_field_errors_name_the_wire_key(
    ext: dict[str, str], field: str, problem: str
) -> None:
    with pytest.raises(HeaderFieldError) as info:
        decode_header(Sample, ext)
    assert (info.value.header, info.value.field) == ("Sample", field)
    assert str(info.value).startswith(f"Sample: field {field!r} {problem}")


def test_body_enums_read_ordinals_and_names_and_write_names() -> None:
    for raw in (4, "4", "CONSUME_FROM_FIRST_OFFSET"):
        blob = fastjson.dumps(
            {
                "groupName": "g",
                "consumeType": 1,
                "messageModel": "CLUSTERING",
                "consumeFromWhere": raw,
            }
        ).encode()
        data = decode_body(ConsumerData, blob)
        assert data.consume_from_where is ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
        assert data.message_model is MessageModel.CLUSTERING
        assert b'"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET"' in encode_body(data)
    config = decode_body(TopicConfig, b'{"topicFilterType":1}')
    assert config.topic_filter_type is TopicFilterType.MULTI_TAG
    assert b'"topicFilterType":"MULTI_TAG"' in encode_body(config)
    assert structure_body(ConsumeFromWhere, 4) is ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET


def test_body_scalars_are_lenient_like_fastjson() -> None:
    data = decode_body(
        SubscriptionData,
        b'{"topic":"t","subString":"*","subVersion":"17","classFilterMode":"true","codeSet":["1",2]}',
    )
    assert (data.sub_version, data.class_filter_mode, data.code_set) == (17, True, (1, 2))
    assert decode_body(SubscriptionData, b'{"topic":5,"subString":"*"}').topic == "5"
    with pytest.raises(BodyDecodeError, match="subVersion"):
        decode_body(SubscriptionData, b'{"topic":"t","subString":"*","subVersion":true}')


def test_longs_are_plain_numbers_unless_browser_compatible() -> None:
    # §3.4 quirk 7 (verified): 9223372036854775807 is written as a bare number.
    version = DataVersion(counter=2**63 - 1, timestamp=1)
    assert encode_body(version) == b'{"counter":9223372036854775807,"timestamp":1}'
    assert (
        encode_body(version, browser_compatible=True)
        == b'{"counter":"9223372036854775807","timestamp":1}'
    )
    assert decode_body(DataVersion, encode_body(version, browser_compatible=True)) == version


def test_object_keyed_maps_unstructure_to_object_keys() -> None:
    body = ResetOffsetBody(offset_table={MessageQueue(topic="t", broker_name="b", queue_id=2): 7})
    (key,) = unstructure_body(body)["offsetTable"]
    assert isinstance(key, fastjson.ObjectKey)
    assert key.to_dict() == {"brokerName": "b", "queueId": 2, "topic": "t"}
    assert structure_body(ResetOffsetBody, unstructure_body(body)) == body


def test_object_keyed_map_rejects_scalar_keys() -> None:
    with pytest.raises(BodyDecodeError, match="offsetTable"):
        decode_body(ResetOffsetBody, b'{"offsetTable":{0:1}}')


def test_message_queue_orders_like_java() -> None:
    queues = [
        MessageQueue(topic="b", broker_name="a", queue_id=0),
        MessageQueue(topic="a", broker_name="b", queue_id=1),
        MessageQueue(topic="a", broker_name="b", queue_id=0),
    ]
    assert sorted(queues)[0] == MessageQueue(topic="a", broker_name="b", queue_id=0)
    assert len(set(queues)) == 3


@st.composite
def _mutations(draw: st.DrawFn) -> bytes:
    source = bytearray(
        draw(
            st.sampled_from(
                [
                    golden.ROUTE_DATA,
                    golden.CONSUME_STATS,
                    golden.CONSUMER_OFFSET_JSON,
                    golden.HEARTBEAT,
                ]
            )
        )
    )
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(source) - 1))
        source[pos : pos + draw(st.integers(0, 3))] = draw(st.binary(max_size=3))
    return bytes(source)


@given(_mutations())
def test_mutated_fastjson_text_raises_only_json_decode_error(blob: bytes) -> None:
    try:
        fastjson.loads(blob)
    except fastjson.JsonDecodeError:
        pass
