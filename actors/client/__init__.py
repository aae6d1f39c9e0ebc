"""The client's public API in one place.

    from actors.client import Producer, PushConsumer, LitePullConsumer, Message

    async with Producer("pg", namesrv="127.0.0.1:9876") as producer:
        result = await producer.send(Message("TopicTest", b"hello", tags="TagA"))

Everything here is re-exported from the modules of ``actors.client``; import from the
package itself, whose names stay stable while the modules behind it move.  (The design card
keeps the top level to actors/, storage/, protocol/, apps/, tests/, conf/: the client lives
with the other actors.)
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
from actors.client.producer import Producer, ProducerConfig, select_by_hash
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere, MessageModel, PushConsumer
from actors.client.transaction_producer import (
    LocalTransactionState,
    TransactionProducer,
    TransactionSendResult,
)
from protocol.acl import SessionCredentials
from protocol.bodies.common import MessageQueue
from protocol.message import MessageExt

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
    "LocalTransactionState",
    "Message",
    "MessageExt",
    "MessageModel",
    "MessageQueue",
    "NoRouteError",
    "NotConnectedError",
    "Producer",
    "ProducerConfig",
    "PushConsumer",
    "SendResult",
    "SendStatus",
    "SessionCredentials",
    "TransactionProducer",
    "TransactionSendResult",
    "client_msg_id",
    "select_by_hash",
]
