"""Producer and consumer tables (reference §7.8), pure: no trio, time is a parameter.

Channels are opaque hashable objects (the remoting layer's connection handles); the tables only
remember which client id, language and version spoke on each and when it last did.  Every
mutator returns what changed so the caller decides whom to notify.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from protocol.message import java_hash

SUB_ALL = "*"
CONSUME_ACTIVELY = "CONSUME_ACTIVELY"
CONSUME_PASSIVELY = "CONSUME_PASSIVELY"
CLUSTERING = "CLUSTERING"
BROADCASTING = "BROADCASTING"


@attrs.frozen(kw_only=True)
class Subscription:
    """One topic's subscription of a consumer group (Java's SubscriptionData)."""

    topic: str
    sub_string: str = SUB_ALL
    expression_type: str = "TAG"
    tags: frozenset[str] = frozenset()
    codes: frozenset[int] = frozenset()
    sub_version: int = 0

    @property
    def accepts_all(self) -> bool:
        return self.sub_string == SUB_ALL or not self.codes

    def matches(self, tags_code: int | None) -> bool:
        """Consume-queue tag-hash filter (the store's and long polling's test)."""
        if self.accepts_all or self.expression_type != "TAG":
            return True
        return tags_code is not None and tags_code in self.codes


def build_subscription(
    topic: str, expression: str | None, *, sub_version: int = 0, expression_type: str = "TAG"
) -> Subscription:
    """Java's FilterAPI.buildSubscriptionData: ``"TagA || TagB"`` -> tags and their hash codes.

    The codes are always computed here from the expression text: the C++ client sends a wrong
    ``codeSet`` in its heartbeats (clients README fact 7), so a received codeSet is never trusted.
    """
    expression_type = (expression_type or "TAG").upper()
    text = (expression or "").strip()
    if expression_type != "TAG":
        return Subscription(
            topic=topic, sub_string=text, expression_type=expression_type, sub_version=sub_version
        )
    if not text or text == SUB_ALL:
        return Subscription(topic=topic, sub_version=sub_version)
    tags = frozenset(tag.strip() for tag in text.split("||") if tag.strip())
    return Subscription(
        topic=topic,
        sub_string=text,
        tags=tags,
        codes=frozenset(java_hash(tag) for tag in tags),
        sub_version=sub_version,
    )


@attrs.define(eq=False)
class ClientChannelInfo:
    channel: object
    client_id: str
    language: str
    version: int
    last_update_ms: int


@attrs.define(eq=False)
class ConsumerGroupInfo:
    group: str
    consume_type: str
    message_model: str
    consume_from_where: str
    channels: dict[object, ClientChannelInfo] = attrs.Factory(dict)
    subscriptions: dict[str, Subscription] = attrs.Factory(dict)
    last_update_ms: int = 0

    def client_ids(self) -> list[str]:
        return [info.client_id for info in self.channels.values()]

    def update_channel(self, info: ClientChannelInfo) -> bool:
        """True when the channel is new to the group (a membership change)."""
        known = self.channels.get(info.channel)
        self.channels[info.channel] = info
        return known is None

    def update_subscriptions(self, subs: Iterable[Subscription]) -> bool:
        """Java's rule: a new topic or a dropped topic is a change; a newer version is not."""
        changed = False
        wanted = {}
        for sub in subs:
            wanted[sub.topic] = sub
            old = self.subscriptions.get(sub.topic)
            if old is None:
                self.subscriptions[sub.topic] = sub
                changed = True
            elif sub.sub_version > old.sub_version:
                self.subscriptions[sub.topic] = sub
        for topic in [t for t in self.subscriptions if t not in wanted]:
            del self.subscriptions[topic]
            changed = True
        return changed


class ConsumerManager:
    def __init__(self) -> None:
        self.groups: dict[str, ConsumerGroupInfo] = {}

    def get(self, group: str) -> ConsumerGroupInfo | None:
        return self.groups.get(group)

    def register(
        self,
        group: str,
        info: ClientChannelInfo,
        *,
        consume_type: str,
        message_model: str,
        consume_from_where: str,
        subscriptions: Iterable[Subscription],
    ) -> bool:
        """Record a heartbeat; True when the group's members or topics changed."""
        entry = self.groups.get(group)
        if entry is None:
            entry = ConsumerGroupInfo(group, consume_type, message_model, consume_from_where)
            self.groups[group] = entry
        entry.consume_type = consume_type
        entry.message_model = message_model
        entry.consume_from_where = consume_from_where
        entry.last_update_ms = info.last_update_ms
        new_member = entry.update_channel(info)
        new_topics = entry.update_subscriptions(subscriptions)
        return new_member or new_topics

    def unregister(self, group: str, channel: object) -> bool:
        """Drop one channel from a group; True when it was a member."""
        entry = self.groups.get(group)
        if entry is None or entry.channels.pop(channel, None) is None:
            return False
        if not entry.channels:
            del self.groups[group]
        return True

    def channel_closed(self, channel: object) -> list[str]:
        """Drop a closed connection everywhere; the groups it left (to notify)."""
        left = [group for group, entry in self.groups.items() if channel in entry.channels]
        for group in left:
            self.unregister(group, channel)
        return left

    def expired_channels(self, now_ms: int, timeout_ms: int) -> set[object]:
        return {
            channel
            for entry in self.groups.values()
            for channel, info in entry.channels.items()
            if now_ms - info.last_update_ms > timeout_ms
        }

    def groups_of_topic(self, topic: str) -> list[str]:
        return [g for g, entry in self.groups.items() if topic in entry.subscriptions]


class ProducerManager:
    def __init__(self) -> None:
        self.groups: dict[str, dict[object, ClientChannelInfo]] = {}

    def register(self, group: str, info: ClientChannelInfo) -> None:
        self.groups.setdefault(group, {})[info.channel] = info

    def unregister(self, group: str, channel: object) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]

    def channel_closed(self, channel: object) -> None:
        for group in [g for g, members in self.groups.items() if channel in members]:
            self.unregister(group, channel)

    def expired_channels(self, now_ms: int, timeout_ms: int) -> set[object]:
        return {
            channel
            for members in self.groups.values()
            for channel, info in members.items()
            if now_ms - info.last_update_ms > timeout_ms
        }

    def channels(self, group: str) -> list[ClientChannelInfo]:
        return list(self.groups.get(group, {}).values())
