"""The broker's persisted tables: exact §5.8 shapes, round trips, creation rules."""

import pytest

from protocol.bodies.common import PermName
from storage.consumer_offsets import ConsumerOffsetTable
from storage.delay_offsets import DelayOffsetTable
from storage.subscription_groups import SubscriptionGroupTable
from storage.topic_config import (
    AUTO_CREATE_TOPIC_KEY_TOPIC,
    SystemTopicSettings,
    TopicConfigTable,
    system_topics,
    topic_problem,
)

CONSUMER_OFFSET_JSON = """{
\t"offsetTable":{
\t\t"%RETRY%cg@cg":{0:0
\t\t},
\t\t"TopicTest@cg":{0:250,1:249
\t\t}
\t}
}"""

DELAY_OFFSET_JSON = """{
\t"offsetTable":{1:5,3:0
\t}
}"""

SUBSCRIPTION_GROUP_JSON = """{
\t"dataVersion":{
\t\t"counter":0,
\t\t"timestamp":1700000000000
\t},
\t"subscriptionGroupTable":{
\t\t"cg":{
\t\t\t"brokerId":0,
\t\t\t"consumeBroadcastEnable":true,
\t\t\t"consumeEnable":true,
\t\t\t"consumeFromMinEnable":true,
\t\t\t"groupName":"cg",
\t\t\t"notifyConsumerIdsChangedEnable":true,
\t\t\t"retryMaxTimes":16,
\t\t\t"retryQueueNums":1,
\t\t\t"whichBrokerWhenConsumeSlowly":1
\t\t}
\t}
}"""

TOPICS_JSON = """{
\t"dataVersion":{
\t\t"counter":3,
\t\t"timestamp":1700000000000
\t},
\t"topicConfigTable":{
\t\t"TopicTest":{
\t\t\t"order":false,
\t\t\t"perm":6,
\t\t\t"readQueueNums":4,
\t\t\t"topicFilterType":"SINGLE_TAG",
\t\t\t"topicName":"TopicTest",
\t\t\t"topicSysFlag":0,
\t\t\t"writeQueueNums":4
\t\t}
\t}
}"""

SETTINGS = SystemTopicSettings(cluster_name="DefaultCluster", broker_name="broker-a")


def test_consumer_offsets_java_file_round_trips_byte_for_byte():
    table = ConsumerOffsetTable.from_json(CONSUMER_OFFSET_JSON)
    assert table.query("cg", "TopicTest", 1) == 249
    assert table.query("cg", "TopicTest", 7) == -1
    assert table.query("other", "TopicTest", 0) == -1
    assert table.to_json() == CONSUMER_OFFSET_JSON


def test_consumer_offsets_accept_quoted_keys_and_persist(tmp_path):
    table = ConsumerOffsetTable.from_json('{"offsetTable":{"T@g":{"0":5,"1":"6"}}}')
    assert table.offsets("g", "T") == {0: 5, 1: 6}
    table.commit("g", "T", 2, 9)
    assert table.dirty
    table.persist(tmp_path)
    assert not table.dirty
    assert ConsumerOffsetTable.load(tmp_path).offsets("g", "T") == {0: 5, 1: 6, 2: 9}
    assert table.topics_of_group("g") == {"T"}
    assert table.groups_of_topic("T") == {"g"}


def test_consumer_offsets_remove_by_topic_and_by_group():
    table = ConsumerOffsetTable()
    for topic, group in (("T", "g"), ("T", "h"), ("U", "g"), ("%RETRY%g", "g")):
        table.commit(group, topic, 0, 1)
    table.dirty = False  # as after a write
    table.remove_topic("X")
    assert not table.dirty
    table.remove_topic("T")
    assert table.dirty
    assert table.groups_of_topic("T") == set()
    assert table.topics_of_group("g") == {"U", "%RETRY%g"}
    table.remove_group("g")
    assert table.topics_of_group("g") == set()
    assert table.groups_of_topic("U") == set()


def test_consumer_offsets_reject_malformed():
    with pytest.raises(ValueError, match="offset"):
        ConsumerOffsetTable.from_json('{"offsetTable":{"T@g":{"0":true}}}')


def test_delay_offsets_java_file_round_trips():
    table = DelayOffsetTable.from_json(DELAY_OFFSET_JSON)
    assert table.get(1) == 5
    assert table.get(2) == 0
    assert table.to_json() == DELAY_OFFSET_JSON


def test_subscription_group_file_round_trips():
    table = SubscriptionGroupTable.from_json(SUBSCRIPTION_GROUP_JSON)
    assert table.get("cg").retry_max_times == 16
    assert table.to_json() == SUBSCRIPTION_GROUP_JSON


def test_subscription_group_auto_create_bumps_version():
    table = SubscriptionGroupTable()
    assert table.find("g", auto_create=False, now_ms=5) is None
    created = table.find("g", auto_create=True, now_ms=5)
    assert created.group_name == "g"
    assert table.data_version.counter == 1
    assert table.data_version.timestamp == 5


def test_system_topics_match_reference():
    topics = system_topics(SETTINGS)
    assert topics[AUTO_CREATE_TOPIC_KEY_TOPIC].perm == 7
    assert topics[AUTO_CREATE_TOPIC_KEY_TOPIC].write_queue_nums == 8
    assert topics["SCHEDULE_TOPIC_XXXX"].read_queue_nums == 18
    assert topics["DefaultCluster"].perm == 7
    assert topics["broker-a"].perm == 7
    assert "DefaultCluster_REPLY_TOPIC" in topics
    assert "RMQ_SYS_TRACE_TOPIC" not in topics
    no_auto = system_topics(
        SystemTopicSettings(**{**_settings(), "auto_create_topic_enable": False})
    )
    assert AUTO_CREATE_TOPIC_KEY_TOPIC not in no_auto


def _settings():
    return {"cluster_name": "DefaultCluster", "broker_name": "broker-a"}


def test_auto_create_inherits_from_tbw102():
    table = TopicConfigTable.with_system_topics(SETTINGS)
    version = table.data_version
    created = table.create_in_send("TopicTest", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 0, 100)
    assert (created.read_queue_nums, created.write_queue_nums, created.perm) == (4, 4, 6)
    assert table.data_version.counter == version.counter + 1
    assert (
        table.create_in_send("Big", AUTO_CREATE_TOPIC_KEY_TOPIC, 64, 0, 100).write_queue_nums == 8
    )
    # a template without PERM_INHERIT does not create
    assert table.create_in_send("X", "TopicTest", 4, 0, 100) is None
    assert table.create_in_send("Y", "NoSuchTopic", 4, 0, 100) is None


def test_sealed_template_no_longer_inherits():
    table = TopicConfigTable.with_system_topics(SETTINGS)
    table.seal_auto_create(False, 1)
    assert table.get(AUTO_CREATE_TOPIC_KEY_TOPIC).perm == PermName.PERM_READ | PermName.PERM_WRITE
    assert table.create_in_send("T", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 0, 1) is None


def test_topics_file_merges_over_system_topics(tmp_path):
    (tmp_path / "topics.json").write_text(TOPICS_JSON)
    table = TopicConfigTable.with_system_topics(SETTINGS)
    table.load(tmp_path)
    assert table.get("TopicTest").write_queue_nums == 4
    assert table.get("SELF_TEST_TOPIC") is not None
    assert table.data_version.counter == 3
    table.persist(tmp_path)
    again = TopicConfigTable.with_system_topics(SETTINGS)
    again.load(tmp_path)
    assert again.all() == table.all()


def test_create_if_absent_and_delete():
    table = TopicConfigTable()
    config, created = table.create_if_absent("%RETRY%g", 1, 6, 0, 1)
    assert created
    assert table.create_if_absent("%RETRY%g", 3, 6, 0, 2) == (config, False)
    assert table.delete("%RETRY%g", 3)
    assert not table.delete("%RETRY%g", 3)


@pytest.mark.parametrize(
    ("topic", "problem"),
    [("", "blank"), ("a b", "illegal"), ("x" * 128, "longer"), ("%RETRY%g|a-b_1", None)],
)
def test_topic_validation(topic, problem):
    result = topic_problem(topic)
    if problem is None:
        assert result is None
    else:
        assert problem in result


def test_order_topics_from_the_name_servers():
    table = TopicConfigTable.with_system_topics(SETTINGS)
    table.create_in_send("A", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 0, 1)
    table.create_in_send("B", AUTO_CREATE_TOPIC_KEY_TOPIC, 4, 0, 1)
    version = table.data_version
    assert table.update_order_topics({"A", "Unknown"}, 2)
    assert table.get("A").order
    assert not table.get("B").order
    assert table.data_version.counter == version.counter + 1
    assert not table.update_order_topics({"A"}, 3)
    assert table.update_order_topics(set(), 4)
    assert not table.get("A").order
