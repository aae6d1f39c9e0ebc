"""Byte-exact examples marked *(verified)* in the reference, produced by the 4.9.8 Java classes.

Section numbers point into /work/shared/reference/rocketmq-protocol.md.
"""

# §1.3: GET_ROUTEINFO_BY_TOPIC request header (JSON) and a TOPIC_NOT_EXIST response header.
ROUTE_REQUEST_HEADER = (
    b'{"code":105,"extFields":{"topic":"TopicTest"},"flag":0,"language":"JAVA","opaque":0,'
    b'"serializeTypeCurrentRPC":"JSON","version":409}'
)
ROUTE_REQUEST_FRAME_PREFIX = bytes.fromhex("00000087000000837b22636f6465")
NOT_EXIST_RESPONSE_HEADER = (
    b'{"code":17,"flag":1,"language":"JAVA","opaque":5,"remark":"No topic route info",'
    b'"serializeTypeCurrentRPC":"JSON","version":409}'
)

# §1.4: code 105, version 409, opaque 1, remark "hi", ext {topic: TopicTest}, ROCKETMQ header.
BINARY_FRAME = bytes.fromhex(
    "0000002f 0100002b 0069 00 0199 00000001 00000000 00000002 6869 00000014"
    " 0005 746f706963 00000009 546f70696354657374"
)

# §3.2.2: SEND_MESSAGE_V2 request header.
SEND_V2_HEADER = (
    b'{"code":310,"extFields":{"a":"pg","b":"TopicTest","c":"TBW102","d":"4","e":"0","f":"0",'
    b'"g":"1700000000000","h":"0","i":"UNIQ_KEY\\u0001ABC\\u0002WAIT\\u0001true","j":"0",'
    b'"k":"false","m":"false","n":"broker-a"},"flag":0,"language":"JAVA","opaque":9,'
    b'"serializeTypeCurrentRPC":"JSON","version":409}'
)

# §3.2.3 / §3.2.5 / §3.2.7: extFields of a send response, a pull response, REGISTER_BROKER.
SEND_RESPONSE_EXT = {
    "queueId": "1",
    "TRACE_ON": "true",
    "MSG_REGION": "DefaultRegion",
    "msgId": "7F00000100002A9F0000000000000000",
    "queueOffset": "0",
}
PULL_RESPONSE_EXT = {
    "suggestWhichBrokerId": "0",
    "nextBeginOffset": "32",
    "maxOffset": "100",
    "minOffset": "0",
}
REGISTER_BROKER_EXT = {
    "brokerId": "0",
    "bodyCrc32": "123456",
    "clusterName": "DefaultCluster",
    "brokerAddr": "192.168.0.1:10911",
    "haServerAddr": "192.168.0.1:10912",
    "compressed": "false",
    "brokerName": "broker-a",
}

# §3.3.1: TopicRouteData, fastjson default (bare Long keys) and standard-JSON variant.
ROUTE_DATA = (
    b'{"brokerDatas":[{"brokerAddrs":{0:"192.168.0.1:10911",1:"192.168.0.2:10911"},'
    b'"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},'
    b'"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSysFlag":0,'
    b'"writeQueueNums":4}]}'
)
ROUTE_DATA_STANDARD = ROUTE_DATA.replace(b"{0:", b'{"0":').replace(b",1:", b',"1":')

# §3.3.2: HeartbeatData from the Java client.
HEARTBEAT = (
    b'{"clientID":"192.168.0.9@12345","consumerDataSet":[{"consumeFromWhere":'
    b'"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg",'
    b'"messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,'
    b'"codeSet":[2598919,2598920],"expressionType":"TAG","subString":"TagA || TagB",'
    b'"subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"TopicTest"}],'
    b'"unitMode":false}],"producerDataSet":[{"groupName":"pg"}]}'
)

# §3.3.4: uncompressed RegisterBrokerBody.
REGISTER_BROKER_BODY = (
    b'{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,'
    b'"timestamp":1700000000000},"topicConfigTable":{"TopicTest":{"order":false,"perm":6,'
    b'"readQueueNums":4,"topicFilterType":"SINGLE_TAG","topicName":"TopicTest",'
    b'"topicSysFlag":0,"writeQueueNums":4}}}}'
)

# §3.3.5: ConsumeStats with a MessageQueue object as a map key.
CONSUME_STATS = (
    b'{"consumeTps":1.5,"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"TopicTest"}:'
    b'{"brokerOffset":10,"consumerOffset":5,"lastTimestamp":1700000000000}}}'
)

# §5.8: persisted config files, fastjson pretty format.
TOPICS_JSON = (
    b"{\n"
    b'\t"dataVersion":{\n'
    b'\t\t"counter":3,\n'
    b'\t\t"timestamp":1700000000000\n'
    b"\t},\n"
    b'\t"topicConfigTable":{\n'
    b'\t\t"TopicTest":{\n'
    b'\t\t\t"order":false,\n'
    b'\t\t\t"perm":6,\n'
    b'\t\t\t"readQueueNums":4,\n'
    b'\t\t\t"topicFilterType":"SINGLE_TAG",\n'
    b'\t\t\t"topicName":"TopicTest",\n'
    b'\t\t\t"topicSysFlag":0,\n'
    b'\t\t\t"writeQueueNums":4\n'
    b"\t\t}\n"
    b"\t}\n"
    b"}"
)
CONSUMER_OFFSET_JSON = (
    b"{\n"
    b'\t"offsetTable":{\n'
    b'\t\t"%RETRY%cg@cg":{0:0\n'
    b"\t\t},\n"
    b'\t\t"TopicTest@cg":{0:250,1:249\n'
    b"\t\t}\n"
    b"\t}\n"
    b"}"
)
DELAY_OFFSET_JSON = b'{\n\t"offsetTable":{1:5,3:0\n\t}\n}'
SUBSCRIPTION_GROUP_JSON = (
    b"{\n"
    b'\t"dataVersion":{\n'
    b'\t\t"counter":0,\n'
    b'\t\t"timestamp":1700000000000\n'
    b"\t},\n"
    b'\t"subscriptionGroupTable":{\n'
    b'\t\t"cg":{\n'
    b'\t\t\t"brokerId":0,\n'
    b'\t\t\t"consumeBroadcastEnable":true,\n'
    b'\t\t\t"consumeEnable":true,\n'
    b'\t\t\t"consumeFromMinEnable":true,\n'
    b'\t\t\t"groupName":"cg",\n'
    b'\t\t\t"notifyConsumerIdsChangedEnable":true,\n'
    b'\t\t\t"retryMaxTimes":16,\n'
    b'\t\t\t"retryQueueNums":1,\n'
    b'\t\t\t"whichBrokerWhenConsumeSlowly":1\n'
    b"\t\t}\n"
    b"\t}\n"
    b"}"
)

# clients README facts 7 and 13: what the C++ clients put on the wire.
CPP_HEARTBEAT = (
    b'{"clientID":"127.0.0.1@16457#DEFAULT","consumerDataSet":[{"consumeFromWhere":0,'
    b'"consumeType":1,"groupName":"CapG","messageModel":1,"subscriptionDataSet":[{"subString":'
    b'"*","subVersion":"1795741096752","topic":"%RETRY%CapG"},{"subString":"*","subVersion":'
    b'"1795741096752","topic":"CapT"}]}],"producerDataSet":[{"groupName":"CapG"}]}'
)
CPP_LOCK_BATCH = (
    b'{"clientId":"127.0.0.1@16712#DEFAULT","consumerGroup":"CapGO","mqSet":[{"brokerName":'
    b'"broker-a","queueId":0,"topic":"CapO"}]}'
)

# Replies of an Apache RocketMQ 4.9.7 broker/namesrv, captured by the compat helper's
# differential run (tests/compat/golden); HashMap-ordered maps make some differ from ours in order.
APACHE_CONSUMER_CONNECTION = (
    b'{"connectionSet":[{"clientAddr":"127.0.0.1:33078","clientId":"127.0.0.1@differential",'
    b'"language":"JAVA","version":409}],"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET",'
    b'"consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":'
    b'{"T_differential":{"classFilterMode":false,"codeSet":[],"expressionType":"TAG",'
    b'"subString":"*","subVersion":1,"tagsSet":[],"topic":"T_differential"}}}'
)
APACHE_CLUSTER_INFO = (
    b'{"brokerAddrTable":{"compat-broker":{"brokerAddrs":{0:"127.0.0.1:37557"},'
    b'"brokerName":"compat-broker","cluster":"CompatCluster"}},"clusterAddrTable":'
    b'{"CompatCluster":["compat-broker"]}}'
)
APACHE_TOPIC_STATS = (
    b'{"offsetTable":{{"brokerName":"compat-broker","queueId":1,"topic":"T_differential"}:'
    b'{"lastUpdateTimestamp":1795747981708,"maxOffset":1,"minOffset":0},'
    b'{"brokerName":"compat-broker","queueId":0,"topic":"T_differential"}:'
    b'{"lastUpdateTimestamp":1795747981544,"maxOffset":1,"minOffset":0}}}'
)
APACHE_CONSUME_STATS = (
    b'{"consumeTps":0.0,"offsetTable":{{"brokerName":"compat-broker","queueId":1,'
    b'"topic":"T_differential"}:{"brokerOffset":1,"consumerOffset":0,"lastTimestamp":0},'
    b'{"brokerName":"compat-broker","queueId":0,"topic":"T_differential"}:{"brokerOffset":1,'
    b'"consumerOffset":1,"lastTimestamp":1795747981544}}}'
)
