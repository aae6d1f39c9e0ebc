"""Client registration bodies: HEART_BEAT, LOCK/UNLOCK_BATCH_MQ, consumer lists (reference §3.3.2,
§3.3.5; clients README facts 7 and 13).

The C++ clients send enums as ordinals, ``subVersion`` as a string, and omit ``tagsSet``,
``codeSet``, ``classFilterMode``, ``expressionType`` and ``unitMode``: every such field has
Java's default here.
"""

from __future__ import annotations

import attrs

from protocol.bodies.common import (
    ConsumeFromWhere,
    ConsumeType,
    ExpressionType,
    MessageModel,
    MessageQueue,
)
from protocol.convert import wire


@attrs.frozen(kw_only=True)
class SubscriptionData:
    topic: str
    sub_string: str
    tags_set: tuple[str, ...] = ()
    code_set: tuple[int, ...] = ()
    sub_version: int = 0
    expression_type: str = ExpressionType.TAG
    class_filter_mode: bool = False


@attrs.frozen(kw_only=True)
class ProducerData:
    group_name: str


@attrs.frozen(kw_only=True)
class ConsumerData:
    group_name: str
    consume_type: ConsumeType
    message_model: MessageModel
    consume_from_where: ConsumeFromWhere
    subscription_data_set: tuple[SubscriptionData, ...] = ()
    unit_mode: bool = False


@attrs.frozen(kw_only=True)
class HeartbeatData:
    client_id: str = attrs.field(metadata=wire("clientID"))
    producer_data_set: tuple[ProducerData, ...] = ()
    consumer_data_set: tuple[ConsumerData, ...] = ()


@attrs.frozen(kw_only=True)
class LockBatchRequestBody:
    consumer_group: str
    client_id: str  # "clientId" here, unlike HeartbeatData's "clientID"
    mq_set: tuple[MessageQueue, ...] = ()


@attrs.frozen(kw_only=True)
class LockBatchResponseBody:
    lock_ok_mq_set: tuple[MessageQueue, ...] = attrs.field(default=(), metadata=wire("lockOKMQSet"))


@attrs.frozen(kw_only=True)
class UnlockBatchRequestBody:
    consumer_group: str
    client_id: str
    mq_set: tuple[MessageQueue, ...] = ()


@attrs.frozen(kw_only=True)
class GetConsumerListByGroupResponseBody:
    consumer_id_list: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class CheckClientRequestBody:
    client_id: str
    group: str
    subscription_data: SubscriptionData | None = None
