"""JSON bodies through the BODY converter (reference §3.3, §3.4, §5.8)."""

from __future__ import annotations

import zlib

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import bodies, fastjson
from protocol.bodies import (
    BrokerData,
    ClusterInfo,
    ConsumeFromWhere,
    ConsumerConnection,
    ConsumerOffsetSerializeWrapper,
    ConsumeStats,
    ConsumeType,
    DataVersion,
    DelayOffsetSerializeWrapper,
    HeartbeatData,
    LockBatchRequestBody,
    LockBatchResponseBody,
    MessageModel,
    MessageQueue,
    OffsetWrapper,
    QueueData,
    RegisterBrokerBody,
    SubscriptionGroupConfig,
    SubscriptionGroupWrapper,
    TopicConfig,
    TopicConfigSerializeWrapper,
    TopicRouteData,
    TopicStatsTable,
    body_crc32,
    decode_register_broker_body,
    encode_register_broker_body,
)
from protocol.codes import LanguageCode
from protocol.convert import BodyDecodeError, decode_body, encode_body
from protocol.errors import RemoteProtocolError
from protocol.fastjson import JsonDecodeError
from tests.protocol import golden
from tests.protocol.strategies import for_type

BODY_CLASSES = sorted(
    (getattr(bodies, name) for name in bodies.__all__ if attrs.has(getattr(bodies, name))),
    key=lambda cls: cls.__name__,
)

MQ0 = MessageQueue(topic="TopicTest", broker_name="broker-a", queue_id=0)


@pytest.mark.parametrize("cls", BODY_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=30)
@given(data=st.data(), bare=st.booleans(), pretty=st.booleans())
def test_every_body_round_trips(cls: type, data: st.DataObject, bare: bool, pretty: bool) -> None:
    body = data.draw(for_type(cls))
    assert decode_body(cls, encode_body(body, bare_int_keys=bare, pretty=pretty)) == body


def test_route_data_golden_in_both_key_forms() -> None:
    route = decode_body(TopicRouteData, golden.ROUTE_DATA)
    assert route == decode_body(TopicRouteData, golden.ROUTE_DATA_STANDARD)
    assert route.broker_datas == (
        BrokerData(
            cluster="DefaultCluster",
            broker_name="broker-a",
            broker_addrs={0: "192.168.0.1:10911", 1: "192.168.0.2:10911"},
        ),
    )
    assert route.queue_datas == (
        QueueData(broker_name="broker-a", read_queue_nums=4, write_queue_nums=4, perm=6),
    )
    assert route.broker_datas[0].master_addr == "192.168.0.1:10911"
    assert encode_body(route, bare_int_keys=True) == golden.ROUTE_DATA
    assert encode_body(route) == golden.ROUTE_DATA_STANDARD
    assert encode_body(route, browser_compatible=True) == golden.ROUTE_DATA_STANDARD


def test_heartbeat_golden_from_java() -> None:
    heartbeat = decode_body(HeartbeatData, golden.HEARTBEAT)
    (consumer,) = heartbeat.consumer_data_set
    assert consumer.consume_type is ConsumeType.CONSUME_PASSIVELY
    assert consumer.subscription_data_set[0].code_set == (2598919, 2598920)
    assert encode_body(heartbeat) == golden.HEARTBEAT


def test_heartbeat_from_cpp_clients_with_ordinals_and_string_numbers() -> None:
    heartbeat = decode_body(HeartbeatData, golden.CPP_HEARTBEAT)
    assert heartbeat.client_id == "127.0.0.1@16457#DEFAULT"
    (consumer,) = heartbeat.consumer_data_set
    assert consumer.consume_type is ConsumeType.CONSUME_PASSIVELY
    assert consumer.message_model is MessageModel.CLUSTERING
    assert consumer.consume_from_where is ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
    retry, topic = consumer.subscription_data_set
    assert (retry.topic, retry.sub_string, retry.sub_version) == ("%RETRY%CapG", "*", 1795741096752)
    assert (topic.tags_set, topic.code_set, topic.expression_type) == ((), (), "TAG")
    # Written back the way Java's fastjson writes enums: by name.
    assert b'"consumeType":"CONSUME_PASSIVELY"' in encode_body(heartbeat)


def test_lock_batch_bodies() -> None:
    lock = decode_body(LockBatchRequestBody, golden.CPP_LOCK_BATCH)
    assert lock.mq_set == (MessageQueue(topic="CapO", broker_name="broker-a", queue_id=0),)
    assert encode_body(lock) == golden.CPP_LOCK_BATCH
    reply = encode_body(LockBatchResponseBody(lock_ok_mq_set=(MQ0,)))
    assert reply == b'{"lockOKMQSet":[{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}]}'


def test_consume_stats_golden_with_object_keys() -> None:
    stats = decode_body(ConsumeStats, golden.CONSUME_STATS)
    assert stats == ConsumeStats(
        offset_table={
            MQ0: OffsetWrapper(broker_offset=10, consumer_offset=5, last_timestamp=1700000000000)
        },
        consume_tps=1.5,
    )
    assert encode_body(stats) == golden.CONSUME_STATS


def test_object_keys_written_as_strings_by_other_writers_are_read() -> None:
    blob = b'{"offsetTable":{"{\\"brokerName\\":\\"broker-a\\",\\"queueId\\":0,\\"topic\\":\\"TopicTest\\"}":{}}}'
    assert set(decode_body(ConsumeStats, blob).offset_table) == {MQ0}


def test_register_broker_body_golden_and_compressed_form() -> None:
    body = decode_register_broker_body(golden.REGISTER_BROKER_BODY)
    wrapper = body.topic_config_serialize_wrapper
    assert wrapper.data_version == DataVersion(counter=3, timestamp=1700000000000)
    assert wrapper.topic_config_table["TopicTest"].read_queue_nums == 4
    assert encode_register_broker_body(body) == golden.REGISTER_BROKER_BODY
    packed = encode_register_broker_body(body, compressed=True)
    assert decode_register_broker_body(packed, compressed=True) == body
    assert (
        body_crc32(golden.REGISTER_BROKER_BODY)
        == zlib.crc32(golden.REGISTER_BROKER_BODY) & 0x7FFFFFFF
    )


def test_compressed_register_body_drops_order_and_sys_flag() -> None:
    config = TopicConfig(
        topic_name="T", read_queue_nums=2, write_queue_nums=3, order=True, topic_sys_flag=1
    )
    body = RegisterBrokerBody(
        topic_config_serialize_wrapper=TopicConfigSerializeWrapper(
            topic_config_table={"T": config}
        ),
        filter_server_list=("10.0.0.1:1",),
    )
    back = decode_register_broker_body(
        encode_register_broker_body(body, compressed=True), compressed=True
    )
    assert back.topic_config_serialize_wrapper.topic_config_table["T"] == attrs.evolve(
        config, order=False, topic_sys_flag=0
    )
    assert back.filter_server_list == ("10.0.0.1:1",)


def test_empty_register_body_is_an_empty_registration() -> None:
    assert decode_register_broker_body(b"") == RegisterBrokerBody()


@pytest.mark.parametrize(
    "blob", [b"not zlib", zlib.compress(b"\x00\x00"), zlib.compress(b"\x7f\xff\xff\xff")]
)
def test_garbage_compressed_register_body_is_a_typed_error(blob: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_register_broker_body(blob, compressed=True)


def test_persisted_files_match_java_bytes() -> None:
    topics = decode_body(TopicConfigSerializeWrapper, golden.TOPICS_JSON)
    assert encode_body(topics, pretty=True) == golden.TOPICS_JSON
    offsets = decode_body(ConsumerOffsetSerializeWrapper, golden.CONSUMER_OFFSET_JSON)
    assert offsets.offset_table == {"%RETRY%cg@cg": {0: 0}, "TopicTest@cg": {0: 250, 1: 249}}
    assert encode_body(offsets, pretty=True, bare_int_keys=True) == golden.CONSUMER_OFFSET_JSON
    delay = decode_body(DelayOffsetSerializeWrapper, golden.DELAY_OFFSET_JSON)
    assert delay.offset_table == {1: 5, 3: 0}
    assert encode_body(delay, pretty=True, bare_int_keys=True) == golden.DELAY_OFFSET_JSON
    groups = SubscriptionGroupWrapper(
        subscription_group_table={"cg": SubscriptionGroupConfig(group_name="cg")},
        data_version=DataVersion(timestamp=1700000000000),
    )
    assert encode_body(groups, pretty=True) == golden.SUBSCRIPTION_GROUP_JSON
    assert decode_body(SubscriptionGroupWrapper, golden.SUBSCRIPTION_GROUP_JSON) == groups


def test_unknown_keys_are_ignored() -> None:
    assert decode_body(DataVersion, b'{"counter":2,"timestamp":5,"stateVersion":9}') == DataVersion(
        counter=2, timestamp=5
    )


def test_none_fields_are_omitted() -> None:
    assert encode_body(TopicConfig(topic_name=None)) == (
        b'{"order":false,"perm":6,"readQueueNums":16,"topicFilterType":"SINGLE_TAG",'
        b'"topicSysFlag":0,"writeQueueNums":16}'
    )


@pytest.mark.parametrize(
    ("cls", "blob", "message"),
    [
        (DataVersion, b'{"counter":"x","timestamp":1}', r"'x' is not an integer @ \$\.counter"),
        (DataVersion, b"[1,2]", r"expected a JSON object, got list @ \$$"),
        (
            TopicRouteData,
            b'{"brokerDatas":[{"cluster":"c","brokerName":"b","brokerAddrs":{"x":"a"}}]}',
            r"@ \$\.brokerDatas\[0\]\.brokerAddrs\['x'\]",
        ),
        (
            HeartbeatData,
            b'{"clientID":"c","consumerDataSet":[{"groupName":"g","consumeType":7,'
            b'"messageModel":1,"consumeFromWhere":0}]}',
            r"7 is not a ConsumeType @ \$\.consumerDataSet\[0\]\.consumeType",
        ),
        (HeartbeatData, b"{}", r"required field missing @ \$\.clientID"),
    ],
)
def test_malformed_bodies_name_the_wire_path(cls: type, blob: bytes, message: str) -> None:
    with pytest.raises(BodyDecodeError, match=message) as info:
        decode_body(cls, blob)
    assert str(info.value).startswith(f"{cls.__name__} body is malformed: ")


def test_body_that_is_not_json_raises_json_decode_error() -> None:
    with pytest.raises(JsonDecodeError):
        decode_body(DataVersion, b"{counter:")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["topic", "brokerName", "queueId", "offsetTable", "brokerAddrs", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("cls", BODY_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=10)
@given(value=_json)
def test_wrong_shapes_only_raise_body_decode_error(cls: type, value: object) -> None:
    try:
        decode_body(cls, fastjson.dumps_bytes(value))
    except BodyDecodeError:
        pass


def test_apache_replies_decode_and_re_encode() -> None:
    connection = decode_body(ConsumerConnection, golden.APACHE_CONSUMER_CONNECTION)
    assert connection.connection_set[0].language is LanguageCode.JAVA
    assert connection.subscription_table["T_differential"].sub_string == "*"
    assert encode_body(connection) == golden.APACHE_CONSUMER_CONNECTION
    cluster = decode_body(ClusterInfo, golden.APACHE_CLUSTER_INFO)
    assert cluster.cluster_addr_table == {"CompatCluster": ("compat-broker",)}
    assert encode_body(cluster, bare_int_keys=True) == golden.APACHE_CLUSTER_INFO
    # Java writes these HashMaps in hash order; we sort, so compare the parsed values.
    for cls, blob in [
        (TopicStatsTable, golden.APACHE_TOPIC_STATS),
        (ConsumeStats, golden.APACHE_CONSUME_STATS),
    ]:
        body = decode_body(cls, blob)
        assert len(body.offset_table) == 2
        assert fastjson.loads(encode_body(body)) == fastjson.loads(blob)
    stats = decode_body(TopicStatsTable, golden.APACHE_TOPIC_STATS)
    mq = MessageQueue(topic="T_differential", broker_name="compat-broker", queue_id=1)
    assert stats.offset_table[mq].last_update_timestamp == 1795747981708
