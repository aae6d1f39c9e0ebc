"""Values shared by many bodies and headers: MessageQueue, the Java enums, small wrappers.

The enums carry Java's ordinals as values because the C++ clients send ordinals
(``"consumeType":1``); the body converter reads ordinals or names and writes names, as
Java's fastjson does (reference §3.5, clients README fact 7).
"""

from __future__ import annotations

import enum

import attrs


# cache_hash: the push consumer hashes a queue several times per message (process queues,
# offsets, locks), and a frozen instance's hash never changes
@attrs.frozen(order=True, kw_only=True, cache_hash=True)
class MessageQueue:
    """One queue of one topic on one broker; hashable and ordered so it can key maps."""

    topic: str
    broker_name: str
    queue_id: int

    def __str__(self) -> str:
        return f"MessageQueue [topic={self.topic}, brokerName={self.broker_name}, queueId={self.queue_id}]"


class ConsumeType(enum.IntEnum):
    CONSUME_ACTIVELY = 0  # pull
    CONSUME_PASSIVELY = 1  # push


class MessageModel(enum.IntEnum):
    """CLUSTERING: a group's members share its queues; BROADCASTING: each gets all."""

    BROADCASTING = 0
    CLUSTERING = 1


class ConsumeFromWhere(enum.IntEnum):
    """Where a group with no stored offset for a queue starts (§8.4)."""

    CONSUME_FROM_LAST_OFFSET = 0
    CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST = 1
    CONSUME_FROM_MIN_OFFSET = 2
    CONSUME_FROM_MAX_OFFSET = 3
    CONSUME_FROM_FIRST_OFFSET = 4
    CONSUME_FROM_TIMESTAMP = 5


class TopicFilterType(enum.IntEnum):
    SINGLE_TAG = 0
    MULTI_TAG = 1


class ExpressionType:
    """Java keeps these as String constants, not an enum; fields stay ``str``."""

    TAG = "TAG"
    SQL92 = "SQL92"


class PermName(enum.IntFlag):
    PERM_INHERIT = 1
    PERM_WRITE = 2
    PERM_READ = 4
    PERM_PRIORITY = 8


class TopicSysFlag(enum.IntFlag):
    FLAG_UNIT = 1
    FLAG_UNIT_SUB = 2


@attrs.frozen(kw_only=True)
class DataVersion:
    """Equality is (timestamp, counter), as Java's equals (§3.3.3)."""

    timestamp: int = 0
    counter: int = 0

    def next_version(self, now_ms: int) -> DataVersion:
        return DataVersion(timestamp=now_ms, counter=self.counter + 1)


@attrs.frozen(kw_only=True)
class KVTable:
    table: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TopicList:
    topic_list: tuple[str, ...] = ()
    broker_addr: str | None = None


@attrs.frozen(kw_only=True)
class GroupList:
    group_list: tuple[str, ...] = ()
