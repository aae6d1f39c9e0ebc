"""Retry and dead-letter rules (reference §7.5, §7.1 step 8): pure decisions and the new message.

A consumer that fails a message sends it back (CONSUMER_SEND_MSG_BACK); the broker stores a copy
for ``%RETRY%<group>`` behind delay level ``3 + reconsumeTimes`` (10 s, 30 s, 1 m, ... 2 h), or,
once the message has been reconsumed ``maxReconsumeTimes`` times, in ``%DLQ%<group>`` for good.
"""

from __future__ import annotations

import attrs

from protocol.message import MessageConst, MessageExt
from storage.message_store import MessageInner
from storage.topic_config import (
    DLQ_GROUP_TOPIC_PREFIX,
    RETRY_GROUP_TOPIC_PREFIX,
    dlq_topic,
    retry_topic,
)

DLQ_NUMS_PER_GROUP = 1
DEFAULT_MAX_RECONSUME_TIMES = 16
FIRST_RETRY_DELAY_LEVEL = 3  # level 3 = 10 s with the default table
# MQVersion.V3_4_9: older clients' maxReconsumeTimes header is ignored (reference §1.9).
VERSION_HONOURS_MAX_RECONSUME_TIMES = 121

__all__ = [
    "DLQ_NUMS_PER_GROUP",
    "SendBackTarget",
    "build_send_back",
    "dlq_topic",
    "group_of_retry_topic",
    "is_dlq_topic",
    "is_retry_topic",
    "max_reconsume_times",
    "retry_send_redirect",
    "retry_topic",
    "send_back_target",
]


def is_retry_topic(topic: str) -> bool:
    return topic.startswith(RETRY_GROUP_TOPIC_PREFIX)


def is_dlq_topic(topic: str) -> bool:
    return topic.startswith(DLQ_GROUP_TOPIC_PREFIX)


def group_of_retry_topic(topic: str) -> str:
    if not is_retry_topic(topic):
        raise ValueError(f"{topic!r} is not a retry topic")
    return topic[len(RETRY_GROUP_TOPIC_PREFIX) :]


def max_reconsume_times(group_retry_max_times: int, header_value: int | None, version: int) -> int:
    """The group's ``retryMaxTimes``, unless a recent enough client says otherwise."""
    if header_value is not None and version >= VERSION_HONOURS_MAX_RECONSUME_TIMES:
        return header_value
    return group_retry_max_times


@attrs.frozen
class SendBackTarget:
    topic: str
    queue_id: int
    delay_level: int  # 0: stored directly (dead letter)

    @property
    def dead_letter(self) -> bool:
        return is_dlq_topic(self.topic)


def send_back_target(
    group: str,
    *,
    reconsume_times: int,
    requested_delay_level: int,
    max_times: int,
    retry_queue_nums: int,
    rand: int,
) -> SendBackTarget:
    """Where a failed message goes: DLQ when exhausted (or the client asks with a negative
    level), else the retry topic behind ``requested_delay_level`` or ``3 + reconsume_times``.
    ``rand`` is any non-negative random int (the queue choice)."""
    if reconsume_times >= max_times or requested_delay_level < 0:
        return SendBackTarget(dlq_topic(group), rand % DLQ_NUMS_PER_GROUP, 0)
    level = requested_delay_level or FIRST_RETRY_DELAY_LEVEL + reconsume_times
    return SendBackTarget(retry_topic(group), rand % retry_queue_nums, level)


def build_send_back(original: MessageExt, target: SendBackTarget) -> MessageInner:
    """The message stored for ``target`` (before the delay rewrite), as 4.9 builds it.

    ``RETRY_TOPIC`` remembers the first topic; ``ORIGIN_MESSAGE_ID`` the first message's offset
    id; ``reconsumeTimes`` counts one more failure.  4.9 leaves ``WAIT=false`` and the ``DELAY``
    it chose in the stored properties; so do we.
    """
    props = dict(original.properties)
    props.setdefault(MessageConst.RETRY_TOPIC, original.topic)
    props[MessageConst.WAIT] = "false"
    props[MessageConst.DELAY] = str(target.delay_level)
    if not props.get(MessageConst.ORIGIN_MESSAGE_ID, "").strip():
        props[MessageConst.ORIGIN_MESSAGE_ID] = original.msg_id
    return MessageInner(
        topic=target.topic,
        queue_id=target.queue_id,
        flag=original.flag,
        body=original.body,
        properties=props,
        sys_flag=original.sys_flag,
        born_timestamp=original.born_timestamp,
        born_host=original.born_host,
        reconsume_times=original.reconsume_times + 1,
    )


def retry_send_redirect(topic: str, reconsume_times: int, max_times: int) -> str | None:
    """Send path, §7.1 step 8: a message sent straight to ``%RETRY%<group>`` that has used up
    its reconsume times goes to ``%DLQ%<group>`` queue 0 instead (undelayed); None otherwise."""
    if is_retry_topic(topic) and reconsume_times >= max_times:
        return dlq_topic(group_of_retry_topic(topic))
    return None
