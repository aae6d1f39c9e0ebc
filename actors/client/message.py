"""What users of the client see: Message, SendResult, SendStatus, MessageQueue.

Received messages are ``protocol.message.MessageExt`` values with the body already
decompressed and the topic of a retried message restored; ``client_msg_id(msg)`` gives the
id Java's ``MessageExt.getMsgId()`` would show (the producer's UNIQ_KEY when present).
"""

from __future__ import annotations

import enum
import re

import attrs

from actors.client.errors import InvalidMessageError
from protocol.bodies.common import MessageQueue
from protocol.message import MessageConst, MessageExt

__all__ = [
    "Message",
    "MessageExt",
    "MessageQueue",
    "SendResult",
    "SendStatus",
    "check_topic",
    "client_msg_id",
]

MAX_MESSAGE_SIZE = 4 * 1024 * 1024
_TOPIC_RE = re.compile(r"^[%|a-zA-Z0-9_-]+$")
FORBIDDEN_TOPICS = frozenset(
    {
        "SCHEDULE_TOPIC_XXXX",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        "TRANS_CHECK_MAX_TIME_TOPIC",
        "SELF_TEST_TOPIC",
        "OFFSET_MOVED_EVENT",
    }
)


def check_topic(topic: str) -> None:
    """Java's Validators.checkTopic: InvalidMessageError for a name a broker refuses."""
    if not topic:
        raise InvalidMessageError("the specified topic is blank")
    if len(topic) > 127:
        raise InvalidMessageError(f"the specified topic is longer than 127 characters: {topic!r}")
    if not _TOPIC_RE.match(topic):
        raise InvalidMessageError(f"the specified topic {topic!r} contains illegal characters")
    if topic in FORBIDDEN_TOPICS:
        raise InvalidMessageError(f"sending message to topic[{topic}] is forbidden")


@attrs.define
class Message:
    """A message to send.  ``properties`` are user properties; the named fields become the
    standard ones (TAGS, KEYS, DELAY) when the message is encoded."""

    topic: str
    body: bytes
    tags: str | None = None
    keys: str | list[str] | None = None
    delay_level: int = 0
    flag: int = 0
    properties: dict[str, str] = attrs.Factory(dict)
    wait_store_msg_ok: bool = True

    def validate(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        """Java's Validators.checkMessage: InvalidMessageError on a bad topic, an empty or
        oversized body, or a delay level outside 0..18."""
        check_topic(self.topic)
        if not isinstance(self.body, bytes | bytearray):
            raise InvalidMessageError("the message body must be bytes")
        if not self.body:
            raise InvalidMessageError("the message body length is zero")
        if len(self.body) > max_size:
            raise InvalidMessageError(
                f"the message body size over max value, MAX: {max_size}, got {len(self.body)}"
            )
        if not 0 <= self.delay_level <= 18:
            raise InvalidMessageError(f"delay level {self.delay_level} is not in 0..18")

    def wire_properties(self) -> dict[str, str]:
        """The property map that goes on the wire (UNIQ_KEY is added by the producer)."""
        props = dict(self.properties)
        if self.tags:
            props[MessageConst.TAGS] = self.tags
        if self.keys:
            keys = self.keys if isinstance(self.keys, str) else " ".join(self.keys)
            props[MessageConst.KEYS] = keys
        if self.delay_level > 0:
            props[MessageConst.DELAY] = str(self.delay_level)
        props[MessageConst.WAIT] = "true" if self.wait_store_msg_ok else "false"
        return props


class SendStatus(enum.Enum):
    """Stored, with the guarantee the broker could give: anything but SEND_OK means stored
    but not flushed (or not replicated) within the broker's timeout."""

    SEND_OK = "SEND_OK"
    FLUSH_DISK_TIMEOUT = "FLUSH_DISK_TIMEOUT"
    FLUSH_SLAVE_TIMEOUT = "FLUSH_SLAVE_TIMEOUT"
    SLAVE_NOT_AVAILABLE = "SLAVE_NOT_AVAILABLE"


@attrs.frozen
class SendResult:
    """What a send returns: the status, the message id (the producer's UNIQ_KEY), the
    broker's offset message id, the queue and the offset in it."""

    status: SendStatus
    msg_id: str  # UNIQ_KEY (comma-joined for a batch)
    offset_msg_id: str  # broker-assigned offset id(s)
    message_queue: MessageQueue
    queue_offset: int
    region_id: str = "DefaultRegion"
    trace_on: bool = True

    def __str__(self) -> str:
        # The shape of Java's SendResult.toString(), which quickstart users grep for.
        mq = self.message_queue
        return (
            f"SendResult [sendStatus={self.status.value}, msgId={self.msg_id}, "
            f"offsetMsgId={self.offset_msg_id}, messageQueue=MessageQueue [topic={mq.topic}, "
            f"brokerName={mq.broker_name}, queueId={mq.queue_id}], "
            f"queueOffset={self.queue_offset}]"
        )


def client_msg_id(msg: MessageExt) -> str:
    """The id a Java consumer shows: UNIQ_KEY if the producer set one, else the offset id."""
    return msg.uniq_key or msg.msg_id
