"""JSON bodies (reference §3.3): attrs classes read and written through ``protocol.convert``."""

from protocol.bodies.common import (
    ConsumeFromWhere,
    ConsumeType,
    DataVersion,
    ExpressionType,
    GroupList,
    KVTable,
    MessageModel,
    MessageQueue,
    PermName,
    TopicFilterType,
    TopicList,
    TopicSysFlag,
)
from protocol.bodies.route import BrokerData, ClusterInfo, QueueData, TopicRouteData
from protocol.bodies.topic import (
    RegisterBrokerBody,
    TopicConfig,
    TopicConfigSerializeWrapper,
    body_crc32,
    decode_register_broker_body,
    encode_register_broker_body,
)

__all__ = [
    "BrokerData",
    "ClusterInfo",
    "ConsumeFromWhere",
    "ConsumeType",
    "DataVersion",
    "ExpressionType",
    "GroupList",
    "KVTable",
    "MessageModel",
    "MessageQueue",
    "PermName",
    "QueueData",
    "RegisterBrokerBody",
    "TopicConfig",
    "TopicConfigSerializeWrapper",
    "TopicFilterType",
    "TopicList",
    "TopicRouteData",
    "TopicSysFlag",
    "body_crc32",
    "decode_register_broker_body",
    "encode_register_broker_body",
]
