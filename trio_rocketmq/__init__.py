"""The client's public API in one place.

    from trio_rocketmq import Producer, PushConsumer, LitePullConsumer, Message

    async with Producer("pg", namesrv="127.0.0.1:9876") as producer:
        result = await producer.send(Message("TopicTest", b"hello", tags="TagA"))

Everything here is re-exported from ``actors.client``; import from this module, whose names
stay stable while the modules behind it move.  ``TransactionProducer`` (transactional
messages, issue 14) is exported here once it lands.
"""

from __future__ import annotations

from actors.client.allocate import AllocateStrategy
from actors.client.consume_service import (
    ConsumeContext,
    ConsumeOrderlyStatus,
    ConsumeStatus,
)
from actors.client.consumer import ConsumerSettings
from actors.client.errors import (
    BrokerError,
    ClientError,
    ClientTimeoutError,
    InvalidMessageError,
    InvalidSubscriptionError,
    NoRouteError,
    NotConnectedError,
)
from actors.client.message import Message, SendResult, SendStatus, client_msg_id
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere, MessageModel, PushConsumer
from protocol.bodies.common import MessageQueue
from protocol.message import MessageExt

try:  # issue 14, written concurrently: exported as soon as it exists
    from actors.client.transaction import TransactionProducer  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - until issue 14 lands
    TransactionProducer = None

__all__ = [
    "AllocateStrategy",
    "BrokerError",
    "ClientError",
    "ClientTimeoutError",
    "ConsumeContext",
    "ConsumeFromWhere",
    "ConsumeOrderlyStatus",
    "ConsumeStatus",
    "ConsumerSettings",
    "InvalidMessageError",
    "InvalidSubscriptionError",
    "LitePullConsumer",
    "Message",
    "MessageExt",
    "MessageModel",
    "MessageQueue",
    "NoRouteError",
    "NotConnectedError",
    "Producer",
    "PushConsumer",
    "SendResult",
    "SendStatus",
    "TransactionProducer",
    "client_msg_id",
]
